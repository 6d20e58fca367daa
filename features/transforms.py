"""Raw tables → feature tables, as SQL over integer period numbers.

Every query here is plain SQL: joins, GROUP BY, standard window functions and
PERCENTILE_CONT. Time is an integer period number (``day`` = days since
1970-01-01 at the daily grain), so the same text runs on DuckDB (the embedded
engine), PostgreSQL or Spark SQL; the engine-specific parts (reading files,
turning periods into timestamps) live in ``features/build_duckdb.py`` (DuckDB) and
``features/build_spark.py`` (Spark SQL).

Input relations, staged by ``build_duckdb.py`` and ``build_spark.py``:

* ``lines(order_id, customer_id, store_id, product_id, day, quantity, revenue, promo)``
  (order lines: daily only), or, for aggregated sales, ``sales_daily`` itself
  (see :func:`sales_daily`) staged from the retailer's units per period, with its
  ``stockout`` (1: the period ran out of stock, 0: it did not, NULL: not said) and
  ``listed`` (the row's ``active`` flag: 1, 0 or NULL)
* ``assortment(store_id, product_id, from_day, to_day)``: optional, the periods a
  store lists a product (``to_day`` inclusive, NULL: still listed)
* ``products(product_id, category, lifespan_days, list_price)``
* ``stores(store_id, region_id, latitude, longitude)``
* ``weather_observed(region_id, day, temperature_c, precipitation_mm, sunshine_hours)``:
  daily at every grain (an absent measure is a NULL column); :func:`weather_periods`
  aggregates it to the grain
* ``weather_forecast(region_id, issue_day, issued_at, valid_day, <the same measures>)``
* ``plans(store_id, product_id, day, promo, price, planned_at)``: planned promotions
* ``periods(day)``: every period of the history, gaps included

``day`` is the period number at every grain (the day number at the daily grain).
A feature row "as of" period ``d`` uses data up to the end of ``d`` and no later.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Windows:
    """Window lengths, in periods of the grain (days at the daily grain).

    ``unit`` names the period in feature names (``days_since_last_sale``,
    ``promo_weeks_4``, ``temperature_mean_4w``). :func:`for_grain` gives each grain's
    defaults.
    """

    lags: tuple[int, ...] = (1, 7, 14, 28)
    short: int = 7
    long: int = 28
    unit: str = "day"  # "day" | "week"
    replacement_due: int = 7  # "customers due within the next N periods"
    lifespan_every: int = 28  # lifespan estimates are refreshed every N periods
    lifespan_lookback: int = 365  # ... from the repeat purchases of the last N periods
    lifespan_min_pairs: int = 30  # fewer repeat pairs than this: use the declared value
    lifespan_min_repeat_share: float = 0.1  # fewer repeat buyers: not a re-bought product
    # Basket partners are re-estimated weekly, so a new bundle shows within a week of
    # reaching the basket threshold, from the baskets of the last 52 weeks: a whole year
    # counts each season once (summer bundles do not re-pair products every autumn) and
    # whole weeks weigh every weekday alike. The window must be whole schedule periods.
    copurchase_every: int = 7
    copurchase_lookback: int = 364
    copurchase_min_orders: int = 20  # baskets in the window before a pair counts as partners
    # A pair's active life (see :func:`purchase_features`): inactive once it has sold nothing
    # for ``inactive_after`` periods and for ``inactive_gap_multiple`` times its mean gap
    # between sales so far (a slow mover that sells every six weeks is not delisted by
    # eight quiet weeks). DEMAND_INACTIVE_AFTER and DEMAND_INACTIVE_GAP_MULTIPLE override.
    inactive_after: int = 28
    inactive_gap_multiple: float = 4.0

    def __post_init__(self) -> None:
        if self.copurchase_lookback % self.copurchase_every:
            raise ValueError(
                f"copurchase_lookback ({self.copurchase_lookback}) must be a multiple of "
                f"copurchase_every ({self.copurchase_every}): the window is whole periods"
            )

    @property
    def lookback(self) -> int:
        """Periods before a row that its purchase features read (the longest lag or window)."""
        return max(*self.lags, self.short, self.long)

    @property
    def suffix(self) -> str:
        """The one-letter unit of window names: ``temperature_mean_7d``, ``…_4w``."""
        return self.unit[0]

    @property
    def since_last_sale(self) -> str:
        return f"{self.unit}s_since_last_sale"

    @property
    def since_first_sale(self) -> str:
        return f"{self.unit}s_since_first_sale"

    @property
    def promo_periods(self) -> str:
        return f"promo_{self.unit}s_{self.short}"

    @property
    def promo_now(self) -> str:
        return "promo_today" if self.unit == "day" else f"promo_this_{self.unit}"


# Weekly: last week, the two before, a month, and the same week last year (null until
# the history has a year); level and spread over a month and a quarter; the declared
# lifespan re-stamped every four weeks (its view's TTL is 56 days).
# A regular seller counts as stopped after eight quiet weeks (28 quiet days at the daily
# grain).
WEEKLY = Windows(
    lags=(1, 2, 4, 52), short=4, long=13, unit="week", lifespan_every=4, inactive_after=8
)


def for_grain(grain: str) -> Windows:
    """Each grain's default windows, in its periods."""
    return WEEKLY if grain == "week" else Windows()


