"""Serving from a real Redis Cluster: three masters of this test's own on loopback ports.

The tiny retailer is materialized into the cluster (DEMAND_REDIS_TYPE=redis_cluster) and
into the shared single Redis; every key's hash holds the same bytes on both, the keys are
spread over all three masters, the cluster's writes went through pipelines (not a round
trip per key), and ``/forecast`` answers the same from both. A master killed mid-service
gives ``/forecast`` a 503 naming the store, not a hang; the master restarted, it answers.
Under CI=true a missing ``redis-server`` fails the test instead of skipping it.
"""

from __future__ import annotations

import datetime as dt
import random
import subprocess
import threading
import time

import pytest
import redis

from demand.featurestore import feast_environ, open_store
from demand.settings import RedisType
from serving.service import DemandForecast, Item
from tests.children import port_free
from tests.servers import REDIS, require_program, team_feast_project

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

NODE_TIMEOUT_MS = 2000  # a killed master is marked failed (and a restarted one back) in seconds
BUS = 10_000  # a node's cluster bus listens on its port + 10000, so its port is 55535 at most


def cluster_port(taken: list[int]) -> int:
    """A free port whose cluster bus port is free too."""
    for _ in range(1000):
        port = random.randint(20_000, 45_000)
        if port not in taken and port_free(port) and port_free(port + BUS):
            return port
    raise AssertionError("no free pair of ports for a Redis Cluster node")


