"""The forecast ledger: every published forecast whose target period has closed, with its actual.

Forecasts come from the published files (DATA_DIR/forecasts/origin=….parquet, written
on every profile; the team's ``demand_forecasts`` table holds the same rows). Actuals
come from the purchase feature table, read as training reads its labels
(``training.dataset``): a period's units, zero where a selling pair has no row, and the
period's status: a target later found inactive or censored (out of stock) keeps its row
with ``excluded`` saying why, and every accuracy figure leaves it out.

A version published with quantile forecasts (``units_p10`` … beside ``units``,
serving/batch.py) keeps them in its rows, each with its pinball loss
(``training.metrics.pinball_loss``, the backtest's code, run inside DuckDB) and
``quantiles``, the levels the row holds ("0.1,0.5,0.9"; NULL for a forecast without
quantiles). Ledger periods written before the ledger kept quantiles are scored again
once when their forecast files have them; otherwise their quantile figures are absent.

The ledger is one parquet file per target period (``forecast_accuracy/target=….parquet``
under the monitoring directory; also the PostgreSQL table ``forecast_accuracy`` when a
forecast database is configured). A night rewrites only the periods that need it:

* a period that closed since the last night (new rows);
* a period a forecast file of which changed (an origin published again);
* a period of the last ``monitor_restate_days`` whose actuals changed (late or corrected
  sales): a fingerprint of the period's actuals is kept per period in a manifest.

Anything else is left as it is, so a night run twice writes nothing the second time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pyarrow.parquet as pq

from demand import quantiles as qmath
from demand.console import UserError
from demand.settings import Settings
from training import dataset
from training.metrics import level_key, pinball_loss

Progress = Callable[[str], None]
TABLE = "forecast_accuracy"
MANIFEST = "manifest.json"
# the ledger's layout, kept per target period in the manifest: 2 added the quantile columns
FORMAT = 2
LEVELS = "quantiles"  # the column naming a row's quantile levels
# a forecast file must have these; the others are migrated from older platform versions
REQUIRED = ("store_id", "product_id", "origin_date", "target_date", "units", "model_version")
COLUMNS = [
    "model_name",
    "model_version",
    "origin_date",
    "target_date",
    "horizon",
    "store_id",
    "product_id",
    "category",
    "forecast",
    "actual",
    "error",
    "abs_error",
    "excluded",
]


def quantile_column(level: float) -> str:
    """A level's published quantile in a forecast file and in the ledger: ``units_p10``."""
    return qmath.column(level)


def pinball_column(level: float) -> str:
    """A level's pinball loss in the ledger: ``pinball_p10``."""
    return f"pinball_{level_key(level)}"


def levels_of(names) -> list[float]:
    """The quantile levels of a table's columns (``units_p10`` → 0.1), sorted."""
    found = []
    for name in names:
        if name.startswith("units_p"):
            try:
                level = float(name.removeprefix("units_p")) / 100
            except ValueError:
                continue
            if 0 < level < 1 and qmath.column(level) == name:
                found.append(level)
    return sorted(found)


class ForecastTableError(UserError):
    """A published forecast file the ledger cannot read (missing columns it cannot derive)."""


@dataclass
class LedgerUpdate:
    last_closed: date | None = None
    periods_new: list[str] = field(default_factory=list)
    periods_rescored: list[str] = field(default_factory=list)
    rows_written: int = 0
    rows_changed: int = 0  # rows whose content differs from what the ledger held
    unforecast_actuals: int = 0  # non-zero actuals of the rewritten periods never forecast
    migrated: list[str] = field(default_factory=list)  # files read with derived columns
    note: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.periods_new or self.periods_rescored)


def ledger_dir(settings: Settings) -> Path:
    return settings.monitoring_dir / TABLE


def partitions(settings: Settings) -> list[Path]:
    return sorted(ledger_dir(settings).glob("target=*.parquet"))


