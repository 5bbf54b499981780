"""Runs tala's real aiohttp server on a free port of 127.0.0.1 (or of another address of this
machine) in a background thread, so tests talk to it over real HTTP."""

from __future__ import annotations

import asyncio
import socket
import threading

from aiohttp import web


class RunningServer:
    def __init__(self, web_app: web.Application, host: str = "127.0.0.1"):
        self.web_app = web_app
        self.host = host
        sock = socket.socket()
        sock.bind((host, 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.url = f"http://{host}:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._runner: web.AppRunner | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._runner = web.AppRunner(self.web_app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, self.host, self.port)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> "RunningServer":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("tala's server did not start")
        return self

    def __exit__(self, *exc) -> None:
        fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        fut.result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
