"""`demand import DIR`: a retailer's files → checked raw tables, rejected rows quarantined.

Steps (nothing under DATA_DIR changes until the last one):

1. find the files by conventional name and read them (a file that cannot be read,
   is not UTF-8, is empty or lacks a required column stops the import here);
2. type every row in DuckDB and find its own faults (``importing/checks.py`` lists
   the reasons);
3. settle the grain from the weekdays of every readable sales date, whatever else its
   row holds (no check has judged a row yet): one weekday only is weekly, weeks
   starting on it; a file whose dates mostly fall on one weekday but not all mixes
   grains and is refused. A declared ``--grain`` or ``--week-start`` the dates
   contradict is refused with that evidence (``GrainContradiction``), and so is one
   that contradicts an earlier import;
4. check across tables: stores and weather, then products, then sales and plans;
   when no row of a file the raw data needs is accepted, stop (``ImportStopped``,
   which carries the per-file, per-reason summary and example rows to show);
5. merge with an earlier import (the newer row wins per key, replaced rows go to
   the import history), then write the new raw directory aside, check it against the
   raw contract (the same gate every build passes), and swap it in. An import that
   stops before this step leaves the raw directory exactly as it was.

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

from demand import swap
from demand.calendar import (
    DESCRIPTION_FILE,
    WEEKDAYS,
    Calendar,
    DateEvidence,
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

EXAMPLES_PER_REASON = 3


@dataclass
class Example:
    """A quarantined row as the user can find it: line, column and the value written there."""

    reason: str
    line: int
    column: str | None
    value: str | None  # the column's text; without a column, the row's key (or its text)


@dataclass
class FileSummary:
    table: str
    file: str
    read: int
    accepted: int
    quarantined: int
    reasons: dict[str, int] = field(default_factory=dict)  # reason → rows quarantined
    examples: list[Example] = field(default_factory=list)  # the first few lines per reason


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
    evidence: str = ""  # how the grain was settled, with the dates that show it


class ImportStopped(UserError):
    """Every row checked, and the import stops: ``report`` says what each file got and why."""

    def __init__(self, message: str, report: ImportReport) -> None:
        super().__init__(message)
        self.report = report


class GrainContradiction(UserError):
    """A declared grain or week start that the dates (or an earlier import) contradict."""


@dataclass(frozen=True)
class ImportOptions:
    read: ReadOptions = field(default_factory=ReadOptions)
    grain: Grain | None = None
    week_start: str | None = None
    earliest: date | None = None  # a window the user keeps; none by default
    latest: date | None = None
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
    clock = checks.Clock(now=now, earliest=options.earliest, latest=options.latest)
    if options.earliest and options.latest and options.earliest > options.latest:
        raise UserError(
            f"DEMAND_IMPORT_EARLIEST_DATE {options.earliest} is after "
            f"DEMAND_IMPORT_LATEST_DATE {options.latest}: every row would be out of range"
        )
    if options.week_start is not None and options.week_start not in WEEKDAYS:
        raise UserError(f"--week-start {options.week_start!r}: expected one of {WEEKDAYS}")
    swap.recover(raw_dir)  # as every command that opens it
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
    evidence: str = ""
    now: datetime | None = (
        None  # the import's clock: when a plan without planned_at became known here
    )


def _import(con, files, raw_dir, options, clock, earlier, sales_table, progress) -> ImportReport:
    sources: dict[str, SourceFile] = {}
    for name in (n for n in SPECS if n in files):
        sources[name] = read.read(con, SPECS[name], files[name], options.read)
        progress(f"read {files[name].name}: {sources[name].rows:,} rows")
    for source in sources.values():
        checks.type_rows(con, source, options.read, clock)
    calendar, notes, evidence = _calendar(con, sources, options, earlier, sales_table)
    progress(f"grain: {evidence}")
    done = _Checked(sources, {}, {}, [], calendar, sales_table, earlier, notes, evidence, clock.now)

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
    done.notes += _date_notes(done.summaries, clock)
    _stop_if_empty(done)
    return _write(con, raw_dir, done, progress)


def _date_notes(summaries: list[FileSummary], clock: checks.Clock) -> list[str]:
    """What the date reasons mean here: the bounds are settings or fixed, never guessed."""
    given = {r for f in summaries for r in f.reasons}
    notes = []
    if "impossible_date" in given:
        notes.append(
            f"impossible_date: before {checks.FIRST_POSSIBLE} or after {checks.LAST_POSSIBLE}"
        )
    if "date_out_of_range" in given:
        window = [
            f"DEMAND_IMPORT_{name}_DATE={day}"
            for name, day in (("EARLIEST", clock.earliest), ("LATEST", clock.latest))
            if day is not None
        ]
        notes.append(f"date_out_of_range: outside {', '.join(window)} (unset to accept them)")
    return notes


def _stop_if_empty(done: _Checked) -> None:
    """A first import none of whose rows of a needed file passed writes nothing."""
    if done.earlier is not None:  # the earlier rows are still there
        return
    needed = (done.sales_table.value, *REQUIRED_TABLES)
    empty = [f for f in done.summaries if f.table in needed and f.accepted == 0]
    if not empty:
        return
    why = "; ".join(
        f"{f.file} {f.quarantined:,} quarantined ("
        + ", ".join(f"{r} {n:,}" for r, n in f.reasons.items())
        + ")"
        for f in empty
    )
    report = ImportReport(
        files=done.summaries,
        grain=done.calendar.grain.value,
        week_start=done.calendar.week_start,
        sales_table=done.sales_table.value,
        written={},
        replaced={},
        changed=False,
        notes=done.notes,
        evidence=done.evidence,
    )
    raise ImportStopped(f"no row accepted: {why}; nothing written (examples above)", report)


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
    done.summaries.append(_summarise(con, source, checked, spec.key))


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


def _calendar(
    con, sources, options: ImportOptions, earlier, sales_table
) -> tuple[Calendar, list[str], str]:
    """The grain and week start, and the evidence printed with them.

    From the dates of every row (``_evidence``), before any row is judged: a declared
    grain or week start must agree with them, an undeclared one is read from them.
    """
    notes: list[str] = []
    if sales_table is SalesTable.orders:
        if options.grain is Grain.week:
            raise UserError(
                "order lines are daily by nature; weekly data comes as an aggregated sales file"
            )
        return Calendar(Grain.day), notes, "day (order lines are daily)"
    name = "sales" if "sales" in sources else "promotions"
    evidence = _evidence(con, sources[name]) if name in sources else None
    if earlier is not None:
        declared = Calendar(
            options.grain or earlier.grain, options.week_start or earlier.week_start
        )
        if declared != earlier.calendar:
            raise GrainContradiction(
                f"the raw data was imported at the {earlier.grain.value} grain"
                f"{_week(earlier.calendar)}; this import says {declared.grain.value}"
                f"{_week(declared)} (to start over, delete DATA_DIR/raw first)"
            )
        calendar = earlier.calendar
        said = f"{calendar.grain.value}{_week(calendar)}, as imported before"
        if (
            evidence is not None
            and calendar.grain is Grain.week
            and evidence.kind in ("weekly", "single")
            and evidence.top_day != calendar.week_start
        ):
            raise GrainContradiction(
                f"the raw data holds weeks starting on {calendar.week_start.title()}, but "
                f"{evidence}: none of them starts a week (to start over, delete "
                "DATA_DIR/raw first)"
            )
        return calendar, notes, said + (f"; {evidence}" if evidence else "")
    if evidence is None or evidence.kind == "none":
        calendar = Calendar(options.grain or Grain.day, options.week_start or "monday")
        return calendar, notes, f"{calendar.grain.value}{_week(calendar)} ({evidence})"
    kind, top = evidence.kind, evidence.top_day
    if options.grain is Grain.day:
        if kind == "weekly":
            raise GrainContradiction(
                f"--grain day, but {evidence}: the data is weekly, weeks starting on "
                f"{top.title()} (leave --grain out, or declare --grain week)"
            )
        return Calendar(Grain.day), notes, f"day (declared); {evidence}"
    if options.grain is Grain.week or kind in ("weekly", "single"):
        if options.grain is Grain.week and kind == "daily":
            raise GrainContradiction(
                f"--grain week, but {evidence}: the data is daily (leave --grain out)"
            )
        start = options.week_start or top
        if start != top and (options.grain is Grain.week or kind == "weekly"):
            raise GrainContradiction(
                f"--week-start {start}, but {evidence}: weeks start on {top.title()} "
                f"(leave --week-start out, or declare --week-start {top})"
            )
        if options.grain is Grain.week:
            calendar = Calendar(Grain.week, start)
            return calendar, notes, f"week{_week(calendar)} (declared); {evidence}"
        if kind == "weekly":
            calendar = Calendar(Grain.week, start)
            return calendar, notes, f"{evidence}: weekly, weeks start on {top.title()}"
        notes.append(
            f"one date only in {evidence.file}: taken as daily (declare --grain week "
            "for weekly data)"
        )
        return Calendar(Grain.day), notes, f"{evidence}: taken as daily"
    if kind == "mixed":
        raise UserError(
            f"{evidence.file} mixes grains: {evidence} (weekly and daily rows?). Fix the "
            f"file, or declare --grain week (rows not dated on the week's first day are then "
            f"quarantined) or --grain day"
        )
    if options.week_start is not None:
        notes.append(f"--week-start {options.week_start} is not used: the data is daily")
    return Calendar(Grain.day), notes, f"{evidence}: daily"


def _evidence(con, source: SourceFile) -> DateEvidence:
    """The weekdays of every readable, possible date of ``source`` (typed, not judged)."""
    day = "CAST(date AS DATE)"
    rows = con.execute(
        f"SELECT isodow({day}) - 1, count(*), count(DISTINCT {day}), min({day}), max({day}) "
        f"FROM typed_{source.spec.name} WHERE {day} BETWEEN DATE '{checks.FIRST_POSSIBLE}' "
        f"AND DATE '{checks.LAST_POSSIBLE}' GROUP BY ALL"
    ).fetchall()
    return DateEvidence(
        file=source.name,
        rows=sum(r[1] for r in rows),
        weekdays={r[0]: (r[1], r[2]) for r in rows},
        first=min((r[3] for r in rows), default=None),
        last=max((r[4] for r in rows), default=None),
    )


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


def _summarise(con, source: SourceFile, checked: str, key: tuple[str, ...]) -> FileSummary:
    reason = "split_part(_reason, '|', 1)"
    grouped = con.execute(
        f"SELECT coalesce({reason}, ''), count(*), "
        f"min(_line, {EXAMPLES_PER_REASON}) FILTER (WHERE _reason IS NOT NULL) "
        f"FROM {checked} GROUP BY ALL"
    ).fetchall()
    counts = {r: n for r, n, _ in grouped}
    accepted = counts.pop("", 0)
    lines = sorted(line for r, _, picked in grouped if r for line in picked or [])
    examples = _examples(con, source, checked, key, lines)
    if source.unsplittable:
        counts["wrong_field_count"] = len(source.unsplittable)
        examples += [
            Example("wrong_field_count", n, None, text[:80])
            for n, text in source.unsplittable[:EXAMPLES_PER_REASON]
        ]
    quarantined = sum(counts.values())
    order = {r: i for i, r in enumerate(sorted(counts, key=lambda r: (-counts[r], r)))}
    return FileSummary(
        table=source.spec.name,
        file=source.name,
        read=accepted + quarantined,
        accepted=accepted,
        quarantined=quarantined,
        reasons={r: counts[r] for r in order},
        examples=sorted(examples, key=lambda e: (order[e.reason], e.line)),
    )


def _examples(con, source: SourceFile, checked: str, key, lines: list[int]) -> list[Example]:
    """The quarantined rows at ``lines``, each with the value as written in its column
    (the row's key where the reason names no column)."""
    if not lines:
        return []
    named = [c for c in source.columns if c != "_line"]
    text = {c: f"CAST(s.{checks.q(c)} AS VARCHAR)" for c in named}
    by_column = " ".join(f"WHEN '{c.replace(chr(39), chr(39) * 2)}' THEN {text[c]}" for c in named)
    whole_key = (
        " || ' ' || ".join(f"'{k}=' || coalesce({text[k]}, '')" for k in key if k in text) or "NULL"
    )
    column = "NULLIF(split_part(c._reason, '|', 2), '')"
    rows = con.execute(
        f"SELECT split_part(c._reason, '|', 1), c._line, {column}, "
        f"CASE WHEN {column} IS NULL THEN {whole_key} ELSE CASE {column} {by_column} END END "
        f"FROM {checked} c JOIN {source.relation} s USING (_line) "
        f"WHERE c._line IN ({', '.join(str(n) for n in lines)}) ORDER BY c._line"
    ).fetchall()
    return [Example(r, line, col, value) for r, line, col, value in rows]


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
    written: dict[str, int] = {}
    # one writer of raw_dir at a time; swapped in whole unless it is deleted (nothing changed)
    with swap.replacing(raw_dir, progress) as next_dir:
        for name, relation in finals.items():
            target = next_dir / f"{name}.parquet"
            if name in sources:
                written[name] = store.write_table(con, SPECS[name], relation, target)
                progress(f"wrote {name}: {written[name]:,} rows")
            else:
                store.link_or_copy(raw_dir / f"{name}.parquet", target)
                written[name] = pq.read_metadata(target).num_rows
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
            evidence=done.evidence,
        )
        if not changed:
            shutil.rmtree(next_dir)
            return report
        history = _record(con, raw_dir, next_dir, done.replaced, report)
        report.history = str(raw_dir / store.IMPORTS / history.name)
        return report


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