def update(settings: Settings, progress: Progress = print) -> LedgerUpdate:
    """Bring the ledger up to date with the published forecasts and the actuals now known."""
    result = LedgerUpdate()
    files = sorted(settings.forecast_dir.glob("origin=*.parquet"))
    if not files:
        result.note = f"no published forecasts in {settings.forecast_dir}"
        return result
    built = dataset.built_lineage(settings)
    calendar = built.calendar
    sales = settings.feature_dir / f"{built.sales_features_table}.parquet"
    folder = ledger_dir(settings)
    manifest = _read_manifest(folder)
    known_files = manifest.setdefault("files", {})
    targets = manifest.setdefault("targets", {})

    con = _connect(settings)
    try:
        infos = {}
        for path in files:
            infos[path.name] = _file_info(con, path, known_files.get(path.name), result)
        manifest["files"] = infos
        row = con.execute(
            "SELECT max(event_timestamp) FROM read_parquet(?)", [sales.as_posix()]
        ).fetchall()[0]
        if row[0] is None:
            result.note = "the purchase table is empty: no actuals"
            return result
        last_closed = row[0].date() - timedelta(days=calendar.days)
        result.last_closed = last_closed
        first = min(date.fromisoformat(i["first_target"]) for i in infos.values())
        candidates = []
        day = first
        while day <= last_closed:
            candidates.append(day)
            day += timedelta(days=calendar.days)
        restate_from = last_closed - timedelta(days=settings.monitor_restate_days)
        recent = [d for d in candidates if d >= restate_from]
        actual_prints = _actual_fingerprints(con, sales, recent, calendar.days)
        dirty: dict[date, str] = {}
        for day in candidates:
            key = day.isoformat()
            covering = _covering(infos, day)
            if not covering:
                continue
            files_print = _hash(covering)
            held = targets.get(key)
            if held is None:
                dirty[day] = "new"
            elif held.get("files") != files_print:
                dirty[day] = "forecasts republished"
            elif held.get("format", 1) < FORMAT and _quantiled(infos, day):
                # written before the ledger kept quantiles: scored once more to add them
                dirty[day] = "quantiles added"
            elif day >= restate_from and held.get("actuals") != actual_prints.get(key, ""):
                dirty[day] = "actuals changed"
        if not dirty:
            result.note = f"ledger up to date through {last_closed}"
            return result
        progress(
            f"scoring {len(dirty):,} target period(s): "
            + ", ".join(
                f"{n} {reason}"
                for reason, n in _count(dirty.values()).items()  # e.g. "3 new"
            )
        )
        actual_prints.update(_actual_fingerprints(con, sales, list(dirty), calendar.days))
        _score(con, settings, sales, calendar.days, infos, sorted(dirty))
        folder.mkdir(parents=True, exist_ok=True)
        for day in sorted(dirty):
            key = day.isoformat()
            written, changed = _write_partition(con, folder, day)
            unforecast = con.execute(
                "SELECT count(*) FROM unforecast WHERE target_date = ?", [day]
            ).fetchall()[0][0]
            targets[key] = {
                "files": _hash(_covering(infos, day)),
                "actuals": actual_prints.get(key, ""),
                "rows": written,
                "unforecast_actuals": int(unforecast),
                "format": FORMAT,
            }
            (result.periods_new if dirty[day] == "new" else result.periods_rescored).append(key)
            result.rows_written += written
            result.rows_changed += changed
            result.unforecast_actuals += int(unforecast)
        if settings.forecast_database:
            _write_table(con, settings.forecast_database, sorted(dirty))
    finally:
        con.close()
    _write_manifest(folder, manifest)
    if result.unforecast_actuals:
        progress(
            f"ignored {result.unforecast_actuals:,} non-zero actuals of keys or periods "
            "never forecast"
        )
    return result


def _connect(settings: Settings):
    import duckdb

    con = duckdb.connect(config=settings.duckdb_config)
    con.execute("SET TimeZone = 'UTC'")
    return con


