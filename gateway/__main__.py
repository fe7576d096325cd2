from gateway.bootstrap import build
from shoplib.process.service import run

if __name__ == "__main__":
    run(build, "gateway")
