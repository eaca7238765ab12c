"""gunicorn's threaded worker with a deadline on reading each request.

The gthread worker parks idle connections in its poller, but once a request's first byte has
arrived a thread reads the rest with blocking socket calls: a client trickling its headers or
body a byte at a time holds that thread for as long as it likes. Here every connection's socket
is wrapped so that reading one request (headers and body) may take REQUEST_READ_SECONDS in all,
counted from its first read; past that the request is cut off and its thread is free again.
Many threads per worker keep real senders answered while slow clients hold some of them.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from gunicorn.http.errors import NoMoreData
from gunicorn.workers.gthread import ThreadWorker

# The sender gives up after 3 s (5 s and 30 s on its retries): a request it sends arrives
# whole well within this; a client still sending after it is stalling, not slow.
REQUEST_READ_SECONDS = 10.0
# Each write of the answer; a client that reads nothing still has the kernel's buffer.
RESPONSE_WRITE_SECONDS = 10.0


class RequestReadTimeout(NoMoreData):
    """The request did not arrive whole within its read deadline.

    A NoMoreData to gunicorn: a connection cut while the headers are read is closed quietly,
    like any client that went away. In the app it is an OSError from ``wsgi.input``.
    """

    def __init__(self) -> None:
        super().__init__(b"")

    def __str__(self) -> str:
        return f"the request did not arrive within {REQUEST_READ_SECONDS:.0f} s"


class DeadlineSocket:
    """A connected socket whose reads share one deadline per request; the rest is delegated."""

    __slots__ = ("_sock", "_deadline")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._deadline: float | None = None

    def begin_request(self) -> None:
        """The next read starts a new request's clock (keep-alive reuses the socket)."""
        self._deadline = None

    def _arm(self) -> None:
        now = time.monotonic()
        if self._deadline is None:
            self._deadline = now + REQUEST_READ_SECONDS
        remaining = self._deadline - now
        if remaining <= 0:
            raise RequestReadTimeout()
        self._sock.settimeout(remaining)

    def recv(self, size: int, *flags: int) -> bytes:
        self._arm()
        try:
            return self._sock.recv(size, *flags)
        except TimeoutError:
            raise RequestReadTimeout() from None

    def recv_into(self, buffer: Any, *args: int) -> int:
        self._arm()
        try:
            return self._sock.recv_into(buffer, *args)
        except TimeoutError:
            raise RequestReadTimeout() from None

    def send(self, data: bytes, *flags: int) -> int:
        self._sock.settimeout(RESPONSE_WRITE_SECONDS)
        return self._sock.send(data, *flags)

    def sendall(self, data: bytes, *flags: int) -> None:
        self._sock.settimeout(RESPONSE_WRITE_SECONDS)
        self._sock.sendall(data, *flags)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class DeadlineThreadWorker(ThreadWorker):
    """gthread whose connections read each request under a deadline (see module docstring)."""

    def handle(self, conn: Any) -> Any:
        # Before gunicorn builds the connection's parser (conn.init), so it reads through us.
        # TLS is terminated in front of engagehook; ssl needs the real socket, so leave it be.
        if not self.cfg.is_ssl:
            if not isinstance(conn.sock, DeadlineSocket):
                conn.sock = DeadlineSocket(conn.sock)
            conn.sock.begin_request()
        return super().handle(conn)
