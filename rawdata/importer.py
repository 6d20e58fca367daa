"""`demand import DIR`: a retailer's files → checked raw tables, rejected rows quarantined.

Steps (nothing under DATA_DIR changes until the last one):

1. find the files by conventional name and read them (a file that cannot be read,
   is not UTF-8, is empty or lacks a required column stops the import here);
2. type and check every row in DuckDB (``importing/checks.py`` lists the reasons);
3. settle the grain: declared (``--grain``, ``--week-start``), that of an earlier
   import, or detected from the sales dates (one weekday only: weekly; a file whose
   dates mostly fall on one weekday but not all mixes grains and is refused);
4. check across tables: stores and weather, then products, then sales and plans;
5. merge with an earlier import (the newer row wins per key, replaced rows go to
   the import history), then write the new raw directory aside, check it against the
   raw contract (the same gate every build passes), and swap it in.

For every file, rows accepted + rows quarantined = rows read. Importing the same
files again changes nothing. Imported data replaces generated data in the raw
directory; generated data never replaces imported data (see ``pipeline.generate``).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from demand.calendar import (
    DESCRIPTION_FILE,
    WEEKDAYS,
    Calendar,
    Grain,
    RawDescription,
    SalesTable,
    Source,
)
from demand.console import UserError
from demand.settings import PROMO_KNOWN_PERIODS_BEFORE
from rawdata.importing import checks, read, store
from rawdata.importing.read import ReadOptions, SourceFile
from rawdata.importing.tables import OPTIONAL_TABLES, REQUIRED_TABLES, SPECS
from rawdata.schemas import WEATHER_MEASURES


@dataclass
class FileSummary:
    table: str
    file: str
    read: int
    accepted: int
    quarantined: int
    reasons: dict[str, int] = field(default_factory=dict)  # reason → rows quarantined


@dataclass
class ImportReport:
    files: list[FileSummary]
    grain: str
    week_start: str
    sales_table: str
    written: dict[str, int]  # rows per raw table after the import
    replaced: dict[str, int]  # earlier rows replaced by different ones, per table
    changed: bool  # False: the raw directory already held exactly this
    history: str | None = None  # the import's record under raw/imports/
    replaced_generated: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ImportOptions:
    read: ReadOptions = field(default_factory=ReadOptions)
    grain: Grain | None = None
    week_start: str | None = None
    earliest: date = date(2000, 1, 1)
    # periods of the grain before its period a plan without planned_at is known (or when
    # imported, if later); None: the grain's default (demand.settings)
    promo_known_periods_before: int | None = None


def run_import(
    folder: Path,
    raw_dir: Path,
    options: ImportOptions = ImportOptions(),
    now: datetime | None = None,
    progress=print,
    duckdb_config: dict | None = None,
) -> ImportReport:
    """Import the files in ``folder`` into ``raw_dir``; see the module docstring."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    clock = checks.Clock(now=now, earliest=options.earliest)
    if options.week_start is not None and options.week_start not in WEEKDAYS:
        raise UserError(f"--week-start {options.week_start!r}: expected one of {WEEKDAYS}")
    store.recover(raw_dir)
    earlier = _earlier_import(raw_dir)
    files = read.find_files(folder)
    sales_table = _sales_table(files, earlier)
    if earlier is None:
        absent = [t for t in REQUIRED_TABLES if t not in files]
        if absent:
            raise UserError(
                f"{folder}: no {', '.join(absent)} file; a first import needs "
                f"{sales_table.value}, {', '.join(REQUIRED_TABLES)} (and optionally "
                f"{', '.join(OPTIONAL_TABLES)})"
            )
    # the memory limit and threads of Settings.duckdb_config; rows keep their order here
    # (quarantine reports name lines), and the spill directory is the import's own
    limits = {k: v for k, v in (duckdb_config or {}).items() if k in ("memory_limit", "threads")}
    con = duckdb.connect(config=limits)
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    # what does not fit in memory spills next to the data, not into the working directory
    spill = raw_dir.with_name(raw_dir.name + ".spill")
    con.execute(f"SET temp_directory = '{str(spill).replace(chr(39), chr(39) * 2)}'")
    try:
        return _import(con, files, raw_dir, options, clock, earlier, sales_table, progress)
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


