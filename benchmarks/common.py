"""Small helpers shared by the benchmarks: timing, memory, and a results table."""

from __future__ import annotations

import json
import platform
import resource
import time
import uuid
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


@contextmanager
def team_store(settings, name: str):
    """``settings`` moved onto the team's servers, in a Feast project of the benchmark's own.

    A unique project (Redis keys carry it) and a unique PostgreSQL database for its
    registry, both removed afterwards: a benchmark never touches a team's features.
    """
    import psycopg
    from sqlalchemy.engine import make_url

    from demand.featurestore import open_store
    from demand.servers import Database, redis_ping
    from demand.settings import Profile

    unique = f"demand_bench_{name}_{uuid.uuid4().hex[:8]}"
    url = make_url(settings.feast_registry_url).set(database=unique)
    database = Database(url.render_as_string(hide_password=False))
    redis_ping(settings.redis_url)
    database.ensure()
    team = settings.model_copy(
        update={
            "profile": Profile.team,
            "feast_project": unique,
            "feast_registry_url": database.url,
        }
    )
    try:
        yield team
    finally:
        try:
            open_store(team).teardown()  # the project's Redis keys and registry rows
        finally:
            with psycopg.connect(database.conninfo("postgres"), autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')


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