def _file_info(con, path: Path, held: dict | None, result: LedgerUpdate) -> dict:
    """A forecast file's identity (name, size, mtime) and the targets it covers; checked
    for the columns the ledger needs (read again only when the file changed)."""
    stat = path.stat()
    stamp = f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}"
    if held and held.get("stamp") == stamp and "levels" in held:
        if held.get("migrated"):
            result.migrated.append(path.name)
        return held
    names = pq.read_schema(path).names
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise ForecastTableError(
            f"{path} lacks {', '.join(missing)}: published by an older platform version the "
            "ledger cannot read; publish that origin again (`demand forecast --all` on its "
            "data) or move the file out of the forecasts folder"
        )
    derived = [c for c in ("horizon", "model_name") if c not in names]
    if derived:
        result.migrated.append(path.name)
    first, last = con.execute(
        "SELECT min(target_date)::DATE, max(target_date)::DATE FROM read_parquet(?)",
        [path.as_posix()],
    ).fetchall()[0]
    return {
        "stamp": stamp,
        "path": path.as_posix(),
        "first_target": first.isoformat(),
        "last_target": last.isoformat(),
        "migrated": derived,
        "levels": levels_of(names),
    }


def _covering(infos: dict, day: date) -> list[str]:
    key = day.isoformat()
    return sorted(
        i["stamp"] for i in infos.values() if i["first_target"] <= key <= i["last_target"]
    )


def _quantiled(infos: dict, day: date) -> bool:
    """Whether a forecast file covering ``day`` has quantile columns."""
    key = day.isoformat()
    return any(
        i.get("levels") for i in infos.values() if i["first_target"] <= key <= i["last_target"]
    )


def _hash(parts) -> str:
    return hashlib.sha256("\n".join(map(str, parts)).encode()).hexdigest()[:16]


def _count(values) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def _actuals_sql(days: int) -> str:
    # a row known at the start of period p + 1 describes period p (training.dataset)
    return (
        "SELECT CAST(store_id AS VARCHAR) AS store_id, CAST(product_id AS VARCHAR) AS product_id,"
        f" CAST(event_timestamp AS DATE) - {days} AS target_date, units_lag_1 AS units,"
        " {status} FROM read_parquet(?)"
    )


def _status_columns(sales: Path) -> str:
    names = pq.read_schema(sales).names
    return ", ".join(
        f"{c} AS {c}" if c in names else f"NULL::DOUBLE AS {c}" for c in ("active", "censored")
    )


def _actual_fingerprints(con, sales: Path, days: list[date], period_days: int) -> dict[str, str]:
    """Per target period, a fingerprint of every actual and status row of it."""
    if not days:
        return {}
    low, high = min(days), max(days)
    query = _actuals_sql(period_days).format(status=_status_columns(sales))
    rows = con.execute(
        f"SELECT target_date, count(*), "
        "sum(hash(store_id, product_id, units, active, censored) % 1000000007) "
        f"FROM ({query}) WHERE target_date BETWEEN ? AND ? GROUP BY 1",
        [sales.as_posix(), low, high],
    ).fetchall()
    return {d.isoformat(): f"{n}:{h}" for d, n, h in rows}


