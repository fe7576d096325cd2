"""`python -m shopctl.chaos.relay SOCKET HOST:PORT`: a Unix socket that forwards to a TCP address.

Run on one of our hosts (`ip netns exec`), it is how the runner, which lives in the machine's own
namespace and must add nothing to it, reaches a service on a host: a Unix socket is a file, seen
from every namespace, while the TCP connection it forwards to is made from the host, over the
bridge, so it crosses the network and the nemesis's faults. Bytes are copied both ways as they
come; either side closing closes the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

CHUNK = 65536


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()


async def _serve(path: str, host: str, port: int) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(host, port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, server_w), _pipe(server_r, client_w))

    server = await asyncio.start_unix_server(handle, path)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> None:
    path, target = argv
    host, _, port = target.rpartition(":")
    asyncio.run(_serve(path, host, int(port)))


if __name__ == "__main__":
    main(sys.argv[1:])
