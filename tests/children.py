"""Watching a command that starts servers: its children, their groups, the ports they hold."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def children_of(pid: int) -> list[int]:
    """The direct children of ``pid`` (Linux)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def groups_of(process: subprocess.Popen) -> list[int]:
    """The process groups of ``process`` (started with its own session) and of its children."""
    return sorted({process.pid, *(os.getpgid(c) for c in children_of(process.pid))})


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_output(process: subprocess.Popen, log: Path, text: str, timeout: float) -> str:
    """Until ``log`` (the process's output) contains ``text``; fails if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = log.read_text(errors="replace")
        if text in out:
            return out
        if process.poll() is not None:
            raise AssertionError(f"exited with {process.returncode} before {text!r}:\n{out}")
        time.sleep(0.5)
    raise AssertionError(f"no {text!r} within {timeout:.0f}s:\n{log.read_text()[-3000:]}")


def signal_and_check_stopped(
    process: subprocess.Popen, groups: list[int], ports: list[int], signum: int, timeout=60
) -> None:
    """Send ``signum`` to ``process``: it exits 128 + signum, its groups and ports are gone."""
    assert groups, "the command started no children"
    process.send_signal(signum)
    code = process.wait(timeout)
    left = [g for g in groups if group_alive(g)]
    held = [p for p in ports if not port_free(p)]
    kill_groups(left)  # don't leave them behind for the next test
    assert not left, f"process groups {left} outlived the command (ports held: {held})"
    assert not held, f"ports {held} are still held"
    assert code == 128 + signum


@contextlib.contextmanager
def launched(command: list[str], env: dict[str, str], cwd: Path, log: Path):
    """``command`` in a session of its own (as from a terminal: a signal reaches it alone,
    and its groups are told apart from pytest's), output in ``log``.

    Yields the process and a list for the test to fill with the groups to clean up. On a
    failure the log's tail is printed; whatever happens, nothing started is left running.
    """
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    groups: list[int] = []
    try:
        yield process, groups
    except BaseException:
        print(log.read_text()[-3000:])
        raise
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        kill_groups(groups)


def kill_groups(groups: list[int]) -> None:
    for g in groups:
        if g != os.getpgrp() and group_alive(g):  # never the test's own group
            os.killpg(g, signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