def sales_daily() -> str:
    """Units, revenue, units with a known price and promotion per store, product and period.

    From order lines; aggregated sales are staged in this shape directly (a unit
    without a price adds to ``units`` but not to ``priced_units``).
    """
    return """
    SELECT store_id, product_id, day,
           SUM(quantity) AS units,
           SUM(revenue) AS revenue,
           SUM(quantity) AS priced_units,
           MAX(CASE WHEN promo THEN 1 ELSE 0 END) AS promo,
           CAST(NULL AS INTEGER) AS stockout,
           CAST(NULL AS INTEGER) AS listed
    FROM lines
    GROUP BY store_id, product_id, day
    """


def stockout_sql(on_hand: bool, stockout: bool) -> str:
    """A sales row's ``stockout`` from its optional stock columns: 1 when the period ran
    out (``stockout`` true, or nothing ``on_hand`` at its end), 0 when it did not, NULL
    when the row does not say."""
    given = [c for c, present in (("stockout", stockout), ("on_hand", on_hand)) if present]
    ran_out = ["on_hand <= 0" if c == "on_hand" else c for c in given]
    said = [f"{c} IS NOT NULL" for c in given]
    if not ran_out:
        return "CAST(NULL AS INTEGER)"
    return f"CASE WHEN {' OR '.join(ran_out)} THEN 1 WHEN {' OR '.join(said)} THEN 0 END"


def listed_sql(active: bool) -> str:
    """A sales row's ``listed``: its optional ``active`` flag as 1, 0 or NULL."""
    if not active:
        return "CAST(NULL AS INTEGER)"
    return "CASE WHEN active THEN 1 WHEN NOT active THEN 0 END"


def sales_grid(since: str | None = None, assortment: bool = False) -> str:
    """Every (store, product, period) from the pair's first sale on; no sale means 0 units.

    A store that carries a product and sold none of it on a period sold zero: these
    rows are real observations, and windows count them (whether the pair was still
    carried is :func:`purchase_features`' ``active``).

    ``since`` (incremental builds: SQL of a period number): each pair's rows start there
    (or at its first sale, if later), and ``last_sale_before`` carries the pair's last
    period with units sold before its first row (NULL when the grid starts at the first
    sale), ``first_sale_before`` its first such period and ``sales_before`` how many;
    ``first_day`` is the pair's first row (before ``since`` too).

    ``assortment``: the optional assortment table is staged; ``in_assortment`` says the
    pair is in it at all, ``listed_now`` that one of its listings covers the period.
    """
    if since is None:
        pairs = """(SELECT store_id, product_id, MIN(day) AS start_day,
                 CAST(NULL AS INTEGER) AS last_sale_before,
                 CAST(NULL AS INTEGER) AS first_sale_before,
                 0 AS sales_before, MIN(day) AS first_day
          FROM sales_daily GROUP BY store_id, product_id)"""
    else:
        start = f"CASE WHEN MIN(day) >= {since} THEN MIN(day) ELSE {since} END"
        before = "s.units > 0 AND s.day < f.start_day"
        pairs = f"""(SELECT f.store_id, f.product_id, f.start_day,
                 MAX(CASE WHEN {before} THEN s.day END) AS last_sale_before,
                 MIN(CASE WHEN {before} THEN s.day END) AS first_sale_before,
                 COUNT(CASE WHEN {before} THEN 1 END) AS sales_before,
                 MIN(s.day) AS first_day
          FROM (SELECT store_id, product_id, {start} AS start_day
                FROM sales_daily GROUP BY store_id, product_id) f
          JOIN sales_daily s ON s.store_id = f.store_id AND s.product_id = f.product_id
          GROUP BY f.store_id, f.product_id, f.start_day)"""
    if assortment:
        # a pair's listings hold few intervals: the equi-join on the pair is small
        listed = """,
           CASE WHEN ap.store_id IS NOT NULL THEN 1 ELSE 0 END AS in_assortment,
           CASE WHEN ad.day IS NOT NULL THEN 1 ELSE 0 END AS listed_now"""
        joins = """
    LEFT JOIN (SELECT DISTINCT store_id, product_id FROM assortment) ap
      ON ap.store_id = g.store_id AND ap.product_id = g.product_id
    LEFT JOIN (SELECT DISTINCT a.store_id, a.product_id, p.day
               FROM assortment a JOIN periods p
                 ON p.day >= a.from_day AND (a.to_day IS NULL OR p.day <= a.to_day)) ad
      ON ad.store_id = g.store_id AND ad.product_id = g.product_id AND ad.day = p.day"""
    else:
        listed = """,
           0 AS in_assortment,
           0 AS listed_now"""
        joins = ""
    return f"""
    SELECT g.store_id, g.product_id, p.day,
           COALESCE(s.units, 0) AS units,
           COALESCE(s.revenue, 0) AS revenue,
           COALESCE(s.priced_units, 0) AS priced_units,
           COALESCE(s.promo, 0) AS promo,
           COALESCE(s.stockout, 0) AS stockout,
           s.listed,
           g.last_sale_before,
           g.first_sale_before,
           g.sales_before,
           g.first_day{listed}
    FROM {pairs} g
    JOIN periods p ON p.day >= g.start_day
    LEFT JOIN sales_daily s
      ON s.store_id = g.store_id AND s.product_id = g.product_id AND s.day = p.day{joins}
    """