@dataclass
class _Checked:
    """Everything checked, not yet written: the relations the raw tables are written from."""

    sources: dict[str, SourceFile]
    finals: dict[str, str]  # raw table → relation of its rows after this import
    replaced: dict[str, str]  # raw table → relation of earlier rows replaced by other ones
    summaries: list[FileSummary]
    calendar: Calendar
    sales_table: SalesTable
    earlier: RawDescription | None
    notes: list[str]
    now: datetime  # the import's clock: when a plan without planned_at became known here


def _import(con, files, raw_dir, options, clock, earlier, sales_table, progress) -> ImportReport:
    sources: dict[str, SourceFile] = {}
    for name in (n for n in SPECS if n in files):
        sources[name] = read.read(con, SPECS[name], files[name], options.read)
        progress(f"read {files[name].name}: {sources[name].rows:,} rows")
    for source in sources.values():
        checks.type_rows(con, source, options.read, clock)
    calendar, notes = _calendar(con, sources, options, earlier, sales_table)
    progress(f"grain: {calendar.grain.value}" + _week(calendar))
    done = _Checked(sources, {}, {}, [], calendar, sales_table, earlier, notes, clock.now)

    known: dict[str, str] = {}
    for name in SPECS:  # what a table refers to comes before it
        if name in sources:
            _check(con, name, raw_dir, options, known, done)
        elif earlier is not None and (raw_dir / f"{name}.parquet").exists():
            done.finals[name] = _earlier_relation(con, name, raw_dir)
        _know(con, name, done.finals, known)
    for summary in done.summaries:
        progress(
            f"checked {summary.file}: {summary.accepted:,} accepted, "
            f"{summary.quarantined:,} quarantined"
        )
    return _write(con, raw_dir, done, progress)


def _check(con, name: str, raw_dir: Path, options, known: dict[str, str], done: _Checked):
    """Judge one file's rows, then merge the accepted ones with an earlier import's."""
    spec, source = SPECS[name], done.sources[name]
    columns = source.columns
    if name == "promotions":
        periods = options.promo_known_periods_before
        if periods is None:
            periods = PROMO_KNOWN_PERIODS_BEFORE[done.calendar.grain.value]
        _plan_known_at(con, source, periods * done.calendar.days, done.now)
        columns = [*columns, "planned_at"] if "planned_at" not in columns else columns
    checked = checks.judge(con, spec, done.calendar, known)
    accepted = f"accepted_{name}"
    passing = f"(SELECT * FROM {checked} WHERE _reason IS NULL)"
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {accepted} AS "
        + store.contract_select(spec, columns, passing, order="_line")
    )
    previous = raw_dir / f"{name}.parquet" if done.earlier is not None else None
    if name == "promotions" and previous is not None and previous.exists():
        accepted = _new_revisions(con, accepted, checked, previous)
    done.finals[name], replaced = store.merge(con, spec, accepted, previous)
    if replaced:
        done.replaced[name] = replaced
    done.summaries.append(_summarise(con, source, checked))


def _week(calendar) -> str:
    return f", weeks start on {calendar.week_start}" if calendar.grain is Grain.week else ""


def _earlier_import(raw_dir: Path) -> RawDescription | None:
    """The description of an earlier import in ``raw_dir`` (None: empty, or generated)."""
    if not (raw_dir / DESCRIPTION_FILE).exists():
        return None
    description = RawDescription.read(raw_dir)
    return description if description.source is Source.imported else None


def _sales_table(files: dict[str, Path], earlier: RawDescription | None) -> SalesTable:
    given = [SalesTable(t) for t in ("orders", "sales") if t in files]
    if earlier is not None:
        if given and given[0] is not earlier.sales_table:
            raise UserError(
                f"the raw data was imported as {earlier.sales_table.value}, these files bring "
                f"{given[0].value}; one data set keeps one kind of sales (to start over, delete "
                "DATA_DIR/raw first)"
            )
        return earlier.sales_table
    if not given:
        raise UserError("no orders or sales file: a first import needs one of them")
    return given[0]


