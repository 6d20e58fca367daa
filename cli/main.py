"""`demand`: the one command-line entry point of the platform.

Each subcommand is a thin shell over a pipeline function; errors a user can fix
are printed as one clear message with a non-zero exit code, never a traceback
(set DEMAND_DEBUG=1 to see one). Under DEMAND_ENGINE=spark, a Spark that cannot run
(no Java, a master that does not answer, raw tables it cannot read) is one of them:
``features.spark.SparkUnavailable`` is a ``UserError``, so every command says what is
missing and exits 1.
"""

from __future__ import annotations

import sys
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cli.serve import bento_app
from cli.serve import serve as serve_command
from demand.calendar import WEEKDAYS, Grain
from demand.console import UserError, console, err, friendly, step
from demand.settings import Profile, Scale, Settings, get_settings
from registry.cli import app as models_app
from training.device import Device

app = typer.Typer(
    name="demand",
    help="Retail demand forecasting: features in Feast, models in MLflow, serving with BentoML.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _settings(scale: Scale | None = None, seed: int | None = None, **more: object) -> Settings:
    overrides: dict[str, object] = dict(more)
    if scale is not None:
        overrides["scale"] = scale
    if seed is not None:
        overrides["seed"] = seed
    settings = get_settings(**overrides)
    if settings.profile is Profile.team:
        # a team's command says which shared servers it talks to (credentials hidden)
        from ops.team import places

        where = " · ".join(f"{p.what} {p.where}" for p in places(settings)[2:5])
        console.print(f"[dim]team profile · {where}[/dim]", markup=True)
    return settings


ScaleOption = Annotated[
    Scale | None, typer.Option(help="Size of the generated retailer [env: DEMAND_SCALE].")
]
SeedOption = Annotated[int | None, typer.Option(help="Generator seed [env: DEMAND_SEED].")]
ReplaceImportedOption = Annotated[
    bool,
    typer.Option(
        help="Delete imported raw data (from `demand import`) and generate in its place; "
        "without it, imported data is never overwritten."
    ),
]


@app.command()
@friendly
def generate(
    scale: ScaleOption = None,
    seed: SeedOption = None,
    append_days: Annotated[
        int,
        typer.Option(
            min=0, help="Extend the same retailer by N later days (nothing earlier changes)."
        ),
    ] = 0,
    replace_imported: ReplaceImportedOption = False,
) -> None:
    """Generate a synthetic retailer's raw tables (validated) into DATA_DIR/raw."""
    from features import pipeline

    settings = _settings(scale, seed)
    rows = pipeline.generate(
        settings, step, append_days=append_days, replace_imported=replace_imported
    )
    _print_counts(f"raw tables in {settings.raw_dir}", rows)


# choices for Typer, which checks them and exits 2 with the valid ones
Weekday = StrEnum("Weekday", {day: day for day in WEEKDAYS})
DecimalMark = StrEnum("DecimalMark", {"point": ".", "comma": ","})


def _one_character(value: str) -> str:
    if len(value) != 1:
        raise typer.BadParameter(f"{value!r}: one character, e.g. ';'")
    return value


def _renames(items: list[str] | None) -> dict[str, str] | None:
    """--map THEIRS=OURS, repeated: their column names to ours."""
    renames = {}
    for item in items or []:
        theirs, sep, ours = item.partition("=")
        if not sep or not theirs.strip() or not ours.strip():
            raise typer.BadParameter(
                f"{item!r}: expected THEIR_NAME=OUR_NAME, e.g. qty=units", param_hint="--map"
            )
        renames[theirs.strip()] = ours.strip()
    return renames


def _keys(items: list[str] | None) -> list[tuple[str, str]]:
    """--key STORE_ID:PRODUCT_ID, repeated."""
    keys = []
    for item in items or []:
        store_id, sep, product_id = item.partition(":")
        if not sep or not store_id or not product_id:
            raise typer.BadParameter(f"{item!r}: expected STORE_ID:PRODUCT_ID, e.g. S000:P0300")
        keys.append((store_id, product_id))
    return keys


IMPORT_HELP = (
    "Import a retailer's files into DATA_DIR/raw: checked, bad rows quarantined.\n\n"
    "A row that fails a check goes to DATA_DIR/raw/quarantine/<table>.parquet with its file, "
    "line and reason; a file that cannot be read, is not UTF-8, is empty or lacks a required "
    "column stops the import and nothing is written; so does one whose rows of a file the raw "
    "data needs were all quarantined (the reasons and example lines are printed). The grain "
    "and week start are read from the sales dates; a --grain or --week-start they contradict "
    "exits 2. A later import appends: the newer row "
    "wins per key (store, product, period for sales) and the rows it replaces are kept in "
    "DATA_DIR/raw/imports/. The same files imported again change nothing. To start over, "
    "delete DATA_DIR/raw."
)


@app.command("import", help=IMPORT_HELP)
@friendly
def import_files(
    folder: Annotated[
        Path,
        typer.Argument(
            help="Folder of files named orders or sales, products, stores, weather_observed "
            "(and optionally weather_forecast, promotions or prices), .csv or .parquet."
        ),
    ],
    delimiter: Annotated[
        str, typer.Option(callback=_one_character, help="CSV field separator, e.g. ';'.")
    ] = ",",
    decimal: Annotated[
        DecimalMark, typer.Option(help="Decimal separator of CSV numbers.")
    ] = DecimalMark.point,
    date_format: Annotated[
        str | None,
        typer.Option(help="strptime format of dates, e.g. %d/%m/%Y (default ISO, 2024-01-31)."),
    ] = None,
    rename: Annotated[
        list[str] | None,
        typer.Option("--map", help="THEIR_NAME=OUR_NAME: rename a column; repeat for several."),
    ] = None,
    grain: Annotated[
        Grain | None, typer.Option(help="Default: detected from the sales dates.")
    ] = None,
    week_start: Annotated[
        Weekday | None,
        typer.Option(case_sensitive=False, help="Weekday weeks start on (default: detected)."),
    ] = None,
) -> None:
    from rawdata.importer import GrainContradiction, ImportOptions, ImportStopped, run_import
    from rawdata.importing.read import ReadOptions

    if decimal == delimiter:
        raise typer.BadParameter(
            f"{decimal.value!r} is also the field separator (--delimiter)", param_hint="--decimal"
        )
    # a dict, made here: Typer turns what a callback returns back into the option's list
    renames = _renames(rename)
    settings = _settings()
    options = ImportOptions(
        read=ReadOptions(delimiter, decimal.value, date_format, renames),
        grain=Grain(grain) if grain else None,
        week_start=week_start.lower() if week_start else None,
        earliest=settings.import_earliest_date,
        latest=settings.import_latest_date,
        promo_known_periods_before=settings.promo_known_periods_before,
    )
    try:
        report = run_import(
            folder, settings.raw_dir, options, progress=step, duckdb_config=settings.duckdb_config
        )
    except ImportStopped as stopped:  # the same table as a finished import, then why it stopped
        _print_checks(stopped.report)
        raise
    except GrainContradiction as error:  # an option the data contradicts: a usage error
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    _print_import(report, settings)


def _print_checks(report) -> None:
    """Per file: rows read, accepted, quarantined; per reason its rows and a few examples."""
    # plain lines, not a table: file names and reasons must never be cut to fit the terminal
    console.print(f"[bold]import · {report.sales_table} at the {report.grain} grain[/bold]")
    width = max(len(f.file) for f in report.files)
    console.print(f"  {'file':<{width}}  {'read':>10}  {'accepted':>10}  {'quarantined':>11}")
    for f in report.files:
        console.print(
            f"  {f.file:<{width}}  {f.read:>10,}  {f.accepted:>10,}  {f.quarantined:>11,}",
            markup=False,
        )
        for reason, rows in f.reasons.items():
            console.print(f"  {'':<{width}}    {reason} {rows:,}", markup=False)
            for e in (e for e in f.examples if e.reason == reason):
                where = f"line {e.line}" + (f", {e.column}" if e.column else "")
                value = "(empty)" if e.value is None or not e.value.strip() else e.value
                console.print(f"  {'':<{width}}      {where}: {value}", markup=False)
    for note in report.notes:
        console.print(f"note: {note}")


def _print_import(report, settings: Settings) -> None:
    _print_checks(report)
    if report.replaced_generated:
        console.print("the generated data that was in the raw directory is replaced")
    if any(f.quarantined for f in report.files):
        console.print(
            f"quarantined rows, with file, line and reason: {settings.raw_dir / 'quarantine'}"
        )
    if not report.changed:
        console.print(f"nothing changed: {settings.raw_dir} already holds exactly these rows")
        return
    if report.replaced:
        replaced = ", ".join(f"{k} {v:,}" for k, v in report.replaced.items())
        console.print(f"rows replaced by newer ones (kept in {report.history}): {replaced}")
    _print_counts(f"raw tables in {settings.raw_dir}", report.written)


@app.command()
@friendly
def validate() -> None:
    """Check the raw tables in DATA_DIR/raw against the data contract, and across tables."""
    from rawdata import raw

    settings = _settings()
    rows = raw.validate_raw(settings.raw_dir)
    _print_counts("raw tables meet the contract", rows)


@app.command()
@friendly
def contract() -> None:
    """Print the raw data contract (the columns a retailer brings) as Markdown."""
    from rawdata.schemas import describe

    console.print(describe(), markup=False)


@app.command("config")
@friendly
def config(
    markdown: Annotated[
        bool,
        typer.Option(
            "--markdown",
            help="Print the settings reference of the docs (generated from the settings).",
        ),
    ] = False,
) -> None:
    """Print every setting's effective value (passwords hidden) and where it came from."""
    from demand import configuration

    if markdown:
        console.print(configuration.reference_table(), markup=False, end="")
        return
    rows = configuration.effective(get_settings())
    width = max(len(variable) for variable, _, _ in rows)
    # plain lines, not a table: a value must never be cut to fit the terminal
    for variable, value, source in rows:
        console.print(f"{variable:<{width}}  {value}  [dim]({source})[/dim]", highlight=False)


@app.command("build-features")
@friendly
def build_features() -> None:
    """Validate the raw tables, then build the offline feature tables (parquet; DuckDB, or
    Spark with DEMAND_ENGINE=spark)."""
    from features import pipeline

    settings = _settings()
    report = pipeline.build_features(settings, lambda m: step(f"built {m}"))
    _print_counts(
        f"feature tables in {settings.feature_dir} ({report.input_lines:,} input rows "
        f"in {report.seconds:.1f}s on {settings.engine.value}, {report.mode})",
        report.rows,
    )


@app.command()
@friendly
def apply() -> None:
    """Register the feature repo's definitions with Feast (`feast apply`, in-process)."""
    from features import publish

    store, changes = publish.apply(_settings())
    for change in changes:
        step(change)
    console.print(f"feast project [bold]{store.project}[/bold] applied ({len(changes)} changes)")


@app.command()
@friendly
def materialize(
    incremental: Annotated[
        bool, typer.Option(help="Only rows newer than the last materialization.")
    ] = False,
) -> None:
    """Load the online store with the latest feature rows."""
    from features import publish

    publish.materialize(_settings(), incremental=incremental)
    console.print("online store loaded")


@app.command()
@friendly
def online(
    key: Annotated[
        list[str] | None,
        typer.Option(
            "--key", "-k", callback=_keys, help="STORE_ID:PRODUCT_ID; repeat for several."
        ),
    ] = None,
    target_date: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Day to describe; default: the next day."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Keys shown when none are given.")] = 3,
) -> None:
    """Print online feature vectors for store/product keys."""
    settings = _settings()
    day = target_date.date() if target_date else None
    vectors = _online_vectors(settings, key or [], day, limit)
    for _, row in vectors.iterrows():
        table = Table(title=f"{row['store_id']} × {row['product_id']}", show_header=False)
        for name, value in row.items():
            table.add_row(str(name), str(value))
        console.print(table)