# Window sums of fractional values are taken in DECIMAL, which adds exactly: a float sum
# depends in its last bits on the order the engine adds a frame's rows in, and DuckDB's
# order depends on where the partition starts and how long it is. An exact sum gives
# every row the same value whatever else the build read, so an incremental build (which
# starts each series just before its new periods) writes what a full build writes.
_EXACT = "DECIMAL(38, 6)"


# Each series' rows in period order. Written out in every OVER clause, not as a named
# window refined by a frame (``OVER (w ROWS …)``), which Spark SQL does not accept.
_SERIES = "PARTITION BY store_id, product_id ORDER BY day"


def _exact_sum(column: str, frame: str, squared: bool = False) -> str:
    value = f"CAST({column} AS {_EXACT})"
    return f"SUM({value} * {value if squared else 1}) OVER ({_SERIES} {frame})"


def _mean(column: str, frame: str) -> str:
    count = f"COUNT({column}) OVER ({_SERIES} {frame})"
    return f"CAST({_exact_sum(column, frame)} AS DOUBLE) / {count}"


def _std(column: str, frame: str) -> str:
    """Sample standard deviation from exact sums: sqrt((n Σx² − (Σx)²) / (n (n − 1)))."""
    n = f"COUNT({column}) OVER ({_SERIES} {frame})"
    s1, s2 = _exact_sum(column, frame), _exact_sum(column, frame, squared=True)
    return (
        f"CASE WHEN {n} > 1 THEN SQRT(GREATEST(CAST({n} * {s2} - {s1} * {s1} AS DOUBLE), 0)"
        f" / ({n} * ({n} - 1))) END"
    )


def active_sql(w: Windows) -> str:
    """SQL (over ``sales_grid``) of a period's status: 1 active, 0 inactive.

    In order: a period with units sold is active (the pair was on sale); a row's own
    ``active`` flag decides its period; a pair in the assortment table is active in the
    periods a listing covers and inactive outside them; otherwise the rule: inactive
    once the pair has sold nothing for ``inactive_after`` periods and for
    ``inactive_gap_multiple`` times its mean gap between sales so far (from its first to
    its last sale), counted from its last sale (or, before any, from its first row).
    Only what is known when the period closes is read: the status is a feature row's.
    """
    frame = f"OVER ({_SERIES} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
    last = f"COALESCE(MAX(CASE WHEN units > 0 THEN day END) {frame}, last_sale_before)"
    first = f"COALESCE(first_sale_before, MIN(CASE WHEN units > 0 THEN day END) {frame})"
    sales = f"(sales_before + COUNT(CASE WHEN units > 0 THEN 1 END) {frame})"
    quiet = f"day - COALESCE({last}, first_day - 1)"
    mean_gap = f"CAST({last} - {first} AS DOUBLE) / NULLIF({sales} - 1, 0)"
    needed = f"GREATEST({w.inactive_after}, COALESCE({w.inactive_gap_multiple} * {mean_gap}, 0))"
    return f"""CASE WHEN units > 0 THEN 1
                WHEN listed IS NOT NULL THEN listed
                WHEN in_assortment = 1 THEN listed_now
                WHEN {quiet} >= {needed} THEN 0 ELSE 1 END"""