def _score(con, settings: Settings, sales: Path, days: int, infos: dict, dirty: list[date]):
    """Tables ``scored`` (the ledger rows of the dirty periods) and ``unforecast``."""
    covering = [i for i in infos.values() if any(i["stamp"] in _covering(infos, d) for d in dirty)]
    paths = sorted({i["path"] for i in covering})
    levels = sorted({v for i in covering for v in i.get("levels", [])})
    con.execute("DROP TABLE IF EXISTS wanted")
    con.execute("CREATE TEMP TABLE wanted (target_date DATE)")
    con.executemany("INSERT INTO wanted VALUES (?)", [[d] for d in dirty])
    forecasts = (
        "SELECT coalesce(CAST(model_name AS VARCHAR), ?) AS model_name,"
        " CAST(model_version AS VARCHAR) AS model_version,"
        " CAST(origin_date AS DATE) AS origin_date, CAST(target_date AS DATE) AS target_date,"
        # an older file without horizons: the periods from origin to target
        f" CAST(coalesce(horizon, (CAST(target_date AS DATE) - CAST(origin_date AS DATE))"
        f" // {days}) AS INTEGER) AS horizon,"
        " CAST(store_id AS VARCHAR) AS store_id, CAST(product_id AS VARCHAR) AS product_id,"
        " CAST(units AS DOUBLE) AS forecast"
        # a quantile a file lacks (or NaN, as pandas may write it) is NULL
        + "".join(
            f', CASE WHEN isnan(CAST("{c}" AS DOUBLE)) THEN NULL ELSE CAST("{c}" AS DOUBLE) END'
            f' AS "{c}"'
            for c in map(quantile_column, levels)
        )
        + " FROM read_parquet(?, union_by_name = true)"
        " WHERE CAST(target_date AS DATE) IN (SELECT target_date FROM wanted)"
    )
    # union_by_name fills a column some files lack with NULL; one absent from all fails
    names = set().union(*(pq.read_schema(p).names for p in paths))
    if "horizon" not in names:
        forecasts = forecasts.replace("coalesce(horizon, ", "coalesce(NULL::INTEGER, ")
    if "model_name" not in names:
        forecasts = forecasts.replace("CAST(model_name AS VARCHAR)", "NULL::VARCHAR")
    con.execute("DROP TABLE IF EXISTS f")
    con.execute(f"CREATE TEMP TABLE f AS {forecasts}", [settings.model_name, paths])
    actuals = _actuals_sql(days).format(status=_status_columns(sales))
    con.execute("DROP TABLE IF EXISTS a")
    con.execute(
        f"CREATE TEMP TABLE a AS SELECT * FROM ({actuals}) "
        "WHERE target_date IN (SELECT target_date FROM wanted)",
        [sales.as_posix()],
    )
    category = _categories_sql(settings)
    _register_pinball(con)
    # per level: the published quantile and its pinball loss; the levels the row holds
    held = ", ".join(
        f"""CASE WHEN "{quantile_column(v)}" IS NOT NULL THEN '{qmath.label(v)}' END"""
        for v in levels
    )
    quantiles = f"nullif(concat_ws(',', {held}), '')" if levels else "NULL::VARCHAR"
    per_level = "".join(
        f', "{quantile_column(v)}", pinball_loss(actual, "{quantile_column(v)}", {v!r}::DOUBLE)'
        f' AS "{pinball_column(v)}"'
        for v in levels
    )
    con.execute("DROP TABLE IF EXISTS scored")
    con.execute(
        f"""CREATE TEMP TABLE scored AS
        WITH c AS ({category}),
        j AS (
            SELECT f.*, coalesce(c.category, '?') AS category,
                   coalesce(a.units, 0.0) AS actual, a.active, a.censored
            FROM f
            LEFT JOIN a USING (store_id, product_id, target_date)
            LEFT JOIN c USING (product_id)
        )
        SELECT model_name, model_version, origin_date, target_date, horizon, store_id,
               product_id, category, forecast, actual, forecast - actual AS error,
               abs(forecast - actual) AS abs_error,
               CASE WHEN active = 0 THEN 'inactive'
                    WHEN censored = 1 THEN 'censored'
                    WHEN forecast IS NULL THEN 'no forecast'
               END AS excluded,
               {quantiles} AS {LEVELS}{per_level}
        FROM j"""
    )
    con.execute("DROP TABLE IF EXISTS unforecast")
    con.execute(
        """CREATE TEMP TABLE unforecast AS
        SELECT a.target_date FROM a
        ANTI JOIN (SELECT DISTINCT store_id, product_id, target_date FROM f) k
        USING (store_id, product_id, target_date)
        WHERE coalesce(a.units, 0) <> 0"""
    )


def _register_pinball(con) -> None:
    """``pinball_loss(actual, quantile, level)`` in SQL: ``training.metrics.pinball_loss``
    on DuckDB's vectors (rows with a NULL are not passed: their loss is NULL)."""
    import duckdb
    import pyarrow as pa

    def pinball(actual, quantile, level):
        y = actual.to_numpy(zero_copy_only=False)
        q = quantile.to_numpy(zero_copy_only=False)[:, None]
        tau = level.to_numpy(zero_copy_only=False)
        return pa.array(pinball_loss(y, q, tau[:1] if len(tau) else [0.5])[:, 0], pa.float64())

    with contextlib.suppress(duckdb.Error):  # registered by an earlier scoring on this connection
        con.remove_function("pinball_loss")
    double = duckdb.sqltype("DOUBLE")
    con.create_function("pinball_loss", pinball, [double] * 3, double, type="arrow")


