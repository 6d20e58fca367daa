"""Benchmark the model's quality: its backtest WAPE against every baseline, in one run.

    python -m benchmarks.quality [--scale default]

Generates the retailer at ``--scale`` (kept when its raw tables are already there: the
generator writes the same tables for the same seed), builds the features, then runs
the training job exactly as `demand train` does (nothing registered) and prints the
model's backtest WAPE, each baseline's, the best baseline's and how far below it the
model is (the issue's goal: at least 20 %), with the training time per step. The
validation-window WAPEs, where the model's options are chosen, are printed beside
them; the backtest only judges. Data goes to DEMAND_DATA_DIR/bench/quality-<scale>.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import warnings

from benchmarks.common import Figure, console, peak_rss_gib, report, timed
from demand.settings import get_settings
from features import pipeline
from training import train

SCALES = ["tiny", "default", "large"]


def raw_digest(raw_dir) -> str:
    """One hash of the generated raw tables' bytes: the goal measures the model, never the
    data, so two runs compared must show the same digest."""
    sha = hashlib.sha256()
    for path in sorted(raw_dir.glob("*.parquet")):
        sha.update(path.name.encode())
        sha.update(path.read_bytes())
    return sha.hexdigest()[:16]


def improvement(model: float, best: float) -> float:
    """How far below the best baseline the model's WAPE is, as a share of it (0.2: 20 %)."""
    return 1 - model / best if best else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=SCALES, default="default")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    base = get_settings()
    settings = get_settings(
        data_dir=base.data_dir / "bench" / f"quality-{args.scale}", scale=args.scale
    )
    t: dict[str, float] = {}
    with timed(t, "features"):
        regenerate = not (settings.raw_dir / "orders.parquet").exists()
        pipeline.run(settings, progress=lambda m: None, regenerate=regenerate)
    digest = raw_digest(settings.raw_dir)
    with timed(t, "train"):
        result = train.run(settings, register=False, progress=console.print)
    summary = result.summary
    wape = summary["wape"]
    names = [p for p in summary.index if p != "model"]
    best = min(names, key=lambda p: wape[p])
    gain = improvement(wape["model"], wape[best])
    rows = [
        {
            "predictor": p,
            "backtest WAPE": f"{wape[p]:.4f}",
            "validation WAPE": _valid(result, p),
            "model below it": "" if p == "model" else f"{improvement(wape['model'], wape[p]):+.1%}",
        }
        for p in ["model", *sorted(names, key=lambda p: wape[p])]
    ]
    console.print(
        f"scale {args.scale} · raw tables {digest} · {result.rows:,} rows · model WAPE "
        f"{wape['model']:.4f} vs best baseline {best} {wape[best]:.4f}: "
        f"[bold]{gain:.1%} below[/bold] (goal: 20 %)"
    )
    console.print(
        "training seconds: "
        + ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items())
        + f"; train total {t['train']:.1f}; peak {peak_rss_gib():.2f} GiB"
    )
    figures = [
        Figure(
            "backtest WAPE, model",
            float(wape["model"]),
            "WAPE",
            peer=f"best baseline ({best})",
            peer_value=float(wape[best]),
            scale=args.scale,
            details={"rows": result.rows, "raw_digest": digest, "improvement": round(gain, 4)},
        ),
        *(Figure(f"backtest WAPE, {p}", float(wape[p]), "WAPE", scale=args.scale) for p in names),
        *(Figure(f"training: {k}", v, "s", scale=args.scale) for k, v in result.seconds.items()),
        Figure("training: total", t["train"], "s", scale=args.scale),
    ]
    report("quality", f"bench-quality ({args.scale})", rows, figures, base.data_dir)
    return 0


def _valid(result, predictor: str) -> str:
    value = result.validation.get(predictor) if result.validation else None
    return "" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    raise SystemExit(main())
