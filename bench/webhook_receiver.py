"""A webhook receiver for ``corp-astro bench webhooks``: answers every POST 200 at once (keep-alive)
and remembers the first arrival time of each ``(path, webhook-id)``; ``GET /dump`` returns them as
JSON and forgets them. Run as ``python -m bench.webhook_receiver PORT`` (its own process, so it does
not share a CPU with what is measured)."""

from __future__ import annotations

import asyncio
import json
import sys
import time

_OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


class _Receiver(asyncio.Protocol):
    seen: dict[tuple[str, str], float] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            lines = self.buf[:head_end].decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
            length = int(headers.get("content-length", "0"))
            if len(self.buf) < head_end + 4 + length:
                return
            self.buf = self.buf[head_end + 4 + length :]
            method, path, _ = lines[0].split(" ", 2)
            self.answer(method, path, headers)

    def answer(self, method: str, path: str, headers: dict[str, str]) -> None:
        if method == "GET" and path == "/dump":
            body = json.dumps([[p, i, t] for (p, i), t in _Receiver.seen.items()]).encode()
            _Receiver.seen = {}
            head = f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\n\r\n".encode()
            self.transport.write(head + body)
            return
        _Receiver.seen.setdefault((path, headers.get("webhook-id", "")), time.time())
        self.transport.write(_OK)


async def _main(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_Receiver, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_main(int(sys.argv[1])))
