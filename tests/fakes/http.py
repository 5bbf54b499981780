"""The HTTP server under each fake API (`FakeTwilio`, `FakeTelegram`): a stdlib
`ThreadingHTTPServer` on 127.0.0.1 (one thread per connection, HTTP/1.1 keep-alive like the
real APIs) that hands every request to the fake's `_handle` and writes its JSON answer.

A fake subclasses `HTTPFake` and implements::

    def _handle(self, method, target, headers, raw) -> (status, payload, extra_headers)

`method` is the HTTP method, `target` the request target (path and query), `headers` the
request's headers and `raw` its body (de-chunked). `payload` is sent as JSON.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Mapping
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

Answer = tuple[int, Any, Mapping[str, str]]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Clients open a connection per concurrent request (aiohttp's connector, requests' pool
    # under a burst of senders); with the default backlog of 5 a burst overflows it and the
    # kernel's SYN retry adds a second to each one dropped.
    request_queue_size = 128

    def __init__(self, fake: HTTPFake) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (a stopped dispatcher's long poll, a timed-out send) is not
        # an error.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as pooled clients (requests, aiohttp) expect
    timeout = 30  # an idle keep-alive connection does not hold a thread forever
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body are two writes: without this, Nagle's algorithm meets the client's
        # delayed ACK and every answer takes ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.fake._connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._connection_closed(self.connection)

    # http.server dispatches on these names; every method goes to one place.
    def do_POST(self) -> None:
        self._answer()

    def do_GET(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        self._answer()

    def do_DELETE(self) -> None:
        self._answer()

    def _read_body(self) -> bytes | None:
        """The request's body, or None when the client hung up before sending all of it (a
        process killed between a request's headers and its body, which urllib3 writes apart):
        a real server never acts on such a request, so neither does a fake."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            # aiohttp streams file uploads chunked (no Content-Length).
            parts = []
            while True:
                size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                part = self.rfile.read(size)
                if len(part) < size:
                    return None
                parts.append(part)
                self.rfile.readline(1024)  # the CRLF after the chunk
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return raw if len(raw) == length else None

    def _answer(self) -> None:
        fake = self.server.fake
        raw = self._read_body()
        if raw is None:
            self.close_connection = True
            return
        status, payload, extra = fake._handle(self.command, self.path, self.headers, raw)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", fake.content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the records are the log


class HTTPFake:
    """Start, stop and `with` for a fake API served on 127.0.0.1.

    `_cond` guards the subclass's state as well as the open connections; the subclass calls
    `super().__init__()` first and implements `_handle`."""

    content_type = "application/json"

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    def start(self) -> Self:
        name = type(self).__name__
        if self._server is not None:
            raise RuntimeError(f"{name} is already running")
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{name}:{self._server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop open connections, so a client's pooled keep-alive connection
        cannot be answered by a stopped fake. Safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        self._before_shutdown()
        server.shutdown()
        server.server_close()
        with self._cond:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # the client closed it first
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _base_url(self) -> str:
        """ "http://127.0.0.1:PORT" of the running fake."""
        if self._server is None:
            raise RuntimeError(
                f"{type(self).__name__} is not running: call start() or use `with`"
            )
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _before_shutdown(self) -> None:
        """Called by stop() before the server shuts down: wake requests that are waiting (a
        long poll), so they answer now rather than outlive the fake."""

    def _handle(self, method: str, target: str, headers: Message, raw: bytes) -> Answer:
        raise NotImplementedError

    def _connection_opened(self, conn: socket.socket) -> None:
        with self._cond:
            self._connections.add(conn)

    def _connection_closed(self, conn: socket.socket) -> None:
        with self._cond:
            self._connections.discard(conn)
