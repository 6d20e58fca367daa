"""SIGTERM and SIGINT to `demand serve` stop the BentoML server it started, workers and all."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from serving import cli
from tests.children import free_port, groups_of, kill_groups, signal_and_check_stopped

DEMAND = str(Path(sys.executable).with_name("demand"))


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_demand_serve_stops_the_server(serving_env, tmp_path, signum):
    port = free_port()
    log = tmp_path / "serve.log"
    command = [DEMAND, "serve", "--port", str(port), "--threads", "1", "--no-access-log"]
    with open(log, "wb") as out:
        # its own session, as from a terminal: the signal reaches `demand` alone, and the
        # test can tell its group from pytest's
        process = subprocess.Popen(
            command,
            env=cli.server_env(serving_env),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    groups: list[int] = []
    try:
        cli.wait_ready(f"http://127.0.0.1:{port}", process, timeout=150)
        groups = groups_of(process)
        signal_and_check_stopped(process, groups, [port], signum)
    except BaseException:
        print(log.read_text()[-3000:])
        raise
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        kill_groups(groups)
