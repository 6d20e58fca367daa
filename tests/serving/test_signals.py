"""SIGTERM and SIGINT to `demand serve` (and the demo) stop the BentoML server, workers and all."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

from cli import serve as cli
from tests.children import (
    children_of,
    free_port,
    groups_of,
    launched,
    signal_and_check_stopped,
)

DEMAND = str(Path(sys.executable).with_name("demand"))


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_demand_serve_stops_the_server(serving_env, tmp_path, signum):
    port = free_port()
    log = tmp_path / "serve.log"
    command = [DEMAND, "serve", "--port", str(port), "--threads", "1", "--no-access-log"]
    with launched(command, cli.server_env(serving_env), tmp_path, log) as (process, groups):
        cli.wait_ready(f"http://127.0.0.1:{port}", process, timeout=150)
        groups += groups_of(process)
        signal_and_check_stopped(process, groups, [port], signum)


DEMO = """
import sys
from demand.settings import get_settings
from cli.serve import demo
demo(get_settings(), port=int(sys.argv[1]))
"""


def test_a_signal_during_the_demos_serving_stops_the_service(serving_env, tmp_path):
    """The serving part of `demand demo`: signalled as soon as its service is starting."""
    port = free_port()
    log = tmp_path / "demo.log"
    command = [sys.executable, "-c", DEMO, str(port)]
    with launched(command, cli.server_env(serving_env), tmp_path, log) as (process, groups):
        deadline = time.monotonic() + 60
        while not children_of(process.pid) and process.poll() is None:
            assert time.monotonic() < deadline, "the demo started no service"
            time.sleep(0.1)
        groups += groups_of(process)
        signal_and_check_stopped(process, groups, [port], signal.SIGTERM)
        assert "service stopped" in log.read_text()
