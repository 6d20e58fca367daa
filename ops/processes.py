"""Child servers that end with the command that started them.

A command that starts servers (``demand serve``, ``demand ui``, the serving part of
``demand demo``) runs them inside :class:`Children`. Each child gets its own process
group, so stopping it reaches the workers it forks (BentoML, uvicorn, gunicorn) too.
While the block runs, SIGTERM and SIGINT raise :class:`Terminated` in the main
thread instead of killing the parent outright (SIGTERM's default would skip every
``finally`` and leave the servers orphaned, holding their ports); leaving the block,
for whatever reason, stops every group (SIGTERM, then SIGKILL after a timeout),
restores the previous handlers, and turns a signal into exit code 128 + its number.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Terminated(BaseException):
    """SIGTERM or SIGINT arrived; a BaseException so that ``except Exception`` lets it pass."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def stop_group(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM ``process``'s group, wait until the group is gone, SIGKILL what is left."""
    pgid = process.pid  # started with start_new_session: the leader's pid is the group's id
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    try:
        process.wait(max(deadline - time.monotonic(), 0))
        _wait_gone(pgid, deadline - time.monotonic())  # the workers may still be shutting down
    except subprocess.TimeoutExpired:
        pass
    if _group_alive(pgid) or process.poll() is None:
        _signal_group(pgid, signal.SIGKILL)
        process.wait()
        _wait_gone(pgid, 5.0)  # the killed workers still need reaping by their new parent


def stop_pgid(pgid: int, timeout: float = 20.0) -> None:
    """Stop the group ``pgid`` leads when no Popen is at hand (a server an earlier command
    started, known by its pid file): SIGTERM, wait until the group is gone, SIGKILL."""
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _group_alive(pgid) and time.monotonic() < deadline:
        # a child of this very process stays a zombie (its group alive) until reaped
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pgid, os.WNOHANG)
        time.sleep(0.1)
    if _group_alive(pgid):
        _signal_group(pgid, signal.SIGKILL)
        _wait_gone(pgid, 5.0)


def _wait_gone(pgid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # nothing left in the group
        os.killpg(pgid, signum)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def exit_code(process: subprocess.Popen) -> int:
    """The child's exit code as a shell reports it (a child killed by signal N: 128 + N)."""
    code = process.returncode
    return 128 - code if code is not None and code < 0 else (code or 0)


class Children:
    """Start servers in their own process groups; stop them all when the block ends.

    ::

        with Children() as children:
            server = children.start(["bentoml", "serve", SERVICE])
            server.wait()
    """

    def __init__(self, timeout: float = 20.0) -> None:
        self.timeout = timeout
        self.processes: list[subprocess.Popen] = []
        self._previous: dict[int, object] = {}
        self._hold = False  # while True, a signal is remembered instead of raised
        self._pending: int | None = None

    def start(self, args: list[str], **popen) -> subprocess.Popen:
        """``subprocess.Popen(args, **popen)`` in a new session (its own process group)."""
        self._hold = True  # a signal must not land between the fork and the bookkeeping
        try:
            process = subprocess.Popen(args, start_new_session=True, **popen)
            self.processes.append(process)
        finally:
            self._hold = False
        if self._pending is not None:
            raise Terminated(self._pending)
        return process

    def stop(self) -> None:
        """Stop every child's group, the last started first."""
        while self.processes:
            stop_group(self.processes.pop(), self.timeout)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._hold:
            self._pending = self._pending or signum
            return
        raise Terminated(signum)

    def __enter__(self) -> Children:
        # handlers can only be set from the main thread; elsewhere the groups are still
        # stopped when the block ends
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self._hold = True  # a second Ctrl-C must not cut the cleanup short
        try:
            self.stop()
        finally:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)  # type: ignore[arg-type]
            self._previous.clear()
        signum = error.signum if isinstance(error, Terminated) else self._pending
        if signum is not None:
            raise SystemExit(Terminated(signum).exit_code) from None


def wait_ready(url: str, process: subprocess.Popen | None = None, timeout: float = 120) -> None:
    """Until ``url``/readyz answers 200; raises if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the service exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s")


def post_json(url: str, body: object, timeout: float = 30) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
