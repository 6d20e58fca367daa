"""Row checks as SQL over whole columns (DuckDB): each row gets its first failing reason.

A row passes or gets one reason, checked in this order (the first that fails is the
one reported):

1. ``null_key`` / ``missing_value``: a key or a required value is empty;
2. ``wrong_type``: a value that is not a number, a date, a timestamp or a flag;
3. the table's own rules: ``negative_units``, ``non_integer_quantity``,
   ``non_positive_quantity``, ``negative_price``, ``impossible_value``,
   ``impossible_weather``, ``impossible_date`` (before 1900 or after 2199: no
   retailer's history or plan, and beyond 2262 the raw tables' nanosecond timestamps
   end), ``future_date`` (sales, orders, observations and forecasts' issue after the
   clock; planned promotions may lie in the future, their ``planned_at`` may not),
   ``date_out_of_range`` (outside DEMAND_IMPORT_EARLIEST_DATE / _LATEST_DATE, when the
   user sets them: no window is imposed by default), ``valid_before_issue``,
   ``empty_plan`` (a plan with neither promo nor price),
   ``negative_stock`` (sales' ``on_hand``), ``listed_to_before_from`` (assortment);
4. ``not_period_start``: a sales or plan date that does not start a period of the grain;
5. across tables: ``unknown_store``, ``unknown_product`` (not among the accepted
   stores or products, this import's or earlier ones'), ``region_without_weather``
   (a store whose region has no observed weather);
6. duplicates of the natural key among the rows that passed: when every copy has the
   same values the first (lowest line) is kept and the others are ``duplicate_row``;
   when the copies disagree none can be trusted and all are ``conflicting_duplicate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import duckdb

from demand.calendar import Calendar, Grain
from rawdata.importing.read import ReadOptions, SourceFile
from rawdata.importing.tables import Column, Kind, TableSpec
from rawdata.schemas import WEATHER_RANGES

_TRUE = "('true', '1', 'yes', 'y', 't')"
_FALSE = "('false', '0', 'no', 'n', 'f')"
_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "DECIMAL")
_INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT")


# Dates outside these are impossible rather than old or far ahead: a typo or a sentinel
# (1899-12-30, 9999-12-31). A retailer's history from the 1990s or earlier is plausible.
FIRST_POSSIBLE = date(1900, 1, 1)
LAST_POSSIBLE = date(2199, 12, 31)


@dataclass(frozen=True)
class Clock:
    """What "the future" means for this import, and the window the user keeps, if any."""

    now: datetime  # aware, UTC
    earliest: date | None = None  # DEMAND_IMPORT_EARLIEST_DATE
    latest: date | None = None  # DEMAND_IMPORT_LATEST_DATE

    @property
    def today(self) -> date:
        return self.now.date()


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _parse(column: Column, duck_type: str, options: ReadOptions) -> tuple[str, str]:
    """(SQL of the typed value, SQL true when a value is given but is not of the kind)."""
    c = q(column.name)
    kind = column.kind
    numeric = duck_type.startswith(_NUMERIC) or duck_type.startswith(_INTEGERS)
    if duck_type != "VARCHAR":
        if kind in (Kind.key, Kind.text):
            value = f"NULLIF(trim(CAST({c} AS VARCHAR)), '')"
            return value, "false"
        if kind in (Kind.number, Kind.integer) and numeric:
            value = f"CAST({c} AS DOUBLE)"
            return value, f"({c} IS NOT NULL AND NOT isfinite({value}))"
        if kind is Kind.flag and duck_type == "BOOLEAN":
            return c, "false"
        if kind is Kind.date and duck_type == "DATE":
            return c, "false"
        if kind is Kind.date and duck_type.startswith("TIMESTAMP"):
            # a day given as a timestamp: only midnight is a day
            day = f"CAST({c} AS DATE)"
            value = f"CASE WHEN CAST({day} AS TIMESTAMP) = CAST({c} AS TIMESTAMP) THEN {day} END"
            return value, f"({c} IS NOT NULL AND {value} IS NULL)"
        if kind is Kind.timestamp and (duck_type.startswith("TIMESTAMP") or duck_type == "DATE"):
            return f"CAST({c} AS TIMESTAMPTZ)", "false"
        c = f"CAST({c} AS VARCHAR)"  # anything else is parsed from its text
    text = f"NULLIF(trim({c}), '')"
    if kind in (Kind.key, Kind.text):
        return text, "false"
    if kind in (Kind.number, Kind.integer):
        number = text if options.decimal == "." else f"replace({text}, '{options.decimal}', '.')"
        value = f"TRY_CAST({number} AS DOUBLE)"
        return value, f"({text} IS NOT NULL AND NOT coalesce(isfinite({value}), false))"
    if kind is Kind.flag:
        value = (
            f"CASE WHEN lower({text}) IN {_TRUE} THEN true "
            f"WHEN lower({text}) IN {_FALSE} THEN false END"
        )
    elif kind is Kind.date:
        if options.date_format:
            fmt = options.date_format.replace("'", "''")
            value = f"CAST(try_strptime({text}, '{fmt}') AS DATE)"
        else:
            value = f"TRY_CAST({text} AS DATE)"
    else:  # timestamp: ISO 8601, UTC unless it carries an offset
        value = f"TRY_CAST({text} AS TIMESTAMPTZ)"
    return value, f"({text} IS NOT NULL AND {value} IS NULL)"


def _case(rules: list[tuple[str, str, str | None]]) -> str:
    """CASE giving 'reason|column' for the first rule whose condition holds, else NULL."""
    if not rules:
        return "CAST(NULL AS VARCHAR)"
    whens = " ".join(f"WHEN {cond} THEN '{code}|{col or ''}'" for cond, code, col in rules)
    return f"CASE {whens} END"


def type_rows(
    con: duckdb.DuckDBPyConnection, source: SourceFile, options: ReadOptions, clock: Clock
) -> str:
    """Create ``typed_<table>``: the file's columns typed, and each row's first reason
    among the checks that need no other table and no grain (1–3 above)."""
    spec = source.spec
    present = [c for c in spec.columns if c.name in source.columns]
    parsed = {c.name: _parse(c, source.types[c.name], options) for c in present}
    flags = []  # computed once per row, next to the typed values the rules read
    rules: list[tuple[str, str, str | None]] = []
    for col in (c for c in present if c.required or not c.nullable):
        flag = q(f"_null_{col.name}")
        flags.append(f"NULLIF(trim(CAST({q(col.name)} AS VARCHAR)), '') IS NULL AS {flag}")
        rules.append((flag, "null_key" if col.kind is Kind.key else "missing_value", col.name))
    for col in present:
        bad = parsed[col.name][1]
        if bad != "false":
            flags.append(f"{bad} AS {q(f'_bad_{col.name}')}")
            rules.append((q(f"_bad_{col.name}"), "wrong_type", col.name))
    rules += _table_rules(spec, [c.name for c in present], clock)
    typed = ", ".join([f"{parsed[c.name][0]} AS {q(c.name)}" for c in present] + flags)
    table = f"typed_{spec.name}"
    names = [f.rsplit(" AS ", 1)[1] for f in flags]
    keep = f"* EXCLUDE ({', '.join(names)})" if names else "*"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {table} AS "
        f"SELECT {keep}, {_case(rules)} AS _reason "
        f"FROM (SELECT _line, {typed} FROM {source.relation})"
    )
    return table


def _table_rules(
    spec: TableSpec, present: list[str], clock: Clock
) -> list[tuple[str, str, str | None]]:
    """The table's own rules over typed values (a NULL comparison never fires)."""
    now = f"TIMESTAMPTZ '{clock.now.isoformat()}'"
    today = f"DATE '{clock.today.isoformat()}'"
    rules: list[tuple[str, str, str | None]] = []

    def has(name: str) -> bool:
        return name in present

    def possible(column: str) -> None:
        day = f"CAST({q(column)} AS DATE)"
        cond = f"({day} < DATE '{FIRST_POSSIBLE}' OR {day} > DATE '{LAST_POSSIBLE}')"
        rules.append((cond, "impossible_date", column))

    def dates(column: str, future: bool = True) -> None:
        """Impossible, then in the future (observations), then outside the user's window."""
        c = q(column)
        possible(column)
        if future:
            limit = now if spec.column(column).kind is Kind.timestamp else today
            rules.append((f"{c} > {limit}", "future_date", column))
        if clock.earliest is not None:
            cond = f"CAST({c} AS DATE) < DATE '{clock.earliest.isoformat()}'"
            rules.append((cond, "date_out_of_range", column))
        if clock.latest is not None:
            cond = f"CAST({c} AS DATE) > DATE '{clock.latest.isoformat()}'"
            rules.append((cond, "date_out_of_range", column))

    name = spec.name
    if name == "orders":
        rules.append(('"quantity" <> floor("quantity")', "non_integer_quantity", "quantity"))
        rules.append(('"quantity" <= 0', "non_positive_quantity", "quantity"))
        rules.append(('"unit_price" < 0', "negative_price", "unit_price"))
        dates("ordered_at")
    elif name == "sales":
        rules.append(('"units" < 0', "negative_units", "units"))
        if has("price"):
            rules.append(('"price" < 0', "negative_price", "price"))
        if has("on_hand"):
            rules.append(('"on_hand" < 0', "negative_stock", "on_hand"))
        dates("date")
    elif name == "assortment":
        dates("listed_from", future=False)  # a listing may be planned ahead
        if has("listed_to"):
            rules.append(('"listed_to" < "listed_from"', "listed_to_before_from", "listed_to"))
    elif name == "products":
        if has("lifespan_days"):
            rules.append(('"lifespan_days" <= 0', "impossible_value", "lifespan_days"))
        if has("list_price"):
            rules.append(('"list_price" < 0', "negative_price", "list_price"))
    elif name == "stores":
        for column, limit in (("latitude", 90), ("longitude", 180)):
            if has(column):
                rules.append((f"abs({q(column)}) > {limit}", "impossible_value", column))
    elif name.startswith("weather"):
        for measure, (low, high) in WEATHER_RANGES.items():
            if has(measure):
                cond = f"({q(measure)} < {low} OR {q(measure)} > {high})"
                rules.append((cond, "impossible_weather", measure))
        if name == "weather_observed":
            dates("date")
        else:
            dates("issued_at")
            possible("valid_date")
            rules.append(
                ('"valid_date" < CAST("issued_at" AS DATE)', "valid_before_issue", "valid_date")
            )
    elif name == "promotions":
        if has("price"):
            rules.append(('"price" < 0', "negative_price", "price"))
        given = [q(c) + " IS NULL" for c in ("promo", "price") if has(c)]
        rules.append((" AND ".join(given) if given else "true", "empty_plan", None))
        dates("date", future=False)  # a plan is for the future
        if has("planned_at"):
            possible("planned_at")
            rules.append((f'"planned_at" > {now}', "future_date", "planned_at"))
    return rules


