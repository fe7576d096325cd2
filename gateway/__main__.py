from gateway.bootstrap import build
from shoplib.grpc_server import run

if __name__ == "__main__":
    run(build, "gateway")
