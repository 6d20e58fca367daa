"""Small helpers shared by the benchmarks: timing, memory, and a results table."""

from __future__ import annotations

import json
import platform
import resource
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console(highlight=False, width=150)


@contextmanager
def timed(results: dict, name: str):
    console.print(f"[cyan]›[/cyan] {name} …")
    started = time.perf_counter()
    yield
    results[name] = time.perf_counter() - started
    console.print(f"  {name}: {results[name]:.2f}s")


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def report(title: str, rows: list[dict], out: Path) -> None:
    """Print ``rows`` as a table and save them as JSON next to the data."""
    table = Table(title=f"{title} · {datetime.now(UTC):%Y-%m-%d} · {platform.node()}")
    for column in rows[0]:
        table.add_column(column, justify="left" if column == "step" else "right")
    for row in rows:
        table.add_row(*(_fmt(v) for v in row.values()))
    console.print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": datetime.now(UTC).isoformat(), "rows": rows}, indent=2))
    console.print(f"saved {out}")


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
