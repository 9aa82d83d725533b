#!/usr/bin/env python3
"""TCP echo server on asyncio: an asyncio.Protocol per connection (data_received writes the bytes back) served
by loop.create_server, one thread, standard library only. Follows the server protocol in common.hpp: --port N
(0: ephemeral), prints `port <N>` once listening on 127.0.0.1, runs until SIGTERM or SIGINT and then exits 0."""

import asyncio

from asyncio_server import run_server


class EchoProtocol(asyncio.Protocol):
    __slots__ = ("transport",)

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


if __name__ == "__main__":
    run_server(EchoProtocol, __doc__.splitlines()[0])