def since_first_sale_sql() -> str:
    """SQL (over ``sales_grid``) of the periods from the pair's first period with units sold
    to this one: 0 in the period of the first sale, NULL before any sale. Known when the
    period closes; an incremental grid reads the first sale before it (``first_sale_before``).
    A model's short-history rule (``demand.contract``) compares it with its minimum.
    """
    frame = f"OVER ({_SERIES} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
    first = f"COALESCE(first_sale_before, MIN(CASE WHEN units > 0 THEN day END) {frame})"
    return f"day - {first}"


def purchase_features(w: Windows) -> str:
    """Lags, rolling level and spread, trend, recency, price and promotion per row of the grid.

    ``units_lag_k`` is the units sold k periods before the period after ``d``:
    ``units_lag_1`` is ``d`` itself, ``units_lag_7`` the same weekday as ``d + 1``.
    Windows at the start of a series average the periods that exist. Recency reaches
    back before the grid's first row through ``last_sale_before`` (incremental builds).

    ``active`` (:func:`active_sql`) and ``censored`` (1: the period ran out of stock, so
    its units understate demand) describe the period itself: training takes no label
    from an inactive or censored period, batch forecasts skip a pair inactive at its
    origin, and they are no model inputs.

    ``{unit}s_since_first_sale`` (:func:`since_first_sale_sql`): the pair's age at the
    row, which the short-history rule of a model's contract reads (no model input either).
    """
    lags = ",\n           ".join(
        f"LAG(units, {k - 1}) OVER ({_SERIES}) AS units_lag_{k}"
        if k > 1
        else "units AS units_lag_1"
        for k in w.lags
    )
    short = f"ROWS BETWEEN {w.short - 1} PRECEDING AND CURRENT ROW"
    long = f"ROWS BETWEEN {w.long - 1} PRECEDING AND CURRENT ROW"
    return f"""
    SELECT store_id, product_id, day,
           {lags},
           {_mean("units", short)} AS units_mean_{w.short},
           {_mean("units", long)} AS units_mean_{w.long},
           {_std("units", short)} AS units_std_{w.short},
           {_std("units", long)} AS units_std_{w.long},
           {_mean("units", short)} - {_mean("units", long)} AS units_trend,
           day - COALESCE(MAX(CASE WHEN units > 0 THEN day END)
                              OVER ({_SERIES} ROWS BETWEEN UNBOUNDED PRECEDING
                                    AND CURRENT ROW),
                          last_sale_before)
               AS {w.since_last_sale},
           CAST({_exact_sum("revenue", long)} AS DOUBLE)
               / NULLIF(SUM(priced_units) OVER ({_SERIES} {long}), 0) AS avg_price_{w.long},
           SUM(promo) OVER ({_SERIES} {short}) AS {w.promo_periods},
           promo AS {w.promo_now},
           {active_sql(w)} AS active,
           stockout AS censored,
           {since_first_sale_sql()} AS {w.since_first_sale}
    FROM sales_grid
    """


def customer_days() -> str:
    """One row per customer, store, product and period bought, with the next such period."""
    return """
    SELECT store_id, product_id, customer_id, day,
           LEAD(day) OVER (PARTITION BY store_id, product_id, customer_id ORDER BY day)
               AS next_day
    FROM (SELECT DISTINCT store_id, product_id, customer_id, day FROM lines) t
    """


def _interval_count(name: str, start: str, end: str, source: str) -> str:
    """Count, per (store, product, period), the rows of ``source`` whose [start, end) covers it.

    Each row adds +1 at ``start`` and -1 at ``end``; a running sum over the grid
    is the count. Linear in the data, unlike a range join.
    """
    return f"""
    SELECT store_id, product_id, day, SUM(delta) AS delta_{name}
    FROM (
        SELECT store_id, product_id, {start} AS day, 1 AS delta FROM {source}
        WHERE {start} < {end}
        UNION ALL
        SELECT store_id, product_id, {end} AS day, -1 AS delta FROM {source}
        WHERE {start} < {end}
    ) e
    GROUP BY store_id, product_id, day
    """


