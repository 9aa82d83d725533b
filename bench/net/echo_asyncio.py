#!/usr/bin/env python3
"""TCP echo server on asyncio: an asyncio.Protocol per connection (data_received writes the bytes back) served
by loop.create_server, one thread, standard library only. Follows the server protocol in common.hpp: --port N
(0: ephemeral), prints `port <N>` once listening on 127.0.0.1, runs until SIGTERM or SIGINT and then exits 0."""

import argparse
import asyncio
import resource
import signal


class EchoProtocol(asyncio.Protocol):
    __slots__ = ("transport",)

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def serve(protocol, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(protocol, "127.0.0.1", port, backlog=4096)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(serve(EchoProtocol, args.port))


if __name__ == "__main__":
    main()