def _calendar(con, sources, options: ImportOptions, earlier, sales_table):
    """The grain and week start: declared, earlier, or detected from the dates."""
    notes: list[str] = []
    if sales_table is SalesTable.orders:
        if options.grain is Grain.week:
            raise UserError(
                "order lines are daily by nature; weekly data comes as an aggregated sales file"
            )
        return Calendar(Grain.day), notes
    if earlier is not None:
        declared = Calendar(
            options.grain or earlier.grain, options.week_start or earlier.week_start
        )
        if declared != earlier.calendar:
            raise UserError(
                f"the raw data was imported at the {earlier.grain.value} grain"
                f"{_week(earlier.calendar)}; this import says {declared.grain.value}"
                f"{_week(declared)} (to start over, delete DATA_DIR/raw first)"
            )
        return earlier.calendar, notes
    name = "sales" if "sales" in sources else "promotions"
    weekdays = con.execute(
        f"SELECT isodow(date) - 1 AS weekday, count(*) AS n, count(DISTINCT date) AS days "
        f"FROM typed_{name} WHERE _reason IS NULL GROUP BY ALL ORDER BY n DESC, weekday"
    ).fetchall()
    if not weekdays:
        return Calendar(options.grain or Grain.day, options.week_start or "monday"), notes
    rows = sum(n for _, n, _ in weekdays)
    top, top_rows, top_days = weekdays[0]
    if options.grain is not None:
        start = options.week_start or WEEKDAYS[top]
        return Calendar(options.grain, start), notes
    if len(weekdays) == 1 and top_days > 1:
        start = options.week_start or WEEKDAYS[top]
        if start != WEEKDAYS[top]:
            raise UserError(
                f"every date in {sources[name].name} is a {WEEKDAYS[top]}, but --week-start "
                f"says {start}"
            )
        return Calendar(Grain.week, start), notes
    if len(weekdays) == 1:
        notes.append(
            f"one date only in {sources[name].name}: taken as daily (declare --grain week "
            "for weekly data)"
        )
        return Calendar(Grain.day), notes
    if top_rows / rows >= 0.5:
        raise UserError(
            f"{sources[name].name} mixes grains: {top_rows:,} of {rows:,} rows are dated on a "
            f"{WEEKDAYS[top]} (weekly?), the others on other weekdays (daily?). Fix the file, "
            f"or declare --grain week (rows not dated on the week's first day are then "
            f"quarantined) or --grain day"
        )
    return Calendar(Grain.day), notes


def _earlier_relation(con, name: str, raw_dir: Path) -> str:
    literal = str(raw_dir / f"{name}.parquet").replace("'", "''")
    relation = f"final_{name}"
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {relation} AS SELECT * FROM read_parquet('{literal}')"
    )
    return relation


def _know(con, name: str, finals: dict[str, str], known: dict[str, str]) -> None:
    """The accepted ids later tables are checked against."""
    if name not in finals:
        return
    column = {"weather_observed": "region_id", "stores": "store_id", "products": "product_id"}
    if name in column:
        alias = {"weather_observed": "regions"}.get(name, name)
        relation = f"known_{alias}"
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {relation} AS "
            f"SELECT DISTINCT {column[name]} FROM {finals[name]}"
        )
        known[alias] = relation


def _plan_known_at(con, source: SourceFile, days: int, now: datetime) -> None:
    """Give every plan its ``planned_at``, and refuse a revision dated before an earlier one.

    A plan without one is known at the later of its period's first day minus ``days``
    and ``now`` (the import's time): never back-dated to before anyone here knew it.
    ``_stamped`` remembers which were filled (see :func:`_new_revisions`). Among the rows
    still passing, a plan whose planned_at is before that of an earlier line for the same
    store, product and period is ``revision_out_of_order``: revisions come in the order
    they were made, so one of the two dates is wrong. Rewrites ``typed_promotions``.
    """
    typed = "typed_promotions"
    given = "planned_at" in source.columns
    stamp = (
        f"greatest(CAST(date AS TIMESTAMPTZ) - INTERVAL '{int(days)} days', "
        f"TIMESTAMPTZ '{now.isoformat()}')"
    )
    planned = f"coalesce(planned_at, {stamp})" if given else stamp
    key = "store_id, product_id, date"
    earlier = (
        f"max(CASE WHEN _reason IS NULL THEN planned_at END) OVER (PARTITION BY {key} "
        "ORDER BY _line ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
    )
    order = (
        f"CASE WHEN _reason IS NULL AND planned_at < {earlier} "
        "THEN 'revision_out_of_order|planned_at' END"
        if given
        else "CAST(NULL AS VARCHAR)"
    )
    keep = "* EXCLUDE (planned_at, _reason)" if given else "* EXCLUDE (_reason)"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {typed} AS "
        f"SELECT {keep}, {planned} AS planned_at, "
        f"{'planned_at IS NULL' if given else 'true'} AS _stamped, "
        f"coalesce(_reason, {order}) AS _reason FROM {typed}"
    )