def distinct_customers(window: int) -> str:
    """Distinct customers who bought in the last ``window`` periods.

    A customer counts from the period they bought until ``window`` periods later,
    or until they buy again (their next purchase takes over the count).
    """
    end = (
        f"CASE WHEN next_day IS NOT NULL AND next_day < day + {window} "
        f"THEN next_day ELSE day + {window} END"
    )
    return _interval_count(f"customers_{window}", "day", end, "customer_days")


def repeat_intervals() -> str:
    """Periods between a customer's consecutive purchases of a product (any store)."""
    return """
    SELECT product_id, day,
           day - LAG(day) OVER (PARTITION BY customer_id, product_id ORDER BY day) AS gap
    FROM (SELECT DISTINCT customer_id, product_id, day FROM lines) t
    """


def snapshots(every: int) -> str:
    """Periods at which an estimate from history is refreshed: the first, then every N.

    A snapshot as of period s uses data up to the end of s, so it is known when s
    closes; a row as of d uses the newest snapshot at or before d.
    """
    return f"""
    SELECT day FROM periods
    WHERE MOD(day - (SELECT MIN(day) FROM periods), {every}) = 0
    """


def lifespan_snapshots(w: Windows) -> str:
    """Lifespan snapshots, every ``lifespan_every`` periods.

    The first snapshot has almost no repeat purchases behind it, so it carries the
    declared lifespans; estimates take over as repeat purchases accumulate.
    """
    return snapshots(w.lifespan_every)


def product_lifespan(w: Windows) -> str:
    """Replacement interval per product as of each snapshot, from the last ``lookback`` periods.

    The estimate is the median gap between a customer's repeat purchases; its
    spread is the interquartile range. ``repeat_buyer_share`` is the share of the
    product's buyers in the window who bought it at least twice. The estimate is
    trusted with enough repeat pairs from enough repeat buyers (occasional buyers
    of an umbrella also buy twice, at no particular interval); otherwise the
    declared lifespan stands.
    """
    trusted = (
        f"COALESCE(e.repeat_pairs, 0) >= {w.lifespan_min_pairs} "
        f"AND b.repeat_buyer_share >= {w.lifespan_min_repeat_share}"
    )
    return f"""
    WITH gaps AS (
        SELECT s.day AS as_of, i.product_id, i.gap
        FROM lifespan_snapshots s
        JOIN repeat_intervals i
          ON i.day <= s.day AND i.day > s.day - {w.lifespan_lookback} AND i.gap IS NOT NULL
    ),
    buyers AS (
        SELECT as_of, product_id,
               -- a DOUBLE mean: Spark averages DECIMAL literals to five decimals
               AVG(CAST(CASE WHEN purchases >= 2 THEN 1 ELSE 0 END AS DOUBLE))
                   AS repeat_buyer_share
        FROM (
            SELECT s.day AS as_of, l.product_id, l.customer_id, COUNT(DISTINCT l.day) AS purchases
            FROM lifespan_snapshots s
            JOIN lines l ON l.day <= s.day AND l.day > s.day - {w.lifespan_lookback}
            GROUP BY s.day, l.product_id, l.customer_id
        ) c
        GROUP BY as_of, product_id
    ),
    estimates AS (
        SELECT as_of, product_id,
               PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY gap) AS median_gap,
               PERCENTILE_CONT(0.75) WITHIN GROUP (ORDER BY gap)
                 - PERCENTILE_CONT(0.25) WITHIN GROUP (ORDER BY gap) AS iqr_gap,
               COUNT(*) AS repeat_pairs
        FROM gaps
        GROUP BY as_of, product_id
    )
    SELECT b.as_of AS day, b.product_id,
           CASE WHEN {trusted} THEN e.median_gap ELSE p.lifespan_days END
               AS replacement_interval_days,
           CASE WHEN {trusted} THEN e.iqr_gap END AS replacement_interval_iqr_days,
           COALESCE(e.repeat_pairs, 0) AS repeat_pairs,
           b.repeat_buyer_share,
           p.lifespan_days AS declared_lifespan_days
    FROM buyers b
    JOIN products p ON p.product_id = b.product_id
    LEFT JOIN estimates e ON e.as_of = b.as_of AND e.product_id = b.product_id
    """


def replacement_windows(w: Windows) -> str:
    """For each purchase: when its buyer falls due, with the lifespan known at the purchase.

    ``due_day`` = purchase period + the replacement interval from the latest
    snapshot at or before the purchase (point in time: nothing later is used).
    """
    return f"""
    SELECT c.store_id, c.product_id, c.day, c.next_day,
           c.day + CAST(ROUND(l.replacement_interval_days) AS INTEGER) AS due_day,
           CAST(ROUND(l.replacement_interval_days) AS INTEGER) AS interval_days
    FROM customer_days c
    JOIN product_lifespan l
      ON l.product_id = c.product_id
     AND l.day <= c.day AND l.day > c.day - {w.lifespan_every}
    WHERE l.replacement_interval_days IS NOT NULL
    """


