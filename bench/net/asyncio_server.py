"""The part both asyncio servers of bench/net share: the protocol of common.hpp (--port N, `port <N>` once
listening on 127.0.0.1, SIGTERM/SIGINT end the run) around loop.create_server with the server's Protocol."""

import argparse
import asyncio
import resource
import signal


async def _serve(protocol, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(protocol, "127.0.0.1", port, backlog=4096)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    await stop.wait()
    server.close()


def run_server(protocol, description: str) -> None:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_serve(protocol, args.port))