class RedisCluster:
    """Three ``redis-server --cluster-enabled yes`` masters, joined by ``redis-cli --cluster
    create``; nothing kept on disk but each node's cluster config file."""

    def __init__(self, directory) -> None:
        install = "install Redis (Debian: apt-get install redis-server redis-tools)"
        self.server = require_program("redis-server", install)
        self.cli = require_program("redis-cli", install)
        self.directory = directory
        self.ports: list[int] = []
        for _ in range(3):
            self.ports.append(cluster_port(self.ports))
        self.processes: dict[int, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start(self, port: int) -> None:
        self.processes[port] = subprocess.Popen(
            [self.server, "--port", str(port), "--bind", "127.0.0.1",
             "--cluster-enabled", "yes",
             "--cluster-config-file", str(self.directory / f"nodes-{port}.conf"),
             "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
             "--save", "", "--appendonly", "no", "--daemonize", "no",
             "--dir", str(self.directory)],
            stdout=(self.directory / f"redis-{port}.log").open("ab"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip

        def answers() -> bool:
            if self.processes[port].poll() is not None:
                log = (self.directory / f"redis-{port}.log").read_text()[-2000:]
                pytest.fail(f"redis-server on {port} exited: {log}")
            return self.node(port).ping()

        self._until(answers, f"127.0.0.1:{port} answers")

    def create(self) -> None:
        for port in self.ports:
            self.start(port)
        subprocess.run(
            [self.cli, "--cluster", "create", *self.url.split(","),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        self.wait_ok()

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)

    def wait_ok(self) -> None:
        def ok() -> bool:
            return all(self.node(p).cluster("info")["cluster_state"] == "ok" for p in self.ports)

        self._until(ok, "the cluster's state is ok on every node")

    def kill(self, port: int) -> None:
        """Stop one master the hard way, as a crash or a lost host would."""
        process = self.processes[port]
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    def stop(self) -> None:
        for port in self.processes:
            self.kill(port)

    def hashes(self, project: str) -> tuple[dict[bytes, dict], dict[int, int]]:
        """Every hash of ``project``'s keys, by entity key (the key less the project), and
        how many keys each master holds."""
        suffix, found, spread = project.encode(), {}, {}
        for port in self.ports:
            node = self.node(port)
            mine = [k for k in node.scan_iter(count=5000) if k.endswith(suffix)]
            spread[port] = len(mine)
            found.update({k[: -len(suffix)]: node.hgetall(k) for k in mine})
        return found, spread

    @staticmethod
    def _until(check, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if check():
                    return
            except redis.RedisError:
                pass
            assert time.monotonic() < deadline, f"not within {timeout:.0f}s: {what}"
            time.sleep(0.2)


@pytest.fixture
def redis_cluster(tmp_path):
    cluster = RedisCluster(tmp_path)
    try:
        cluster.create()
        yield cluster
    finally:
        cluster.stop()


def _single_hashes(project: str) -> dict[bytes, dict]:
    host, port = REDIS.split(":")
    client = redis.Redis(host=host, port=int(port))
    suffix = project.encode()
    return {
        key[: -len(suffix)]: client.hgetall(key)
        for key in client.scan_iter(count=5000)
        if key.endswith(suffix)
    }


def _environ(settings) -> dict[str, str]:
    """The DEMAND_* variables a service started for ``settings`` reads."""
    return {
        "DEMAND_PROFILE": settings.profile.value,
        **feast_environ(settings),
        "DEMAND_REDIS_TYPE": settings.redis_type.value,
        "DEMAND_MLFLOW_TRACKING_URI": settings.tracking_uri,
        "DEMAND_SERVE_RELOAD_SECONDS": "0",
        "BENTOML_HOME": str(settings.bentoml_home),
    }


def _forecast(service, items):
    """``service.forecast(items)`` in a thread, so that a hang fails the test instead of
    holding it (the bound is a hang's, far above any answer)."""
    answer: list = []
    worker = threading.Thread(target=lambda: answer.append(service.forecast(items=items)))
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "/forecast hung on the Redis Cluster"
    return answer[0]


def _pipelines(monkeypatch) -> list[int]:
    """Each cluster pipeline executed: how many commands it sent."""
    sent: list[int] = []
    real = redis.cluster.ClusterPipeline.execute

    def counted(self, *args, **kwargs):
        sent.append(len(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(redis.cluster.ClusterPipeline, "execute", counted)
    return sent


def test_served_from_a_redis_cluster_as_from_one_redis_and_503_when_a_master_is_lost(
    serving_env, redis_cluster, known_keys, monkeypatch
):
    keys, origin = known_keys
    sample = keys[:12]
    items = [
        Item(store_id=s, product_id=p, date=origin + dt.timedelta(days=1 + i % 7))
        for i, (s, p) in enumerate(sample)
    ]
    cluster_settings = serving_env.model_copy(update={"redis_type": RedisType.redis_cluster})

    with team_feast_project(serving_env) as single, monkeypatch.context() as patch:
        expected = _single_hashes(single.feast_project)
        for name, value in _environ(single).items():
            patch.setenv(name, value)
        one_redis = _forecast(DemandForecast.inner(), items)

    with monkeypatch.context() as patch:
        sent = _pipelines(patch)
        team = team_feast_project(cluster_settings, redis_url=redis_cluster.url)
        cluster = team.__enter__()
    try:
        got, spread = redis_cluster.hashes(cluster.feast_project)
        assert len(expected) > 500
        assert got == expected  # every key, field and value byte for byte
        assert all(n > 0 for n in spread.values()), spread  # all three masters hold keys
        # pipelined: per view (one batch each here, under 10,000 rows) one execution of its
        # HGETs and one of its HSETs, each a round trip per master; never one per key
        views = open_store(cluster).list_feature_views()
        assert sum(sent) >= len(expected) and 0 < len(sent) <= 2 * len(views), sent

        with monkeypatch.context() as patch:
            for name, value in _environ(cluster).items():
                patch.setenv(name, value)
            service = DemandForecast.inner()  # as `bentoml serve` constructs it
            answer = _forecast(service, items)
            assert service.loaded.lookup.where == f"redis online store at {redis_cluster.url}"
            assert [f.status for f in answer.forecasts] == ["ok"] * len(items)
            assert [f.units for f in answer.forecasts] == [f.units for f in one_redis.forecasts]

            lost = redis_cluster.ports[1]
            redis_cluster.kill(lost)
            down = _forecast(service, items)
            assert down.status_code == 503
            error = down.body.decode()
            assert "online store unavailable" in error
            assert f"redis online store at {redis_cluster.url}" in error
            # the reason: the lost master refuses, or the others say the cluster is down
            assert f"127.0.0.1:{lost}" in error or "cluster is down" in error.lower(), error

            # back (its data lost: nothing was saved), the cluster answers again
            redis_cluster.start(lost)
            redis_cluster.wait_ok()
            back = _forecast(service, items)
            assert len(back.forecasts) == len(items)
    finally:
        team.__exit__(None, None, None)