def _new_revisions(con, accepted: str, checked: str, previous: Path) -> str:
    """The accepted plans less those stamped by this import whose promo and price equal
    the newest revision already stored for their store, product and period.

    A plan without planned_at is stamped with the import's time: imported again, it would
    otherwise become a new revision each time. An unchanged plan is no revision.
    """
    literal = str(previous).replace("'", "''")
    stored = set(pq.read_schema(previous).names)
    new = {r[0] for r in con.execute(f"DESCRIBE {accepted}").fetchall()}
    same = " AND ".join(
        f"{f'o.{c}' if c in stored else 'NULL'} IS NOT DISTINCT FROM "
        f"{f'a.{c}' if c in new else 'NULL'}"
        for c in ("promo", "price")
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW {accepted}_new AS
        SELECT a.* FROM {accepted} a
        WHERE NOT EXISTS (
            SELECT 1 FROM {checked} c, (
                SELECT *, row_number() OVER (PARTITION BY store_id, product_id, date
                                             ORDER BY planned_at DESC) AS newest
                FROM read_parquet('{literal}')) o
            WHERE c._line = a._order AND c._stamped AND o.newest = 1
              AND o.store_id = a.store_id AND o.product_id = a.product_id AND o.date = a.date
              AND {same})"""
    )
    return f"{accepted}_new"


def _summarise(con, source: SourceFile, checked: str) -> FileSummary:
    counts = dict(
        con.execute(
            f"SELECT coalesce(split_part(_reason, '|', 1), ''), count(*) FROM {checked} "
            "GROUP BY ALL"
        ).fetchall()
    )
    accepted = counts.pop("", 0)
    if source.unsplittable:
        counts["wrong_field_count"] = len(source.unsplittable)
    quarantined = sum(counts.values())
    return FileSummary(
        table=source.spec.name,
        file=source.name,
        read=accepted + quarantined,
        accepted=accepted,
        quarantined=quarantined,
        reasons=dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
    )


def _write_quarantine(con, source: SourceFile, target: Path) -> None:
    """Every rejected row: its file, line, reason, column, and its values as written."""
    originals = ", ".join(
        f"CAST(s.{checks.q(c)} AS VARCHAR) AS {checks.q(c)}" for c in source.columns
    )
    name = source.name.replace("'", "''")
    query = (
        f"SELECT '{name}' AS source_file, c._line AS line, "
        f"split_part(c._reason, '|', 1) AS reason, "
        f"NULLIF(split_part(c._reason, '|', 2), '') AS \"column\", {originals} "
        f"FROM checked_{source.spec.name} c JOIN {source.relation} s USING (_line) "
        f"WHERE c._reason IS NOT NULL"
    )
    if source.unsplittable:
        lines = ", ".join(
            f"({n}, '{text.replace(chr(39), chr(39) * 2)}')" for n, text in source.unsplittable
        )
        query += (
            f" UNION ALL BY NAME SELECT '{name}' AS source_file, line, "
            "'wrong_field_count' AS reason, NULL AS \"column\", text "
            f"FROM (VALUES {lines}) v(line, text)"
        )
    table = con.sql(f"SELECT * FROM ({query}) ORDER BY line").to_arrow_table()
    if table.num_rows:
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, target)


def _write(con, raw_dir: Path, done: _Checked, progress) -> ImportReport:
    """Write the raw directory aside, then swap it in (unless nothing changed)."""
    finals, sources, summaries = done.finals, done.sources, done.summaries
    measures = con.execute(f"DESCRIBE {finals['weather_observed']}").fetchall()
    description = RawDescription(
        source=Source.imported,
        grain=done.calendar.grain,
        week_start=done.calendar.week_start,
        sales_table=done.sales_table,
        optional_tables=tuple(t for t in OPTIONAL_TABLES if t in finals),
        weather_measures=tuple(m for m in WEATHER_MEASURES if m in {r[0] for r in measures}),
    )
    next_dir = raw_dir.with_name(raw_dir.name + ".next")
    shutil.rmtree(next_dir, ignore_errors=True)
    next_dir.mkdir(parents=True)
    written: dict[str, int] = {}
    try:
        for name, relation in finals.items():
            target = next_dir / f"{name}.parquet"
            if name in sources:
                written[name] = store.write_table(con, SPECS[name], relation, target)
                progress(f"wrote {name}: {written[name]:,} rows")
            else:
                store.link_or_copy(raw_dir / f"{name}.parquet", target)
                written[name] = pq.read_metadata(target).num_rows
        for name in (done.sales_table.value, *REQUIRED_TABLES):
            if written[name] == 0:
                raise UserError(
                    f"no row of {name} was accepted; nothing written (see the reasons above)"
                )
        rejected = {f.table for f in summaries if f.quarantined}
        for source in sources.values():
            if source.spec.name in rejected:
                target = next_dir / store.QUARANTINE / f"{source.spec.name}.parquet"
                _write_quarantine(con, source, target)
        # (no second pass through the pandera contract here: every rule it checks was
        # applied above, row by row, and the tests hold the two together)
        description.write(next_dir)
        tables = [f"{n}.parquet" for n in {*finals, *SPECS}] + [DESCRIPTION_FILE]
        quarantined = [f"{store.QUARANTINE}/{n}.parquet" for n in SPECS]
        changed = done.earlier is None or not store.same_files(
            next_dir, raw_dir, [*tables, *quarantined]
        )
        counts = {
            name: con.execute(f"SELECT count(*) FROM {rel}").fetchall()[0][0]
            for name, rel in done.replaced.items()
        }
        report = ImportReport(
            files=summaries,
            grain=done.calendar.grain.value,
            week_start=done.calendar.week_start,
            sales_table=done.sales_table.value,
            written=written,
            replaced={k: v for k, v in counts.items() if v},
            changed=changed,
            replaced_generated=done.earlier is None and (raw_dir / "orders.parquet").exists(),
            notes=done.notes,
        )
        if not changed:
            shutil.rmtree(next_dir)
            return report
        history = _record(con, raw_dir, next_dir, done.replaced, report)
        report.history = str(raw_dir / store.IMPORTS / history.name)
        store.swap(next_dir, raw_dir)
        return report
    finally:
        shutil.rmtree(next_dir, ignore_errors=True)


def _record(con, raw_dir: Path, next_dir: Path, replaced: dict[str, str], report) -> Path:
    """Carry the earlier records over, add this import's: summary, quarantined and replaced
    rows (``quarantine/`` next to the raw tables holds the latest import's only)."""
    earlier = raw_dir / store.IMPORTS
    if earlier.exists():
        shutil.copytree(
            earlier,
            next_dir / store.IMPORTS,
            copy_function=lambda a, b: store.link_or_copy(Path(a), Path(b)),
        )
    number = len(list((next_dir / store.IMPORTS).glob("*"))) + 1 if earlier.exists() else 1
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = next_dir / store.IMPORTS / f"{number:04d}-{stamp}"
    folder.mkdir(parents=True)
    for path in sorted((next_dir / store.QUARANTINE).glob("*.parquet")):
        store.link_or_copy(path, folder / store.QUARANTINE / path.name)  # kept with the record
    for name, relation in replaced.items():
        if report.replaced.get(name):
            store.write_table(con, SPECS[name], relation, folder / f"replaced_{name}.parquet")
    (folder / "summary.json").write_text(json.dumps(asdict(report), indent=2, default=str) + "\n")
    return folder
