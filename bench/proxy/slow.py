"""A slow shadow candidate for bench/proxy.py: answers every request after a fixed delay.

nginx cannot delay an answer without extra modules, so this small asyncio server plays the
candidate that "answers after 300 ms" in the shadow isolation scenario. Keep-alive, requests on
one connection answered in order (each after its own delay from arrival), any number of
connections at once. The body is read from ``--body-file`` (the upstream's answer, so that the
copies compare equal) and sent with a Content-Length. Requests must carry a Content-Length or
no body. A benchmark fixture, not a product.

Usage: python bench/proxy/slow.py --listen 127.0.0.1:9003 --delay 0.3 --body-file FILE
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import cast

HEAD_END = b"\r\n\r\n"


class SlowConnection(asyncio.Protocol):
    def __init__(self, response: bytes, delay: float) -> None:
        self.response = response
        self.delay = delay
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        loop = asyncio.get_running_loop()
        while (end := self.buffer.find(HEAD_END)) >= 0:
            head = bytes(self.buffer[:end]).lower()
            length = 0
            marker = head.find(b"\r\ncontent-length:")
            if marker >= 0:
                line_end = head.find(b"\r\n", marker + 2)
                length = int(head[marker + 17 : line_end if line_end >= 0 else len(head)])
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            loop.call_later(self.delay, self.answer)

    def answer(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(self.response)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(host: str, port: int, response: bytes, delay: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SlowConnection(response, delay), host, port, backlog=4096, reuse_address=True
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen", required=True, help="host:port")
    parser.add_argument("--delay", type=float, default=0.3, help="seconds before each answer")
    parser.add_argument("--body-file", type=Path, required=True)
    args = parser.parse_args()
    body = args.body_file.read_bytes()
    response = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    host, _, port = args.listen.rpartition(":")
    asyncio.run(serve(host, int(port), response, args.delay))


if __name__ == "__main__":
    main()