def _categories_sql(settings: Settings) -> str:
    path = settings.feature_dir / "product_attributes.parquet"
    if path.exists() and "category" in pq.read_schema(path).names:
        return (
            "SELECT CAST(product_id AS VARCHAR) AS product_id,"
            " CAST(arg_max(category, event_timestamp) AS VARCHAR) AS category"
            f" FROM read_parquet('{path.as_posix()}') GROUP BY 1"
        )
    return "SELECT NULL::VARCHAR AS product_id, NULL::VARCHAR AS category WHERE false"


def _scored_columns(con) -> list[str]:
    names = [r[0] for r in con.execute("DESCRIBE scored").fetchall()]
    return [*COLUMNS, *(c for c in names if c not in COLUMNS)]


def _quoted(names) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _write_partition(con, folder: Path, day: date) -> tuple[int, int]:
    """Replace one period's file (when its rows changed); its rows and changed rows."""
    path = folder / f"target={day.isoformat()}.parquet"
    columns = _scored_columns(con)
    new = f"SELECT {_quoted(columns)} FROM scored WHERE target_date = DATE '{day.isoformat()}'"
    select = f"{new} ORDER BY model_name, model_version, store_id, product_id, origin_date"
    rows = con.execute(f"SELECT count(*) FROM ({new})").fetchall()[0][0]
    if path.exists():
        # rows compared on the columns both hold: a file gaining the quantile columns is
        # rewritten, its rows changed only where a value they held differs
        held = pq.read_schema(path).names
        both = _quoted([c for c in columns if c in held])
        new_rows = f"SELECT {both} FROM scored WHERE target_date = DATE '{day.isoformat()}'"
        old = f"SELECT {both} FROM read_parquet('{path.as_posix()}')"
        changed = con.execute(f"SELECT count(*) FROM ({new_rows} EXCEPT ALL {old})").fetchall()
        changed = changed[0][0]
        gone = con.execute(f"SELECT count(*) FROM ({old} EXCEPT ALL {new_rows})").fetchall()[0][0]
        if not changed and not gone and held == columns:
            return rows, 0
    else:
        changed = rows
    tmp = path.with_suffix(".parquet.tmp")
    con.execute(f"COPY ({select}) TO '{tmp.as_posix()}' (FORMAT parquet)")
    tmp.replace(path)  # readers see the old file or the new one
    return rows, int(changed)


def _write_table(con, url: str, days: list[date]) -> None:
    """Replace the periods' rows of ``forecast_accuracy`` in one transaction."""
    import psycopg

    from demand.servers import Database, ServerUnavailable, redact

    database = Database(url)
    database.ensure()
    try:
        with psycopg.connect(database.conninfo()) as conn, conn.transaction():
            conn.execute(
                f"""CREATE TABLE IF NOT EXISTS {TABLE} (
                    model_name text NOT NULL,
                    model_version text NOT NULL,
                    origin_date date NOT NULL,
                    target_date date NOT NULL,
                    horizon integer NOT NULL,
                    store_id text NOT NULL,
                    product_id text NOT NULL,
                    category text,
                    forecast double precision,
                    actual double precision,
                    error double precision,
                    abs_error double precision,
                    excluded text,
                    quantiles text,
                    PRIMARY KEY (model_name, model_version, store_id, product_id,
                                 origin_date, target_date)
                )"""
            )
            columns = _scored_columns(con)
            # a table from before the ledger kept quantiles (or of other levels) gains the
            # columns; rows written before keep NULL there
            for name in columns[len(COLUMNS) :]:
                kind = "text" if name == LEVELS else "double precision"
                conn.execute(f'ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS "{name}" {kind}')
            conn.execute(f"DELETE FROM {TABLE} WHERE target_date = ANY(%s)", (days,))
            reader = con.sql(
                f"SELECT {_quoted(columns)} FROM scored ORDER BY target_date"
            ).to_arrow_reader(100_000)
            copy_sql = f"COPY {TABLE} ({_quoted(columns)}) FROM STDIN"
            with conn.cursor() as cursor, cursor.copy(copy_sql) as copy:
                for batch in reader:
                    for row in zip(*(c.to_pylist() for c in batch.columns), strict=True):
                        copy.write_row(row)
    except psycopg.OperationalError as error:
        raise ServerUnavailable(
            f"cannot write the forecast ledger to PostgreSQL at {redact(url)}: "
            f"{str(error).strip().splitlines()[0]}"
        ) from None


