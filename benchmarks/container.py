"""Benchmark the service image: /forecast inside the container against `bentoml serve` outside.

    python -m benchmarks.container [--seconds 10] [--base-image NAME]

Prepares what `make container-smoke` prepares (deploy/smoke.py: the tiny retailer in the
team and the embedded profile, the image built from the team's registry), then, per
profile, serves the same Bento inside the container (podman, host network) and outside it
(`bentoml serve`), one worker and the service's threads each, and loads both with
benchmarks/serve.py's client: one item per request, 8 connections. Reports p50/p99 and
requests/s, the container's cold start, the image's size and build time, and the ratios
against the goals (within 1.2× of outside; ready within 15 s; at most 1.5 GB).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from benchmarks.common import Figure, console, report
from benchmarks.serve import load
from demand.settings import get_settings
from deploy import container, smoke

CLIENTS = 8
RATIO_GOAL = 1.2
SIZE_GOAL_GB = 1.5


def figures(rows: list[dict], size_gb: float, seconds: dict) -> list[Figure]:
    """Per profile, the container's p99 and requests/s against `bentoml serve` outside it;
    its cold start, the image's size and build time on their own."""
    out = []
    for inside, outside in zip(rows[::2], rows[1::2], strict=True):
        profile = inside["profile"]
        for measure, unit in (("p99 ms", "ms"), ("req/s", "requests/s")):
            out.append(
                Figure(
                    f"container, {profile}: {measure.split()[0]}",
                    inside[measure],
                    unit,
                    "bentoml serve",
                    outside[measure],
                    details={"clients": CLIENTS},
                )
            )
        out.append(Figure(f"container, {profile}: cold start", inside["cold start s"], "s"))
    out.append(Figure("image size", size_gb, "GB"))
    out.append(Figure("image build (base cached)", seconds["image build"], "s"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="load per case")
    parser.add_argument("--base-image", default="localhost/demand-base:bookworm")
    parser.add_argument("--image", default="localhost/demand-forecast-service:bench")
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/demand-container-bench"))
    args = parser.parse_args(argv)
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    stage = smoke.plan(args.workdir, args.image)
    rows: list[dict] = []
    try:
        seconds = smoke.prepare(stage, args.base_image)
        size = container.image_size("podman", stage.image) / 1e9
        for profile in (stage.team, stage.embedded):
            with smoke.serving(stage, profile) as (inside, outside, cold):
                singles = [b for b in smoke.requests_for(profile) if len(b) == 1]
                payloads = [json.dumps({"items": items}) for items in singles]
                for where, url in (("container", inside.url), ("bentoml serve", outside)):
                    load(f"{url}/forecast", payloads, 1, 2)  # warm-up: first requests pay imports
                    result = load(f"{url}/forecast", payloads, CLIENTS, args.seconds)
                    rows.append({"profile": profile.name, "step": where, **result})
                rows[-2]["cold start s"] = cold
                rows[-1]["cold start s"] = "—"  # started while nothing else was starting
    finally:
        smoke.cleanup(stage)
    title = "service image vs bentoml serve, 1 item, 8 clients"
    report("container", title, rows, figures(rows, size, seconds), get_settings().data_dir)
    console.print(f"image {stage.image}: {size:.2f} GB (goal ≤ {SIZE_GOAL_GB} GB)")
    console.print(f"image build (base cached): {seconds['image build']:.0f} s")
    for inside, outside in zip(rows[::2], rows[1::2], strict=True):
        p99 = inside["p99 ms"] / outside["p99 ms"]
        rate = inside["req/s"] / outside["req/s"]
        ok = p99 <= RATIO_GOAL and rate >= 1 / RATIO_GOAL
        console.print(
            f"{inside['profile']}: container p99 {p99:.2f}× and req/s {rate:.2f}× outside's "
            f"({'within' if ok else 'NOT within'} {RATIO_GOAL}×); "
            f"ready {inside['cold start s']:.1f} s after start"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