def starts_period_sql(column: str, calendar: Calendar) -> str:
    """SQL true when the date column starts a period of the calendar."""
    if calendar.grain is Grain.day:
        return "true"
    days = f"date_diff('day', DATE '1970-01-01', CAST({q(column)} AS DATE))"
    return f"{calendar.start_sql(calendar.period_sql(days))} = {days}"


def judge(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    calendar: Calendar,
    known: dict[str, str],
) -> str:
    """Create ``checked_<table>`` from ``typed_<table>``: the final reason of every row.

    ``known`` names the relations of accepted ids: ``stores``, ``products`` and
    ``regions`` (with observed weather), each one column of ids.
    """
    typed = f"typed_{spec.name}"
    rules: list[tuple[str, str, str | None]] = []
    if spec.period_column:
        cond = f"NOT ({starts_period_sql(spec.period_column, calendar)})"
        rules.append((cond, "not_period_start", spec.period_column))
    if spec.name == "stores":
        cond = f'"region_id" NOT IN (SELECT region_id FROM {known["regions"]})'
        rules.append((cond, "region_without_weather", "region_id"))
    if spec.name in ("orders", "sales", "promotions", "assortment"):
        cond = f'"store_id" NOT IN (SELECT store_id FROM {known["stores"]})'
        rules.append((cond, "unknown_store", "store_id"))
        cond = f'"product_id" NOT IN (SELECT product_id FROM {known["products"]})'
        rules.append((cond, "unknown_product", "product_id"))
    columns = [r[0] for r in con.execute(f"DESCRIBE {typed}").fetchall()]
    values = [c for c in columns if c not in (*spec.key, "_line", "_reason")]
    key = ", ".join(q(k) for k in spec.key)
    digest = f"hash({', '.join(q(v) for v in values)})" if values else "0"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE judged_{spec.name} AS "
        f"SELECT * EXCLUDE (_reason), coalesce(_reason, {_case(rules)}) AS _reason, "
        f"hash({key}) AS _key_hash FROM {typed}"
    )
    con.execute(f"DROP TABLE {typed}")  # judged holds it all now: free the memory
    # keys held by more than one passing row (few): grouped by one integer first (cheap),
    # then by the real key among those candidates only
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE candidates_{spec.name} AS SELECT _key_hash "
        f"FROM judged_{spec.name} WHERE _reason IS NULL GROUP BY _key_hash HAVING count(*) > 1"
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE repeated_{spec.name} AS
        SELECT {key}, min({digest}) <> max({digest}) AS _conflict, min(_line) AS _first
        FROM judged_{spec.name} SEMI JOIN candidates_{spec.name} USING (_key_hash)
        WHERE _reason IS NULL
        GROUP BY {key} HAVING count(*) > 1
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW checked_{spec.name} AS
        SELECT j.* EXCLUDE (_reason, _key_hash),
               CASE WHEN j._reason IS NOT NULL THEN j._reason
                    WHEN r._conflict THEN 'conflicting_duplicate|'
                    WHEN r._first <> j._line THEN 'duplicate_row|' END AS _reason
        FROM judged_{spec.name} j LEFT JOIN repeated_{spec.name} r USING ({key})
        """
    )
    return f"checked_{spec.name}"
