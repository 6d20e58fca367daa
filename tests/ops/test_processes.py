"""Children: servers started in their own groups end with the block, whatever ends it."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from ops.processes import Children, exit_code
from tests.children import group_alive

# a "server" that forks a worker into its own process group, as BentoML and uvicorn do;
# with "ignore" both ignore SIGTERM (a server that hangs on shutdown)
SERVER = """
import signal, subprocess, sys, time
if sys.argv[1] == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print("up", flush=True)
time.sleep(120)
"""


def start_server(children: Children, mode: str = "plain"):
    process = children.start([sys.executable, "-c", SERVER, mode], stdout=-1)
    assert process.stdout.readline().strip() == b"up"  # the worker exists by now
    return process


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_every_group_and_exits_128_plus_its_number(signum):
    before = signal.getsignal(signum)
    with pytest.raises(SystemExit) as stopped, Children(timeout=10) as children:
        server = start_server(children)
        os.kill(os.getpid(), signum)
        time.sleep(5)  # the handler interrupts this
        pytest.fail("the signal did not interrupt the block")
    assert stopped.value.code == 128 + signum
    assert not group_alive(server.pid)  # the worker too, not only the leader
    assert signal.getsignal(signum) is before


def test_an_error_in_the_block_stops_the_servers_and_propagates():
    with pytest.raises(RuntimeError, match="boom"), Children() as children:
        server = start_server(children)
        raise RuntimeError("boom")
    assert not group_alive(server.pid)


def test_a_server_that_ignores_sigterm_is_killed_after_the_timeout():
    started = time.monotonic()
    with Children(timeout=1) as children:
        server = start_server(children, "ignore")
    assert not group_alive(server.pid)
    assert server.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 10


def test_a_child_that_ends_by_itself_leaves_its_exit_code():
    with Children() as children:
        done = children.start([sys.executable, "-c", "raise SystemExit(3)"])
        done.wait()
        killed = children.start([sys.executable, "-c", "import os; os.kill(os.getpid(), 15)"])
        killed.wait()
    assert exit_code(done) == 3
    assert exit_code(killed) == 128 + signal.SIGTERM