def _online_vectors(
    settings: Settings, keys: list[tuple[str, str]], target: date | None, limit: int
):
    """Vectors for the keys through the serving lookup (the service's own), one row per key."""
    import pandas as pd

    from demand.featurestore import open_store
    from serving.lookup import OnlineLookup, StoreUnavailable, scrub, unavailable_advice

    parsed = list(keys)
    from features.plan import lineage
    from training.periods import feature_service

    try:  # the grain and service of the data set built
        built = lineage(settings.feature_dir)
    except FileNotFoundError:
        raise UserError(
            f"no feature tables in {settings.feature_dir}; run `demand features`"
        ) from None
    settings = settings.model_copy(
        update={
            "feature_service": feature_service(
                settings, built, "planned_promotions" in built.tables
            )
        }
    )
    store = open_store(settings)
    try:
        lookup = OnlineLookup.from_store(store, settings.feature_service, calendar=built.calendar)
    except Exception as error:
        raise UserError(
            f"cannot read feature service {settings.feature_service!r} from the Feast registry "
            f"({scrub(str(error))}); run `demand features` (or `make features`)"
        ) from None
    if not parsed:
        parsed = _sample_keys(settings, limit)
    stores, products = [s for s, _ in parsed], [p for _, p in parsed]
    try:
        vectors = lookup.fetch(stores, products, [target] * len(parsed) if target else None)
    except StoreUnavailable as error:
        raise UserError(unavailable_advice(lookup, error)) from None
    return pd.DataFrame(
        {
            "store_id": stores,
            "product_id": products,
            "origin_date": [o.isoformat() if o else None for o in vectors.origin],
            "target_date": [t.isoformat() if t else None for t in vectors.target],
            "horizon": vectors.horizon,
            **vectors.columns,
        }
    )