def columns_of(paths) -> list[str]:
    """The columns of ledger files together: ``COLUMNS``, then the quantile columns any
    holds (a file written before the ledger kept quantiles has none)."""
    names: dict[str, None] = {}
    for path in paths:
        names.update(dict.fromkeys(pq.read_schema(path).names))
    return [*COLUMNS, *(n for n in names if n not in COLUMNS)]


def read(settings: Settings, since: date | None = None, columns: list[str] | None = None):
    """Ledger rows (targets from ``since``) as a pandas frame; empty when nothing is scored.
    Every column by default, the quantile ones NULL in rows that have none.

    Text columns come back categorical: at the M5 size a window holds tens of millions
    of rows, and a Python string per row and column would cost gigabytes."""
    import duckdb
    import pandas as pd

    paths = [
        p
        for p in partitions(settings)
        if since is None or p.stem.removeprefix("target=") >= since.isoformat()
    ]
    if not paths:
        return pd.DataFrame(columns=columns or COLUMNS)
    import pyarrow as pa

    with duckdb.connect(config=settings.duckdb_config) as con:
        table = con.sql(
            f"SELECT {_quoted(columns or columns_of(paths))}"
            " FROM read_parquet(?, union_by_name = true)",
            params=[[p.as_posix() for p in paths]],
        ).to_arrow_table()
    for i, name in enumerate(table.column_names):
        kind = table.schema.field(i).type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            table = table.set_column(i, name, table.column(i).dictionary_encode())
    # dates as datetime64, not a Python object per row
    return table.to_pandas(date_as_object=False)


def sums(settings: Settings, start: date, end: date, groupings: dict[str, list[str]]):
    """Per grouping (name → columns), the sums every metric is a function of
    (``training.metrics.SUMS``) over the counted rows of targets ``start`` … ``end``, and
    the rows left out per reason. Summed in DuckDB: at the M5 size four weeks of targets
    hold ~12 M rows, which pandas would hold in gigabytes. ``week`` is the target's
    Monday."""
    import duckdb
    import pandas as pd

    paths = _window(settings, start, end)
    if not paths:
        return {n: pd.DataFrame(columns=[*c, "rows"]) for n, c in groupings.items()}, {}
    with duckdb.connect(config=settings.duckdb_config) as con:
        con.execute(
            "CREATE TEMP TABLE counted AS SELECT model_version, horizon, store_id, category,"
            " CAST(date_trunc('week', target_date) AS DATE) AS week,"
            " count(*) AS rows, sum(abs(forecast - actual)) AS absolute_error,"
            " sum((forecast - actual) * (forecast - actual)) AS squared_error,"
            " sum(forecast - actual) AS error, sum(abs(actual)) AS absolute_actual"
            " FROM read_parquet(?, union_by_name = true) WHERE excluded IS NULL GROUP BY ALL",
            [paths],
        )
        excluded = dict(
            con.execute(
                "SELECT excluded, count(*) FROM read_parquet(?, union_by_name = true)"
                " WHERE excluded IS NOT NULL "
                "GROUP BY 1 ORDER BY 1",
                [paths],
            ).fetchall()
        )
        found = {}
        for name, columns in groupings.items():
            keys = ", ".join(columns)
            found[name] = con.execute(
                f"SELECT {keys + ', ' if keys else ''}sum(rows)::BIGINT AS rows,"
                " sum(absolute_error) AS absolute_error, sum(squared_error) AS squared_error,"
                " sum(error) AS error, sum(absolute_actual) AS absolute_actual FROM counted"
                + (f" GROUP BY {keys} ORDER BY {keys}" if keys else "")
            ).df()
    return found, {str(k): int(v) for k, v in excluded.items()}


