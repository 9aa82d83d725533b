#!/usr/bin/env python3
"""HTTP/1.1 "hello world" server on asyncio: an asyncio.Protocol per connection served by loop.create_server,
one thread, standard library only. Follows the server protocol in common.hpp: --port N (0: ephemeral), prints
`port <N>` once listening on 127.0.0.1, runs until SIGTERM or SIGINT and then exits 0."""

import asyncio

from asyncio_server import run_server

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, world!"
REQUEST_END = b"\r\n\r\n"
MAX_PARTIAL_REQUEST = 8192  # a longer unfinished request head closes the connection


class HttpProtocol(asyncio.Protocol):
    """Answers every complete request in what arrived (pipelining) with one write; keeps an unfinished one."""

    __slots__ = ("transport", "partial")

    def connection_made(self, transport):
        self.transport = transport
        self.partial = b""

    def data_received(self, data):
        if self.partial:
            data = self.partial + data
        end = data.rfind(REQUEST_END)
        consumed = 0 if end < 0 else end + len(REQUEST_END)
        if consumed:
            self.transport.write(RESPONSE * data.count(REQUEST_END, 0, consumed))
        self.partial = data[consumed:]
        if len(self.partial) > MAX_PARTIAL_REQUEST:
            self.transport.close()


if __name__ == "__main__":
    run_server(HttpProtocol, __doc__.splitlines()[0])
