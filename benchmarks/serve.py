"""Benchmark serving: this service against Feast's feature server and `mlflow models serve`.

    python -m benchmarks.serve [--seconds 10] [--keys 500] [--threads 4] [--no-redis]

Starts, side by side on 127.0.0.1, on the data of DEMAND_DATA_DIR and the model
holding the production alias: 1. this service (`/forecast`, one item and 1,000
items per request; one item again on a second service with the served-feature log
off, its peer for the log's cost); 2. `feast serve` returning only the feature vectors for the
same keys; 3. `mlflow models serve` scoring the same model with the features in
the request. Each is loaded by a Python client (bounded in time) at 1 and 8 connections,
rotating through the same keys; the table reports p50/p99 latency, requests/s
and errors (non-2xx, socket errors, timeouts), then the ratios against the goals.

Then the same again with the online store in Redis (DEMAND_REDIS_URL, the team
profile's store): the same keys and model, the features materialized into a
Feast project of the benchmark's own (registry in a PostgreSQL database of its
own on the team's server, both removed afterwards), and `feast serve` on that
same Redis as the peer. `--no-redis` skips those rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from benchmarks.common import Figure, console, report
from cli import serve as cli
from demand.featurestore import feast_environ, open_store
from demand.settings import REPO_ROOT, Profile, Settings, get_settings
from serving import model_loader
from serving.lookup import OnlineLookup

BIN = Path(sys.executable).parent
LOGGING_OFF = "service 1 item, logging off"


def sample_keys(settings, n: int) -> tuple[list[tuple[str, str]], dt.date]:
    daily = pd.read_parquet(
        settings.feature_dir / "store_product_daily.parquet",
        columns=["store_id", "product_id", "event_timestamp"],
    )
    last = daily["event_timestamp"].max()
    latest = daily[daily["event_timestamp"] == last][["store_id", "product_id"]].drop_duplicates()
    latest = latest.sample(min(n, len(latest)), random_state=0)
    return list(latest.itertuples(index=False, name=None)), (last - pd.Timedelta(days=1)).date()


def bodies(settings, keys, origin, model) -> dict[str, list[str]]:
    """JSON bodies per case, the same keys and target days for all three servers."""
    targets = [origin + dt.timedelta(days=1 + i % 7) for i in range(len(keys))]
    ours = [
        {"store_id": s, "product_id": p, "date": str(t)}
        for (s, p), t in zip(keys, targets, strict=True)
    ]
    store = open_store(settings)
    lookup = OnlineLookup.from_store(store, model.contract.feature_service)
    vectors = lookup.fetch([s for s, _ in keys], [p for _, p in keys], targets)
    frame = pd.DataFrame(
        {"store_id": [s for s, _ in keys], "product_id": [p for _, p in keys], **vectors.columns}
    )
    inputs = model.contract.model_frame(frame)
    stores = pd.read_parquet(settings.feature_dir / "store_attributes.parquet")
    region = dict(zip(stores["store_id"], stores["store_region_id"], strict=True))

    def feast(rows: list[int]) -> str:
        return json.dumps(
            {
                "feature_service": model.contract.feature_service,
                "entities": {
                    "store_id": [keys[i][0] for i in rows],
                    "product_id": [keys[i][1] for i in rows],
                    "region_id": [region[keys[i][0]] for i in rows],
                    "target_date": [str(targets[i]) for i in rows],
                    "forecast_date": [str(targets[i]) for i in rows],
                    "horizon": [(targets[i] - origin).days for i in rows],
                },
            }
        )

    def mlflow(rows: list[int]) -> str:
        part = inputs.iloc[rows]
        return json.dumps({"dataframe_split": json.loads(part.to_json(orient="split"))})

    batch = list(range(min(1000, len(keys))))
    return {
        "service 1 item": [json.dumps({"items": [item]}) for item in ours],
        # the same requests to a second service with the served-feature log off, run
        # right after: the log's cost on the one-item p99 (goal: within 10 %)
        LOGGING_OFF: [json.dumps({"items": [item]}) for item in ours],
        # the same service with its quantile model off (DEMAND_SERVE_QUANTILES=false)
        "point-only 1 item": [json.dumps({"items": [item]}) for item in ours],
        "service 1,000 items": [json.dumps({"items": [ours[i] for i in batch]})],
        "feast serve 1 key": [feast([i]) for i in range(len(keys))],
        "feast serve 1,000 keys": [feast(batch)],
        "mlflow serve 1 row": [mlflow([i]) for i in range(len(keys))],
        "mlflow serve 1,000 rows": [mlflow(batch)],
    }


def load(url: str, payloads: list[str], connections: int, seconds: int) -> dict:
    """p50/p99 latency, requests/s and errors of :func:`timed`."""
    return _summary(*timed(url, payloads, connections, seconds))


def timed(url: str, payloads: list[str], connections: int, seconds: int):
    """POST the payloads in turn over ``connections`` keep-alive connections for ``seconds``.

    Every request is timed on its own, so the percentiles are those of real
    requests. (wrk's --latency figures on these machines were inconsistent with
    its own request count — a p99 of 360 ms over 16,000 sequential requests in
    10 s — so wrk is not used.) Errors: non-2xx answers, timeouts, broken sockets.
    """
    parts = urlsplit(url)
    deadline = time.perf_counter() + seconds
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections

    def client(k: int) -> None:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        i = k
        while time.perf_counter() < deadline:
            body = payloads[i % len(payloads)]
            i += connections
            started = time.perf_counter()
            try:
                connection.request(
                    "POST", parts.path, body=body, headers={"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                response.read()
                if response.status >= 300:
                    errors[k] += 1
            except (OSError, http.client.HTTPException):
                errors[k] += 1
                connection.close()
                connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
                continue
            latencies[k].append((time.perf_counter() - started) * 1000)
        connection.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    timings = np.concatenate([np.asarray(x) for x in latencies]) if any(latencies) else np.zeros(1)
    return timings, elapsed, sum(errors)


def alternating(urls: dict[str, str], payloads, connections: int, seconds: int, rounds: int = 6):
    """Each case's server in turn, in short rounds (A B B A A B …), the latencies pooled:
    a machine whose load drifts during the run slows both alike (the log's on/off pair)."""
    pooled: dict[str, list] = {name: [[], 0.0, 0] for name in urls}
    names = list(urls)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            timings, elapsed, errors = timed(
                urls[name], payloads, connections, max(1, seconds // rounds)
            )
            pooled[name][0].append(timings)
            pooled[name][1] += elapsed
            pooled[name][2] += errors
    return {n: _summary(np.concatenate(t), el, e) for n, (t, el, e) in pooled.items()}


def _summary(timings, elapsed: float, errors: int) -> dict:
    return {
        "p50 ms": float(np.percentile(timings, 50)),
        "p99 ms": float(np.percentile(timings, 99)),
        "req/s": len(timings) / elapsed,
        "requests": len(timings),
        "errors": int(errors),
    }


def start_feast(settings, port: int, log: Path) -> subprocess.Popen:
    feast = [str(BIN / "feast"), "-f", str(settings.feature_store_yaml)]
    return subprocess.Popen(
        [*feast, "serve", "-h", "127.0.0.1", "-p", str(port), "--no-access-log"],
        cwd=settings.feature_repo,
        env=store_env(settings),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def store_env(settings: Settings) -> dict[str, str]:
    """This process's environment pointed at ``settings``' Feast store (profile, project …)."""
    return {**os.environ, "DEMAND_PROFILE": settings.profile.value, **feast_environ(settings)}


@contextmanager
def redis_copy(settings: Settings):
    """``settings`` with the same features in Redis: a Feast project of the benchmark's own."""
    from sqlalchemy.engine import make_url

    from demand.servers import Database, redact, redis_ping
    from features import publish

    url = make_url(settings.feast_registry_url).set(database="demand_bench_serve")
    registry = url.render_as_string(hide_password=False)
    redis_ping(settings.redis_url)
    Database(registry).ensure()
    team = settings.model_copy(
        update={
            "profile": Profile.team,
            "feast_project": "demand_bench_serve",
            "feast_registry_url": registry,
            "mlflow_tracking_uri": settings.tracking_uri,  # the same model
        }
    )
    console.print(f"materializing into Redis at {redact(settings.redis_url)} …")
    try:
        publish.apply(team)
        publish.materialize(team)
        yield team
    finally:
        open_store(team).teardown()
        import psycopg

        database = Database(registry)
        with psycopg.connect(database.conninfo("postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')


def start_mlflow(settings, model, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "MLFLOW_TRACKING_URI": settings.tracking_uri}
    uri = f"models:/{model.name}/{model.version}"
    return subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            uri,
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            "1",
        ],
        env={**env, "PATH": f"{BIN}:{env.get('PATH', '')}"},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_http(url: str, process: subprocess.Popen, timeout: float = 180) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: server exited ({process.returncode})")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except Exception:
            time.sleep(0.5)
    raise TimeoutError(url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="per case and concurrency")
    parser.add_argument("--keys", type=int, default=1000, help="distinct keys rotated through")
    parser.add_argument("--threads", type=int, default=4, help="service threads per worker")
    parser.add_argument(
        "--redis",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also serve from Redis (DEMAND_REDIS_URL), with feast serve on it",
    )
    args = parser.parse_args(argv)
    settings = get_settings(serve_reload_seconds=0, profile=Profile.embedded)
    model = model_loader.load(settings)
    keys, origin = sample_keys(settings, args.keys)
    console.print(f"model {model.name} v{model.version}, {len(keys)} keys, origin {origin}")
    payloads = bodies(settings, keys, origin, model)
    logs = settings.data_dir / "bench-serve-logs"
    logs.mkdir(parents=True, exist_ok=True)
    rows = run_cases(settings, "sqlite", payloads, args, logs, model)
    if args.redis:
        with redis_copy(settings) as team:
            redis_cases = {k: v for k, v in payloads.items() if not k.startswith("mlflow")}
            rows += run_cases(team, "redis", redis_cases, args, logs)
    report("serve", "bench-serve", rows, figures(rows), settings.data_dir)
    summarize(rows)
    return 0 if all(r["errors"] == 0 for r in rows) else 1


def run_cases(settings, store: str, payloads, args, logs: Path, model=None) -> list[dict]:
    """Start the servers on ``settings``' online store, load each case, stop them."""
    ports = {
        name: cli.free_port() for name in ("service", "quiet", "feast", "mlflow", "point-only")
    }
    saved = dict(os.environ)
    os.environ.update(store_env(settings))  # what `bentoml serve` inherits
    try:
        processes = {
            "service": cli.start_server(
                settings,
                ports["service"],
                log=logs / f"service-{store}.log",
                threads=args.threads,
                access_log=False,
            ),
            # the served-feature log off: the peer of the one-item case (logging on)
            "quiet": cli.start_server(
                settings.model_copy(update={"serve_feature_log": False}),
                ports["quiet"],
                log=logs / f"service-nolog-{store}.log",
                threads=args.threads,
                access_log=False,
            ),
            "feast": start_feast(settings, ports["feast"], logs / f"feast-{store}.log"),
        }
        os.environ["DEMAND_SERVE_QUANTILES"] = "false"
        processes["point-only"] = cli.start_server(
            settings,
            ports["point-only"],
            log=logs / f"point-only-{store}.log",
            threads=args.threads,
            access_log=False,
        )
    finally:
        os.environ.clear()
        os.environ.update(saved)
    if model is not None:
        processes["mlflow"] = start_mlflow(settings, model, ports["mlflow"], logs / "mlflow.log")
    urls = {
        "service": f"http://127.0.0.1:{ports['service']}/forecast",
        "feast": f"http://127.0.0.1:{ports['feast']}/get-online-features",
        "mlflow": f"http://127.0.0.1:{ports['mlflow']}/invocations",
        LOGGING_OFF: f"http://127.0.0.1:{ports['quiet']}/forecast",
        "point-only": f"http://127.0.0.1:{ports['point-only']}/forecast",
    }
    rows: list[dict] = []
    try:
        cli.wait_ready(f"http://127.0.0.1:{ports['service']}", processes["service"], 300)
        cli.wait_ready(f"http://127.0.0.1:{ports['quiet']}", processes["quiet"], 300)
        cli.wait_ready(f"http://127.0.0.1:{ports['point-only']}", processes["point-only"], 300)
        wait_http(f"http://127.0.0.1:{ports['feast']}/health", processes["feast"])
        if "mlflow" in processes:
            wait_http(f"http://127.0.0.1:{ports['mlflow']}/ping", processes["mlflow"])
        for case, payload in payloads.items():
            if case == LOGGING_OFF:
                continue  # run with its pair, "service 1 item"
            url = urls[case.split()[0]]
            load(url, payload[:50], 1, 2)  # warm-up: caches, lazy imports
            pair = {case: url}
            if case == "service 1 item" and LOGGING_OFF in payloads:
                pair[LOGGING_OFF] = urls[LOGGING_OFF]
                load(urls[LOGGING_OFF], payload[:50], 1, 2)
            for connections in (1, 8):
                console.print(f"› {store}: {' / '.join(pair)}, {connections} client(s) …")
                if len(pair) > 1:
                    results = alternating(pair, payload, connections, 2 * args.seconds)
                else:
                    results = {case: load(url, payload, connections, args.seconds)}
                for name, result in results.items():
                    rows.append({"store": store, "step": name, "clients": connections, **result})
    finally:
        for process in processes.values():
            cli.stop(process)
    return rows


# the case each case is compared with (docs/benchmarks.md, bench-serve): this service against
# Feast's feature server returning the same features for the same keys
PEERS = {
    "service 1 item": "feast serve 1 key",
    "service 1,000 items": "feast serve 1,000 keys",
    "mlflow serve 1 row": "service 1 item",
    LOGGING_OFF: "service 1 item",
    "point-only 1 item": "service 1 item",  # quantiles' cost: the same service without them
}


def figures(rows: list[dict]) -> list[Figure]:
    """p99 and requests/s per store, case and clients, each against its peer case on the
    same store at the same clients (where the peer ran)."""
    out = []
    for row in rows:
        peer_case = PEERS.get(row["step"])
        peer = next(
            (
                r
                for r in rows
                if r["step"] == peer_case
                and r["store"] == row["store"]
                and r["clients"] == row["clients"]
            ),
            None,
        )
        name = f"{row['step']}, {row['clients']} client(s), {row['store']}"
        details = {"store": row["store"], "clients": row["clients"], "errors": row["errors"]}
        for measure, unit in (("p99 ms", "ms"), ("req/s", "requests/s")):
            out.append(
                Figure(
                    f"{name}: {measure.split()[0]}",
                    row[measure],
                    unit,
                    peer_case if peer else None,
                    peer[measure] if peer else None,
                    details=details,
                )
            )
    return out


def summarize(rows: list[dict]) -> None:
    for store in dict.fromkeys(r["store"] for r in rows):
        console.print(f"goals, online store {store}:")
        for text, ok in goals([r for r in rows if r["store"] == store]):
            console.print(f"  {'[green]✓[/green]' if ok else '[red]✗[/red]'} {text}")


def goals(rows: list[dict]) -> list[tuple[str, bool]]:
    def pick(case: str, clients: int) -> dict | None:
        return next((r for r in rows if r["step"] == case and r["clients"] == clients), None)

    one, eight = pick("service 1 item", 1), pick("service 1 item", 8)
    point = pick("point-only 1 item", 1)
    feast8, mlflow8 = pick("feast serve 1 key", 8), pick("mlflow serve 1 row", 8)
    batch = pick("service 1,000 items", 1)
    quiet = pick(LOGGING_OFF, 1)
    assert one and eight and feast8 and batch and quiet
    versus = f"{eight['req/s'] / feast8['req/s']:.2f}× feast serve (features only)"
    if mlflow8:
        versus += f", {eight['req/s'] / mlflow8['req/s']:.2f}× mlflow serve (features sent)"
    return [
        (f"1 item, 1 client: p99 {one['p99 ms']:.1f} ms", one["p99 ms"] <= 10),
        *(
            [
                (
                    f"1 item with quantiles, 1 client: p99 {one['p99 ms']:.1f} ms = "
                    f"{one['p99 ms'] / point['p99 ms']:.2f}× point-only "
                    f"{point['p99 ms']:.1f} ms (goal ≤ 1.20×)",
                    one["p99 ms"] <= 1.2 * point["p99 ms"],
                )
            ]
            if point
            else []
        ),
        (
            f"1 item, 8 clients: {eight['req/s']:.0f} req/s = {versus}",
            eight["req/s"] >= 3 * feast8["req/s"],
        ),
        ("no errors or timeouts", all(r["errors"] == 0 for r in rows)),
        (f"1,000 items: p99 {batch['p99 ms']:.0f} ms", batch["p99 ms"] <= 150),
        (
            f"1 item, 1 client, served-feature log on: p99 {one['p99 ms']:.2f} ms against "
            f"{quiet['p99 ms']:.2f} ms off ({one['p99 ms'] / quiet['p99 ms'] - 1:+.1%})",
            one["p99 ms"] <= 1.10 * quiet["p99 ms"],
        ),
    ]


if __name__ == "__main__":
    os.chdir(REPO_ROOT)
    raise SystemExit(main())