def replacements_due(w: Windows) -> str:
    """Customers whose replacement falls due within the next ``replacement_due`` periods.

    As of period d a buyer is due when d < due_day <= d + N and they have not
    bought again by d.
    """
    n = w.replacement_due
    start = f"CASE WHEN due_day - {n} > day THEN due_day - {n} ELSE day END"
    end = "CASE WHEN next_day IS NOT NULL AND next_day < due_day THEN next_day ELSE due_day END"
    return _interval_count(f"due_{n}", start, end, "replacement_windows")


def replacements_due_by_day(w: Windows) -> str:
    """Customers due exactly k periods after d, for k = 1..N, as of d.

    The sum over k equals ``replacements_due``; split by day, a forecast for
    d + h can use the customers due on d + h itself.
    """
    n = w.replacement_due
    return f"""
    SELECT r.store_id, r.product_id, r.due_day - k.k AS day, k.k, COUNT(*) AS due
    FROM replacement_windows r
    CROSS JOIN (SELECT day - (SELECT MIN(day) FROM periods) + 1 AS k FROM periods
                WHERE day < (SELECT MIN(day) FROM periods) + {n}) k
    WHERE r.due_day - k.k >= r.day
      AND (r.next_day IS NULL OR r.next_day > r.due_day - k.k)
    GROUP BY r.store_id, r.product_id, r.due_day - k.k, k.k
    """


def installed_base() -> str:
    """Customers who bought within the last two replacement intervals and have not re-bought."""
    end = (
        "CASE WHEN next_day IS NOT NULL AND next_day < day + 2 * interval_days "
        "THEN next_day ELSE day + 2 * interval_days END"
    )
    return _interval_count("installed", "day", end, "replacement_windows")


def _snapshot_at_or_after(day: str, first: str, every: int) -> str:
    """The first snapshot period at or after ``day`` (snapshots are ``first`` + k·every)."""
    return f"{day} + MOD({every} - MOD({day} - {first}, {every}), {every})"


def _snapshot_at_or_before(day: str, first: str, every: int) -> str:
    """The newest snapshot period at or before ``day``."""
    return f"{day} - MOD({day} - {first}, {every})"


def copurchase_counts(w: Windows) -> str:
    """Baskets holding both a product and a partner, per schedule period.

    The baskets of the periods after one snapshot up to and including the next are
    counted at that next snapshot (an order lies in one period, so counts add up).
    """
    block = _snapshot_at_or_after("a.day", "h.first_day", w.copurchase_every)
    return f"""
    SELECT a.product_id, b.product_id AS partner_id, {block} AS snapshot_day,
           COUNT(DISTINCT a.order_id) AS orders
    FROM lines a
    JOIN lines b ON a.order_id = b.order_id AND a.product_id <> b.product_id
    CROSS JOIN (SELECT MIN(day) AS first_day FROM periods) h
    GROUP BY a.product_id, b.product_id, {block}
    """


def copurchase_partners(w: Windows) -> str:
    """Each product's most frequent basket partner as of each co-purchase snapshot.

    The snapshot as of period s counts the baskets of the last ``copurchase_lookback``
    periods up to the end of s; a partner needs ``copurchase_min_orders`` of them.
    Ties go to the lowest partner id. A period's counts reach the snapshots at its
    end and the ``lookback / every - 1`` after it (an equi-join on the schedule, not
    a range join over days).
    """
    periods_in_window = w.copurchase_lookback // w.copurchase_every
    return f"""
    SELECT day, product_id, partner_id, orders AS partner_orders
    FROM (
        SELECT s.day, c.product_id, c.partner_id, SUM(c.orders) AS orders,
               ROW_NUMBER() OVER (PARTITION BY s.day, c.product_id
                                  ORDER BY SUM(c.orders) DESC, c.partner_id) AS rank
        FROM copurchase_counts c
        CROSS JOIN (SELECT day - (SELECT MIN(day) FROM periods) AS k FROM periods
                    WHERE day < (SELECT MIN(day) FROM periods) + {periods_in_window}) o
        JOIN copurchase_snapshots s ON s.day = c.snapshot_day + o.k * {w.copurchase_every}
        GROUP BY s.day, c.product_id, c.partner_id
    ) ranked
    WHERE rank = 1 AND orders >= {w.copurchase_min_orders}
    """