def quantile_sums(settings: Settings, start: date, end: date):
    """Per model version, levels (the rows' ``quantiles``) and horizon, the sums every
    quantile score is a function of (``training.metrics.quantile_scores_from_sums``) over
    the counted rows with quantiles of targets ``start`` … ``end``: ``rows``,
    ``absolute_actual``, per level ``pinball_pX`` (Σ pinball loss) and ``below_pX`` (actuals
    at or below the quantile), and ``inside`` (actuals in the central interval, ends
    included; NULL under two levels). None of them for a window whose ledger files hold no
    quantile column (written before the ledger kept them)."""
    import duckdb
    import pandas as pd

    keys = ["model_version", LEVELS, "horizon"]
    paths = _window(settings, start, end)
    if not paths or LEVELS not in columns_of(paths):
        return pd.DataFrame(columns=[*keys, "rows", "absolute_actual"])
    source = "read_parquet(?, union_by_name = true)"
    frames = []
    with duckdb.connect(config=settings.duckdb_config) as con:
        labels = [
            r[0]
            for r in con.execute(
                f"SELECT DISTINCT {LEVELS} FROM {source} "
                f"WHERE excluded IS NULL AND {LEVELS} IS NOT NULL ORDER BY 1",
                [paths],
            ).fetchall()
        ]
        for label in labels:
            levels = qmath.parse_levels(label)
            q = [quantile_column(v) for v in levels]
            # coverage as training.metrics.quantile_scores counts it: at or below, ends in
            sums = "".join(
                f', sum("{pinball_column(v)}") AS "pinball_{level_key(v)}"'
                f', sum(CAST(actual <= "{c}" AS BIGINT)) AS "below_{level_key(v)}"'
                for v, c in zip(levels, q, strict=True)
            )
            inside = (
                f'sum(CAST("{q[0]}" <= actual AND actual <= "{q[-1]}" AS BIGINT))'
                if len(levels) >= 2
                else "NULL::BIGINT"
            )
            frames.append(
                con.execute(
                    f"SELECT CAST(model_version AS VARCHAR) AS model_version, {LEVELS},"
                    " horizon, count(*)::BIGINT AS rows, sum(abs(actual)) AS absolute_actual"
                    f"{sums}, {inside} AS inside FROM {source}"
                    f" WHERE excluded IS NULL AND {LEVELS} = ? GROUP BY ALL ORDER BY ALL",
                    [paths, label],
                ).df()
            )
    if not frames:
        return pd.DataFrame(columns=[*keys, "rows", "absolute_actual"])
    return pd.concat(frames, ignore_index=True)


def _window(settings: Settings, start: date, end: date) -> list[str]:
    """The ledger files of targets ``start`` … ``end``."""
    return [
        p.as_posix()
        for p in partitions(settings)
        if start.isoformat() <= p.stem.removeprefix("target=") <= end.isoformat()
    ]


def worst_series(settings: Settings, start: date, end: date, count: int):
    """Every scored row of the ``count`` series with the most absolute error in the window."""
    import duckdb

    paths = _window(settings, start, end)
    if not paths:
        return None
    with duckdb.connect(config=settings.duckdb_config) as con:
        return con.sql(
            """WITH rows AS (
                SELECT * FROM read_parquet(?, union_by_name = true) WHERE excluded IS NULL
            ),
            worst AS (
                SELECT store_id, product_id FROM rows GROUP BY ALL
                ORDER BY sum(abs_error) DESC, store_id, product_id LIMIT ?
            )
            SELECT store_id, product_id, target_date, horizon, forecast, actual
            FROM rows JOIN worst USING (store_id, product_id)
            ORDER BY store_id, product_id, target_date, horizon""",
            params=[paths, count],
        ).df()


def _read_manifest(folder: Path) -> dict:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}


def _write_manifest(folder: Path, manifest: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    tmp.replace(folder / MANIFEST)