def _sample_keys(settings: Settings, limit: int) -> list[tuple[str, str]]:
    import pyarrow.parquet as pq

    from features.plan import lineage

    table = lineage(settings.feature_dir).sales_features_table
    keys = (
        pq.read_table(settings.feature_dir / f"{table}.parquet", columns=["store_id", "product_id"])
        .to_pandas()
        .drop_duplicates()
        .sort_values(["store_id", "product_id"])
    )
    step = max(1, len(keys) // max(limit, 1))
    return [(r.store_id, r.product_id) for r in keys.iloc[::step].head(limit).itertuples()]


@app.command()
@friendly
def features(
    scale: ScaleOption = None,
    seed: SeedOption = None,
    regenerate: Annotated[
        bool,
        typer.Option(
            help="Generate the raw data first (off: use DATA_DIR/raw as is; imported data is "
            "always used as is)."
        ),
    ] = True,
    replace_imported: ReplaceImportedOption = False,
) -> None:
    """The feature pipeline: generate (or use imported data) → validate → build → feast apply
    → materialize."""
    from features import pipeline

    settings = _settings(scale, seed)
    console.rule(f"features · data in {settings.data_dir}")
    steps = pipeline.run(settings, step, regenerate=regenerate, replace_imported=replace_imported)
    _print_counts("seconds per step", {k: round(v, 1) for k, v in steps.seconds.items()})


@app.command()
@friendly
def train(
    device: Annotated[
        Device, typer.Option(help="auto: the GPU when CatBoost sees one, else the CPU.")
    ] = Device.auto,
    horizon: Annotated[
        int | None, typer.Option(help="Days ahead to forecast [env: DEMAND_HORIZON].")
    ] = None,
    register: Annotated[bool, typer.Option(help="Register the model in MLflow.")] = True,
) -> None:
    """Train a CatBoost demand model on a Feast training set, backtest it, register it."""
    settings = _settings(**({"horizon": horizon} if horizon is not None else {}))
    _run_training(settings, device, register)


def _run_training(settings: Settings, device: Device, register: bool = True):
    from training import train as training

    result = training.run(settings, device=device, register=register, progress=step)
    table = Table(title=f"backtest · {result.rows:,} training-set rows · hash {result.digest}")
    table.add_column("predictor")
    for metric in result.summary.columns:
        table.add_column(metric, justify="right")
    for predictor, row in result.summary.iterrows():
        table.add_row(predictor, *(f"{v:.3f}" for v in row))
    console.print(table)
    floor = result.floor_note or f"{result.floor_wape:.3f}"
    console.print(f"Poisson noise floor (WAPE of a perfect forecast): {floor}")
    console.print(f"MLflow run [bold]{result.run_id}[/bold] ({settings.tracking_uri})")
    if result.version:
        console.print(
            f"registered [bold]{result.model_name}[/bold] version "
            f"[bold]{result.version}[/bold] · trained on {result.task_type}"
        )
    return result


@app.command()
@friendly
def demo(scale: ScaleOption = None, seed: SeedOption = None) -> None:
    """The whole platform on generated data: features, training, promotion, serving."""
    from features import pipeline

    settings = _settings(scale, seed)
    console.rule(f"demo · {settings.scale.value} retailer · {settings.profile.value} profile")
    if settings.profile is Profile.team:
        from ops import team

        _print_places(team.up(settings, step))
    steps = pipeline.run(settings, step)
    _print_counts("seconds per step", {k: round(v, 1) for k, v in steps.seconds.items()})
    console.rule("online feature vectors")
    vectors = _online_vectors(settings, [], None, 3)
    shown = [
        "store_id",
        "product_id",
        "origin_date",
        "target_date",
        "category",
        "units_mean_7",
        "replacements_due_7d",
        "replacement_interval_days",
        "forecast_precipitation_mm",
        "forecast_temperature_c",
        "target_day_of_week",
        "horizon_days",
    ]
    console.print(vectors[[c for c in shown if c in vectors.columns]].T.to_string())
    console.rule("training")
    result = _run_training(settings, device=Device.auto)
    if result.version is not None:
        from registry import lifecycle

        console.rule("registry")
        lifecycle.promote_if_passing(settings, str(result.version), step)
    console.rule("serving")
    from cli.serve import demo as serve_demo
    from serving.model_loader import ServingError, resolve_version

    try:
        resolve_version(settings, "production", None)
    except ServingError:
        raise UserError(
            "no version is in production (the gates refused the one just trained, see "
            "above), so there is nothing to serve; `demand models list` shows the versions"
        ) from None

    serve_demo(settings, console.print)


@app.command()
@friendly
def nightly(
    append_days: Annotated[
        int,
        typer.Option(min=0, help="Generated data: first extend the retailer by N more days."),
    ] = 0,
    promote: Annotated[
        bool | None,
        typer.Option(
            "--promote/--no-promote",
            help="Move production when the gate passes [env: DEMAND_NIGHTLY_PROMOTE].",
        ),
    ] = None,
    notify: Annotated[
        list[str] | None,
        typer.Option(
            help="URL of a running service to POST /reload after promotion; it also gets "
            "the night's monitoring alerts as a JSON POST. Repeat."
        ),
    ] = None,
) -> None:
    """The nightly cycle: new data → features → Feast → train → gates → services → forecasts."""
    from nightly import cycle

    settings = _settings()
    console.rule(f"nightly · {settings.profile.value} profile · data in {settings.data_dir}")
    allowed = settings.nightly_promote if promote is None else promote
    report = cycle.run(settings, append_days, allowed, notify or [], step)
    _print_night(report)


def _print_night(report) -> None:
    if not report.new_data:
        console.print(f"nothing to do: no new data (raw data through {report.last_day})")
        return
    days = report.new_days
    lines = {
        "new days": f"{days[0]} … {days[-1]} ({len(days)})" if days else "first night",
        "raw rows": ", ".join(f"{k} {v:,}" for k, v in report.raw_rows.items()),
        "new feature rows": f"{report.new_feature_rows:,}",
        "online store through": report.materialized_through,
        "version": f"v{report.version}" + ("" if report.retrained else " (already registered)"),
        "backtest WAPE": ", ".join(f"{k} {v:.3f}" for k, v in report.backtest_wape.items()) or "—",
        "staging": report.staging,
        "production": report.production,
        "production evidence": report.production_evidence or "—",
        "serving": f"v{report.production_version}" if report.production_version else "none",
    }
    lines.update({f"service {i + 1}": s for i, s in enumerate(report.services)})
    lines.update({f"published to ({i + 1})": p for i, p in enumerate(report.published)})
    lines.update({f"shadow to ({i + 1})": p for i, p in enumerate(report.shadow)})
    lines.update({f"skew ({i + 1})": s["summary"] for i, s in enumerate(report.skew)})
    lines["monitoring"] = report.monitoring
    lines.update({f"alert {i + 1}": a for i, a in enumerate(report.alerts)})
    lines["seconds"] = ", ".join(f"{k} {v:.0f}" for k, v in report.seconds.items())
    if report.peak_gib:
        lines["peak memory GiB"] = ", ".join(f"{k} {v:.1f}" for k, v in report.peak_gib.items())
    _print_counts("the night", lines)


@app.command()
@friendly
def skew(
    rows: Annotated[
        int | None,
        typer.Option(min=1, help="Logged rows to recompute [env: DEMAND_SKEW_SAMPLE_ROWS]."),
    ] = None,
) -> None:
    """Served vs offline features: a seeded sample of the logged forecasts recomputed through Feast.

    Exits 1 when a feature differs outside the views the service named stale.
    """
    from monitoring import skew as served_skew

    settings = _settings()
    found = served_skew.check(settings, rows=rows, progress=step)
    for one in found:
        console.print(one.summary())
        for column, examples in one.examples.items():
            for example in examples:
                console.print(f"  {column}: {example}")
    if not all(one.clean for one in found):
        raise typer.Exit(1)


@app.command()
@friendly
def forecast(
    all_keys: Annotated[
        bool, typer.Option("--all", help="Every store × product for the next horizon days.")
    ] = False,
    alias: Annotated[str, typer.Option(help="Registry alias whose version forecasts.")] = (
        "production"
    ),
    lead_time: Annotated[
        int | None,
        typer.Option(
            "--lead-time",
            help="Also publish each key's total over its next L periods (quantiles of the "
            "sum, at most the model's horizon) under forecasts/lead_time.",
        ),
    ] = None,
    service_level: Annotated[
        float | None,
        typer.Option(
            "--service-level",
            help="With --lead-time: the order-up-to level, the total's quantile at this "
            "level in (0, 1).",
        ),
    ] = None,
) -> None:
    """Batch forecasts, published as parquet (and to PostgreSQL in the team profile)."""
    if not all_keys:
        raise UserError(
            "say which forecasts: --all (every store × product); "
            "single keys go to the service's /forecast"
        )
    if service_level is not None and not 0 < service_level < 1:
        raise typer.BadParameter(
            f"{service_level:g} is outside (0, 1); a service level is a probability",
            param_hint="--service-level",
        )
    if lead_time is not None and lead_time < 1:
        raise typer.BadParameter(f"{lead_time} is not a period count", param_hint="--lead-time")
    if service_level is not None and lead_time is None:
        raise typer.BadParameter("needs --lead-time", param_hint="--service-level")
    from serving import batch, model_loader

    settings = _settings()
    loaded = model_loader.load(settings, alias=alias)
    if lead_time is not None:
        if lead_time > loaded.contract.horizon:
            raise typer.BadParameter(
                f"{lead_time} periods is longer than the horizon of {loaded.name} "
                f"v{loaded.version} ({loaded.contract.horizon})",
                param_hint="--lead-time",
            )
        if loaded.quantile_model is None:
            raise typer.BadParameter(
                f"{loaded.name} v{loaded.version} has no quantile forecasts (trained before "
                "them, or with DEMAND_QUANTILES empty)",
                param_hint="--lead-time",
            )
    frame = batch.forecast_all(settings, loaded, step)
    batch.publish(settings, frame, step)
    if lead_time is not None:
        totals = batch.lead_times(loaded, frame, lead_time, service_level)
        batch.publish_lead_times(settings, totals, step)


@app.command()
@friendly
def monitor() -> None:
    """Score published forecasts against actuals, measure drift; exit 1 on an alert."""
    from monitoring import monitor as monitoring
    from monitoring import skew

    settings = _settings()
    result = monitoring.run(settings, step, skew=skew.for_monitor)
    _print_monitor(result)
    if result.alerts:
        err.print(f"[red]{len(result.alerts)} alert(s)[/red]")
        raise typer.Exit(1)


def _print_monitor(result) -> None:
    from monitoring import accuracy as live_accuracy

    measured = result.accuracy
    lines: dict[str, object] = {"last closed day": str(result.update.last_closed or "—")}
    if measured is None or not measured.rows:
        lines["live accuracy"] = "nothing to score yet"
    else:
        headline = measured.headline
        lines["scored forecasts"] = measured.rows
        lines["window"] = f"{measured.window_start} … {measured.night}"
        lines["live WAPE"] = (
            f"{measured.overall['wape']:.3f} (bias {measured.overall['bias']:+.3f})"
        )
        if headline is not None:
            lines[f"v{measured.headline_version} live / backtest"] = (
                f"{headline['live_wape']:.3f} / {headline['backtest_wape']:.3f} = "
                f"{headline['ratio']:.2f}"
            )
        # quantiles: live coverage and wQL by horizon beside the backtest's, or "no quantiles"
        lines.update(live_accuracy.quantile_lines(measured))
        for reason, count in measured.excluded.items():
            lines[f"left out ({reason})"] = count
    if result.update.unforecast_actuals:
        lines["actuals never forecast (ignored)"] = result.update.unforecast_actuals
    lines["drift"] = result.drift.skipped or (
        ", ".join(result.drift.drifted) or f"none ({result.drift.rows:,} vectors)"
    )
    lines["skew"] = "not checked" if result.skew is None else f"{len(result.skew)} feature(s)"
    for i, alert in enumerate(result.alerts):
        lines[f"alert {i + 1}"] = alert.message
    _print_counts("monitoring", lines)


@app.command()
@friendly
def report(
    out: Annotated[
        Path | None, typer.Option(help="HTML file to write (default: DATA_DIR/monitoring/report).")
    ] = None,
) -> None:
    """One HTML page of live accuracy, drift and skew, logged to the version's MLflow run."""
    from monitoring import report as monitoring_report

    settings = _settings()
    written = monitoring_report.write(settings, out, step)
    if written is None:
        console.print("nothing to score yet: no published forecast has a closed target")
        return
    console.print(f"report: {written}")


team_app = typer.Typer(
    help="The team profile's servers: check PostgreSQL and Redis, start the MLflow tracking "
    "server.",
    no_args_is_help=True,
)


@team_app.command("up")
@friendly
def team_up() -> None:
    """Check Redis and PostgreSQL, create the databases, start the tracking server."""
    from ops import team

    _print_places(team.up(get_settings(), step))


@team_app.command("down")
@friendly
def team_down() -> None:
    """Stop the tracking server `team up` started (PostgreSQL and Redis are left alone)."""
    from ops import team

    team.down(get_settings(), step)


@team_app.command("status")
@friendly
def team_status() -> None:
    """Say which of the team profile's servers answer; starts and creates nothing."""
    from ops import team

    settings = get_settings()
    states = team.status(settings)
    _print_counts(f"team profile · project {settings.feast_project}", states)
    _print_places(team.places(settings))


def _print_places(places) -> None:
    # plain lines, not a table: an address must never be cut to fit the terminal
    console.print("[bold]where each thing lives[/bold]")
    width = max(len(p.what) for p in places)
    for place in places:
        console.print(f"  {place.what:<{width}}  {place.where}", markup=False)


@app.command(
    "feast",
    context_settings={
        "allow_extra_args": True,
        "ignore_unknown_options": True,
        "help_option_names": [],  # `demand feast --help` is feast's help
    },
)
@friendly
def feast_cli(ctx: typer.Context) -> None:
    """The feast CLI on the profile's feature repo and registry (`demand feast projects list`)."""
    from ops import ui

    raise typer.Exit(ui.run_feast(_settings(), ctx.args))


@app.command("ui")
@friendly
def ui_command(
    host: Annotated[str, typer.Option(help="Address both UIs listen on.")] = "127.0.0.1",
    mlflow_port: Annotated[
        int, typer.Option(help="MLflow UI port (embedded profile; team: the tracking server's).")
    ] = 5000,
    feast_port: Annotated[int, typer.Option(help="Feast UI port.")] = 8888,
) -> None:
    """Browse runs and model versions (MLflow UI) and features (Feast UI) until Ctrl-C."""
    from ops import ui

    ui.run_ui(_settings(), host, mlflow_port, feast_port, step)


app.command("serve")(serve_command)
app.add_typer(team_app, name="team")
app.add_typer(bento_app, name="bento", help="Package the service and the model as a Bento.")
app.add_typer(
    models_app,
    name="models",
    help="Registered model versions: list, show, promote, rollback, archive.",
)


def _print_counts(title: str, counts: dict[str, object]) -> None:
    table = Table(title=title)
    table.add_column("name")
    table.add_column("value", justify="right")
    for name, value in counts.items():
        table.add_row(name, f"{value:,}" if isinstance(value, int) else str(value))
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv``; returns the exit code (what tests call)."""
    try:
        # without standalone mode the parser returns typer.Exit's code instead of exiting
        code = app(args=argv, standalone_mode=False)
    except typer.TyperException as error:  # usage errors: unknown option, bad value
        error.show()
        return error.exit_code
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