def store_product_daily(w: Windows) -> str:
    """The purchase feature table: one row per (store, product, period).

    The basket partner is the one of the newest co-purchase snapshot at or before the
    period; its sales are those of the same period.
    """
    counts = [f"customers_{w.short}", f"customers_{w.long}"]
    running = ",\n           ".join(
        f"SUM(COALESCE(c{i}.delta_{name}, 0)) OVER (PARTITION BY f.store_id, f.product_id "
        f"ORDER BY f.day ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS {name}"
        for i, name in enumerate(counts)
    )
    joins = "\n    ".join(
        f"LEFT JOIN distinct_customers_{name.split('_')[1]} c{i} ON c{i}.store_id = f.store_id "
        f"AND c{i}.product_id = f.product_id AND c{i}.day = f.day"
        for i, name in enumerate(counts)
    )
    return f"""
    SELECT f.*,
           {running},
           cp.partner_id AS copurchase_partner_id,
           pf.units_lag_1 AS partner_units_lag_1,
           pf.units_mean_{w.short} AS partner_units_mean_{w.short}
    FROM purchase_features f
    {joins}
    CROSS JOIN (SELECT MIN(day) AS first_day FROM periods) h
    LEFT JOIN copurchase_partners cp
      ON cp.product_id = f.product_id
     AND cp.day = {_snapshot_at_or_before("f.day", "h.first_day", w.copurchase_every)}
    LEFT JOIN purchase_features pf
      ON pf.store_id = f.store_id AND pf.product_id = cp.partner_id AND pf.day = f.day
    """


def store_product_replenishment(w: Windows) -> str:
    """Replacement-driven demand per (store, product, period)."""
    n = w.replacement_due
    cumulative = (
        "OVER (PARTITION BY g.store_id, g.product_id ORDER BY g.day "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
    )
    by_day = ",\n               ".join(
        f"SUM(CASE WHEN k = {k} THEN due ELSE 0 END) AS due_{k}" for k in range(1, n + 1)
    )
    due_in = ",\n           ".join(
        f"COALESCE(b.due_{k}, 0) AS replacements_due_in_{k}d" for k in range(1, n + 1)
    )
    return f"""
    SELECT g.store_id, g.product_id, g.day,
           SUM(COALESCE(d.delta_due_{n}, 0)) {cumulative} AS replacements_due_{n}d,
           {due_in},
           SUM(COALESCE(i.delta_installed, 0)) {cumulative} AS installed_base_customers
    FROM sales_grid g
    LEFT JOIN replacements_due d
      ON d.store_id = g.store_id AND d.product_id = g.product_id AND d.day = g.day
    LEFT JOIN installed_base i
      ON i.store_id = g.store_id AND i.product_id = g.product_id AND i.day = g.day
    LEFT JOIN (
        SELECT store_id, product_id, day,
               {by_day}
        FROM replacements_due_by_day
        GROUP BY store_id, product_id, day
    ) b ON b.store_id = g.store_id AND b.product_id = g.product_id AND b.day = g.day
    """


def weather_periods(period: str) -> str:
    """Observed weather per region and whole period: mean temperature, summed rain and sun.

    ``period`` is the SQL turning ``day`` (a day number) into the period number
    (``Calendar.period_sql``). A period the feed covers only in part is left out:
    its sums would be short. An absent measure stays NULL (SUM of NULLs is NULL).
    """
    return f"""
    SELECT region_id, {period} AS day,
           AVG(temperature_c) AS temperature_c,
           SUM(precipitation_mm) AS precipitation_mm,
           SUM(sunshine_hours) AS sunshine_hours,
           SUM(CASE WHEN precipitation_mm IS NULL THEN NULL
                    WHEN precipitation_mm >= 1 THEN 1 ELSE 0 END) AS rainy_days,
           COUNT(*) AS days
    FROM weather_observed
    GROUP BY region_id, {period}
    """


def region_weather_daily(w: Windows, days: int = 1) -> str:
    """Observed weather per region and period, with the last ``short`` periods summed up.

    ``days``: days in a period (only whole periods have a row).
    """
    frame = (
        f"OVER (PARTITION BY region_id ORDER BY day ROWS BETWEEN {w.short - 1} PRECEDING "
        "AND CURRENT ROW)"
    )
    return f"""
    SELECT region_id, day, temperature_c, precipitation_mm, sunshine_hours,
           AVG(temperature_c) {frame} AS temperature_mean_{w.short}{w.suffix},
           SUM(precipitation_mm) {frame} AS precipitation_sum_{w.short}{w.suffix},
           SUM(rainy_days) {frame} AS rainy_days_{w.short}{w.suffix}
    FROM weather_periods
    WHERE days = {days}
    """


