"""A proxy between a redis-py client and the real Redis, for tests of what the client
makes of a stream it does not control: Redis's replies cut into small pieces, or a
Redis that dies or falls silent after so many bytes of the client's commands.

On a Unix socket (``unix=True``) each piece reaches the client in a read of its own:
the proxy sends the next piece only once the client has read the last one (the
socket's ``SIOCOUTQ``, bytes sent and not yet read by the peer, is back to 0), so a
split at every byte is a split at every byte whatever the machine's load. Over TCP
the pieces may merge again on the way.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import shutil
import socket
import tempfile
import termios
import threading
from collections.abc import Callable
from pathlib import Path

from tests.servers import REDIS

_SIOCOUTQ = termios.TIOCOUTQ  # the same request number on Linux


class RedisProxy:
    """``with RedisProxy(...) as proxy:`` a client connects to ``proxy.address``.

    ``pieces``: the size of each piece of Redis's replies, called once per piece (None:
    forwarded as read). ``forward``: bytes of the client's commands that reach Redis;
    after them the proxy ``then`` "dies" (closes every socket and stops listening: a
    killed server) or falls "silent" (reads and forwards nothing, for ``silent_s``
    seconds at most, then closes: a hung server or a lost network)."""

    def __init__(
        self,
        *,
        unix: bool = False,
        pieces: Callable[[], int] | None = None,
        forward: int | None = None,
        then: str = "dies",
        silent_s: float = 60.0,
    ) -> None:
        assert then in ("dies", "silent")
        self.pieces, self.forward, self.then, self.silent_s = pieces, forward, then, silent_s
        self.unix = unix
        self.sent_up = 0  # bytes of commands forwarded to Redis
        self.sent_down = 0  # bytes of replies forwarded to the client
        self.pieces_down = 0  # in how many pieces
        self.cut = threading.Event()  # the forward budget is spent
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        if unix:
            self._dir = tempfile.mkdtemp(prefix="redis-proxy-")  # short: a socket path is
            path = str(Path(self._dir) / "redis.sock")  # at most 107 bytes
            self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._listener.bind(path)
            self.address = path
        else:
            self._listener = socket.create_server(("127.0.0.1", 0))
            self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._listener.listen()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def __enter__(self) -> RedisProxy:
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._close_all()
        for thread in self._threads:
            thread.join(timeout=5)
        if self.unix:
            shutil.rmtree(self._dir, ignore_errors=True)

    # -- inside ------------------------------------------------------------------------

    def _close_all(self) -> None:
        with self._lock:
            for s in [self._listener, *self._sockets]:
                with contextlib.suppress(OSError):  # not connected, or closed already
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            host, port = REDIS.split(":")
            upstream = socket.create_connection((host, int(port)))
            with self._lock:
                self._sockets += [client, upstream]
            for pump in (self._up, self._down):
                thread = threading.Thread(target=pump, args=(client, upstream), daemon=True)
                self._threads.append(thread)
                thread.start()

    def _up(self, client: socket.socket, upstream: socket.socket) -> None:
        try:
            while data := client.recv(1 << 16):
                if self.forward is not None:
                    with self._lock:
                        room = self.forward - self.sent_up
                        data = data[:room]
                        self.sent_up += len(data)
                    upstream.sendall(data)
                    if self.sent_up >= self.forward:
                        self._cut()
                        return
                else:
                    upstream.sendall(data)
                    self.sent_up += len(data)
        except OSError:
            pass

    def _cut(self) -> None:
        self.cut.set()
        if self.then == "silent":
            self._stop.wait(self.silent_s)  # nothing read, nothing forwarded meanwhile
        self._close_all()

    def _down(self, client: socket.socket, upstream: socket.socket) -> None:
        try:
            while data := upstream.recv(1 << 16):
                if self.cut.is_set() and self.then == "silent":
                    continue
                view = memoryview(data)
                while view:
                    size = self.pieces() if self.pieces else len(view)
                    piece, view = view[:size], view[size:]
                    client.sendall(piece)
                    self.sent_down += len(piece)
                    self.pieces_down += 1
                    if self.unix and self.pieces:
                        self._wait_read(client)
        except (OSError, ValueError):  # a socket closed under it (fileno -1)
            pass

    def _wait_read(self, client: socket.socket) -> None:
        """Until the client has read everything sent to it (or the proxy closes)."""
        queued = array.array("i", [0])
        while not self._stop.is_set():
            fcntl.ioctl(client.fileno(), _SIOCOUTQ, queued, True)
            if queued[0] == 0:
                return
            self._stop.wait(0.0001)
