"""Small helpers shared by the benchmarks: timing, memory, a results table and its figures."""

from __future__ import annotations

import json
import platform
import resource
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from demand import memory

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
    """This process's peak resident memory since it started or since :func:`reset_peak`."""
    peak = memory.peak_gib()
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


reset_peak = memory.reset_peak


@dataclass(frozen=True)
class Figure:
    """One measured figure and the peer it is judged against, as the benchmark tables name it.

    ``peer_value`` is the peer measured in the same run (the machines are shared: a ratio
    within one run holds better than seconds from two); ``None`` where the figure has no
    peer (a size, a count) or the peer was not measured.
    """

    name: str
    value: float | None  # None: not measured (interrupted), the reason in details
    unit: str
    peer: str | None = None
    peer_value: float | None = None
    scale: str | None = None
    details: dict = field(default_factory=dict)  # what else tells runs apart: rows, clients …


def same_tables(left: Path, right: Path, float_digits: int | None = None) -> bool:
    """Every parquet table of ``right`` holds the same multiset of rows in ``left``: equal row
    counts and equal sums of row hashes, a streaming aggregate (an EXCEPT ALL of 36 M wide
    rows spilled for many minutes). ``float_digits``: floats rounded first, for two engines
    that add in different orders."""
    import pyarrow.parquet as pq

    from features import build_duckdb

    con = build_duckdb.connect({"memory_limit": "1GB"})
    try:
        for path in sorted(right.glob("*.parquet")):
            schema = pq.read_schema(path)
            columns = [
                f'round("{f.name}", {float_digits})'
                if float_digits is not None and f.type in ("double", "float")
                else f'"{f.name}"'
                for f in schema
            ]
            digests = [
                con.execute(
                    f"SELECT COUNT(*), SUM(CAST(hash({', '.join(columns)}) AS HUGEINT)) "
                    "FROM read_parquet(?)",
                    [(folder / path.name).as_posix()],
                ).fetchone()
                for folder in (left, right)
            ]
            if digests[0] != digests[1]:
                print(f"  {path.name}: {digests[0]} != {digests[1]}")
                return False
    finally:
        con.close()
    return True


def report(name: str, title: str, rows: list[dict], figures: list[Figure], data_dir: Path) -> None:
    """Print ``rows`` as a table; save them, and ``figures`` one object each, as JSON.

    The table goes to ``DATA_DIR/bench/<name>.json``; the figures to
    ``DATA_DIR/bench-<name>.json``, a list a later run can be compared with figure by figure.
    """
    now = datetime.now(UTC)
    table = Table(title=f"{title} · {now:%Y-%m-%d} · {platform.node()}")
    for column in rows[0]:
        table.add_column(column, justify="left" if column == "step" else "right")
    for row in rows:
        table.add_row(*(_fmt(v) for v in row.values()))
    console.print(table)
    out = data_dir / "bench" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": now.isoformat(), "rows": rows}, indent=2))
    figures_out = data_dir / f"bench-{name}.json"
    figures_out.write_text(json.dumps(figure_records(figures, now), indent=2))
    console.print(f"saved {out} (table) and {figures_out} ({len(figures)} figures)")


def figure_records(figures: list[Figure], when: datetime) -> list[dict]:
    """The figures as JSON objects: name, value, unit, peer, peer_value, ratio, date, scale …"""
    records = []
    for figure in figures:
        record = asdict(figure)
        details = record.pop("details")
        ratio = (
            figure.value / figure.peer_value
            if figure.peer_value not in (None, 0) and figure.value is not None
            else None
        )
        record["ratio"] = round(ratio, 4) if ratio is not None else None
        record.update(date=when.isoformat(), host=platform.node(), **details)
        records.append(record)
    return records


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