def region_weather_forecast() -> str:
    """Forecasts per region and day they are for, stamped with when they were issued."""
    return """
    SELECT region_id, valid_day, issued_at, issue_day,
           valid_day - issue_day AS forecast_lead_days,
           temperature_c AS forecast_temperature_c,
           precipitation_mm AS forecast_precipitation_mm,
           sunshine_hours AS forecast_sunshine_hours
    FROM weather_forecast
    """


def declared_lifespan(w: Windows) -> str:
    """Aggregated sales: no repeat purchases to estimate from, so the declared lifespan.

    Re-stamped at the lifespan schedule so that its view's TTL holds; the estimate's
    other columns are absent (NULL here, left out of models).
    """
    return """
    SELECT s.day, p.product_id,
           p.lifespan_days AS replacement_interval_days,
           CAST(NULL AS DOUBLE) AS replacement_interval_iqr_days,
           CAST(NULL AS DOUBLE) AS repeat_pairs,
           CAST(NULL AS DOUBLE) AS repeat_buyer_share,
           p.lifespan_days AS declared_lifespan_days
    FROM lifespan_snapshots s
    CROSS JOIN products p
    """


def sales_features(w: Windows) -> str:
    """Aggregated sales: the purchase features, without what needs customer ids.

    At the daily grain the table keeps the order-line table's columns (its feature
    view declares them) as NULLs, recorded as absent: no model reads them.
    """
    if w.unit != "day":
        return "SELECT * FROM purchase_features"
    return f"""
    SELECT *,
           CAST(NULL AS DOUBLE) AS customers_{w.short},
           CAST(NULL AS DOUBLE) AS customers_{w.long},
           CAST(NULL AS STRING) AS copurchase_partner_id,
           CAST(NULL AS DOUBLE) AS partner_units_lag_1,
           CAST(NULL AS DOUBLE) AS partner_units_mean_{w.short}
    FROM purchase_features
    """


def planned_promotions() -> str:
    """Each plan per store, product and target period, as planned (stamped in plan.py)."""
    return """
    SELECT store_id, product_id, day AS target_day,
           CAST(CASE WHEN promo THEN 1 WHEN promo IS NULL THEN NULL ELSE 0 END AS DOUBLE)
               AS planned_promo,
           CAST(price AS DOUBLE) AS planned_price,
           planned_at
    FROM plans
    """


def region_weather_forecast_periods(period: str, days: int) -> str:
    """Forecasts of whole target periods (weeks), per region and issue.

    One issue's forecasts for the days of a period: mean temperature, summed rain and
    sun, when the issue covers every day of it (a ten-day forecast covers the week
    after the origin, not the one after that). ``forecast_lead_days``: days from the
    issue day to the period's first day. ``period`` turns ``valid_day`` into periods.
    """
    return f"""
    SELECT region_id, issued_at, issue_day, {period} AS target_period,
           MIN(valid_day) - issue_day AS forecast_lead_days,
           AVG(temperature_c) AS forecast_temperature_c,
           SUM(precipitation_mm) AS forecast_precipitation_mm,
           SUM(sunshine_hours) AS forecast_sunshine_hours
    FROM weather_forecast
    GROUP BY region_id, issued_at, issue_day, {period}
    HAVING COUNT(*) = {days}
    """


def weather_climate(days: int) -> str:
    """The climate of each period: the mean of the same period in the years before.

    Known in advance, so a forecast may use it for its target period, unlike the
    observed weather of that period. The row as of period ``d`` (known when ``d``
    closes) is for the target period a year later, ``d + season``, and averages ``d``,
    ``d - season``, … : the same period of every past year in the feed. A season is 52
    weeks (364 days: the same weekday, at either grain). A running mean per region and
    phase of the season: linear, no range join. Only whole periods count.
    """
    season = 364 // days
    partition = f"PARTITION BY region_id, MOD(day, {season}) ORDER BY day"
    frame = f"OVER ({partition} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
    return f"""
    SELECT region_id, day, day + {season} AS target_period,
           AVG(temperature_c) {frame} AS climate_temperature_c,
           AVG(precipitation_mm) {frame} AS climate_precipitation_mm,
           AVG(sunshine_hours) {frame} AS climate_sunshine_hours,
           COUNT(*) {frame} AS climate_years
    FROM weather_periods
    WHERE days = {days}
    """
