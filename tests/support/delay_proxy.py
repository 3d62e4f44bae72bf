"""A loopback TCP proxy that adds a fixed round-trip time: a distant broker, on this machine.

Each direction's bytes are held for half the RTT and then forwarded in order, so a request and its answer take
one RTT more than without the proxy, whatever their size. Used by the RTT benchmark (benchmarks/mqtt_rtt.py) and
the throughput test; it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time


class DelayProxy:
    """``127.0.0.1:port`` -> ``127.0.0.1:target_port`` with ``rtt_s`` added; a thread runs its event loop."""

    def __init__(self, target_port: int, rtt_s: float) -> None:
        self.target_port = target_port
        self.one_way_s = rtt_s / 2
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="delay-proxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def __enter__(self) -> DelayProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the delay proxy did not start")

    def stop(self) -> None:
        """Close the listener and every connection, then end the loop's thread."""
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _shutdown(self) -> None:
        """Abort every connection: each pipe ends on its own (cancelling the streams' tasks makes asyncio log)."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for _ in range(50):  # bounded: the pipes notice the aborted sockets within a few loop turns
            if not self._writers:
                break
            await asyncio.sleep(0.01)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._ready.set()
        self._loop.run_forever()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.close()
            return
        self._writers |= {client_writer, server_writer}
        try:
            await asyncio.gather(
                self._pipe(client_reader, server_writer),
                self._pipe(server_reader, client_writer),
                return_exceptions=True,
            )
        finally:
            self._writers -= {client_writer, server_writer}

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Forward what ``reader`` gives, each chunk ``one_way_s`` after it arrived, in order."""
        held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def forward() -> None:
            while True:
                due, data = await held.get()
                if not data:
                    break
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(forward())
        try:
            while True:
                try:
                    data = await reader.read(65536)
                except OSError:
                    data = b""
                await held.put((time.monotonic() + self.one_way_s, data))
                if not data:
                    break
            await sender
        except OSError:
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(Exception):
                writer.close()
