"""A TCP relay whose two sides can be cut separately (network failures on demand).

Cutting only the client side is what a NAT dropping a connection looks like
to the executor, while the gateway still believes its stream is alive.
"""

from __future__ import annotations

import asyncio
import contextlib


class Relay:
    """Forwards every connection on a loopback port to ``target``."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self._target = (host, int(port))
        self._server: asyncio.Server | None = None
        self._clients: list[asyncio.StreamWriter] = []
        self._upstreams: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.address = ""

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        return self.address

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._clients.append(writer)
        self._upstreams.append(up_writer)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read(65536):
                if sink.is_closing():
                    continue  # the other side was cut: swallow, as a dead link would
                sink.write(data)
                await sink.drain()

    @property
    def upstreams(self) -> int:
        """Gateway-facing connections currently open."""
        return len(self._upstreams)

    def cut_clients(self) -> None:
        """Drop the executor-facing sockets; the gateway-facing ones stay open."""
        for writer in self._clients:
            writer.transport.abort()
        self._clients.clear()

    def cut_upstreams(self, keep: int = 0) -> None:
        """Drop the gateway-facing sockets of all but the newest ``keep`` connections."""
        doomed = self._upstreams[: len(self._upstreams) - keep] if keep else self._upstreams
        for writer in doomed:
            writer.transport.abort()
        self._upstreams = self._upstreams[len(doomed) :]

    async def close(self) -> None:
        self.cut_clients()
        self.cut_upstreams()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
