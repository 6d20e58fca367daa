"""The nightly cycle, one idempotent command: new data → features → Feast → a trained version
→ gates → promotion → running services → published forecasts.

Each step leaves what it changes consistent when the next one fails:

* new raw data is validated whole before anything is written (a bad night stops here);
  imported data (`demand import`) is used as the import wrote it, never generated over;
* the feature tables are built aside and swapped in only once all are built;
* the online store is loaded incrementally after the swap, from the new tables;
* the registry changes only by registering a version and by gated promotions
  (each an atomic alias move under the promotion lock); under ``--promote`` a staging
  version still collecting live evidence keeps staging until it has its nights, then
  the production gate judges it on them (the shadow policy, ``shadow_hold``);
* services follow the production alias (their poll, or ``POST /reload`` here);
* forecasts are published per origin, replacing that origin's rows whole; the staging
  version's beside them as a shadow (never served), the production gate's live evidence;
* a seeded sample of the served-feature log is recomputed offline (skew), which only reads.

A night whose raw data is what the last finished night saw does nothing. A night
run again on the same data registers nothing new (the training set's hash is
already registered) and writes no duplicate rows.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import pandas as pd

from demand import memory
from demand.console import UserError
from demand.settings import Settings
from features import build_duckdb, pipeline, plan, publish
from rawdata import raw
from registry import lifecycle
from registry.gates import Stage
from registry.state import aliases, connect, model_version, stage_of

Progress = Callable[[str], None]
STATE = "state.json"


@dataclass
class NightReport:
    """What a night did, for the person reading the morning's log (and the JSON next to it)."""

    started_at: str
    new_data: bool = False
    last_day: str | None = None
    new_days: list[str] = field(default_factory=list)
    raw_rows: dict[str, int] = field(default_factory=dict)
    new_feature_rows: int = 0
    materialized_through: str | None = None
    version: str | None = None
    retrained: bool = False
    backtest_wape: dict[str, float] = field(default_factory=dict)
    staging: str = "not run"
    production: str = "not run"
    production_version: str | None = None
    services: list[str] = field(default_factory=list)
    published: list[str] = field(default_factory=list)
    production_evidence: str | None = None  # what the production gate judged on
    # what the shadow policy did tonight with the staging version collecting live evidence
    # (kept it in staging, had it judged, released it), and why; None: nothing to hold
    challenger: str | None = None
    shadow: list[str] = field(default_factory=list)  # the staging version's, never served
    skew: list[dict] = field(default_factory=list)  # served vs offline, per feature service
    monitoring: str = "not run"
    alerts: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    peak_gib: dict[str, float] = field(default_factory=dict)  # peak memory of each step


def _state_path(settings: Settings):
    return settings.data_dir / "nightly" / STATE


def _last_state(settings: Settings) -> dict:
    try:
        return json.loads(_state_path(settings).read_text())
    except (OSError, ValueError):
        return {}


def raw_fingerprint(settings: Settings) -> str:
    """A hash of the raw tables' bytes: equal fingerprints, equal data."""
    digest = hashlib.sha256()
    for path in sorted(settings.raw_dir.glob("*.parquet")):
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def definitions_fingerprint(settings: Settings) -> str:
    """A hash of what `feast apply` registers and training reads: the repo's files, the
    profile, the project, which feature tables exist (`apply` leaves out a view whose
    table is absent) and the feature service training will choose (plans switch it).

    Call it on the tables in place (after the night's build)."""
    from training import dataset

    digest = hashlib.sha256(f"{settings.profile}:{settings.feast_project}".encode())
    tables = sorted(p.name for p in settings.feature_dir.glob("*.parquet"))
    digest.update(f"tables:{','.join(tables)}".encode())
    digest.update(f"service:{dataset.service_for(settings)}".encode())
    for path in sorted(settings.feature_repo.glob("*")):
        if path.suffix in {".py", ".yaml", ".feastignore"} or path.name == ".feastignore":
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def last_raw_day(settings: Settings) -> pd.Timestamp:
    """The last day the raw order book covers (the first day of the last period of
    aggregated sales)."""
    return raw.last_period_start(settings.raw_dir)


class _Clock:
    """Times each step and measures its peak memory (the process's, DuckDB's and
    CatBoost's threads included: they run in this process)."""

    def __init__(self, report: NightReport, progress: Progress):
        self.report, self.progress = report, progress

    def step(self, name: str, fn: Callable[[], object]) -> object:
        self.progress(f"{name} …")
        memory.release()  # what the last step freed, so this step's peak is its own
        memory.reset_peak()
        started = time.perf_counter()
        result = fn()
        self.report.seconds[name] = round(time.perf_counter() - started, 1)
        peak = memory.peak_gib()
        if peak is not None:
            self.report.peak_gib[name] = round(peak, 2)
        return result


def run(
    settings: Settings,
    append_days: int = 0,
    promote: bool = False,
    notify: Sequence[str] = (),
    progress: Progress = print,
) -> NightReport:
    """One night; see the module docstring for what each step guarantees."""
    report = NightReport(started_at=datetime.now(UTC).isoformat(timespec="seconds"))
    clock = _Clock(report, progress)
    last = _last_state(settings)

    if append_days:
        if pipeline.imported(settings):
            raise UserError(
                f"{settings.raw_dir} holds imported data: new data comes from `demand import "
                "DIR` (then `demand nightly`); --append-days extends generated data only"
            )
        # generate validates what it writes before it replaces anything: no second pass
        report.raw_rows = clock.step(
            "new data + validate", lambda: pipeline.generate(settings, progress, append_days)
        )
    else:
        report.raw_rows = clock.step("validate", lambda: raw.validate_raw(settings.raw_dir))
    fingerprint = raw_fingerprint(settings)
    last_day = last_raw_day(settings)
    report.last_day = f"{last_day:%Y-%m-%d}"
    if last.get("raw") == fingerprint:
        progress(f"no new data since the last night (raw data through {report.last_day})")
        return report
    report.new_data = True
    previous = pd.Timestamp(last["last_day"]) if last.get("last_day") else None
    if previous is not None and previous < last_day:
        report.new_days = [
            f"{d:%Y-%m-%d}" for d in pd.date_range(previous + pd.Timedelta(days=1), last_day)
        ]

    built = clock.step("build features", lambda: _build_aside(settings, progress))
    report.new_feature_rows = _rows_after(settings, previous)
    definitions = definitions_fingerprint(settings)
    reason = apply_reason(settings, last)
    if reason:
        progress(f"feast apply: {reason}")
        clock.step("feast apply", lambda: publish.apply(settings))
    else:
        progress("feast apply skipped: the feature definitions are those of the last night")
    clock.step("materialize", lambda: _materialize(settings, progress, built.mode))
    report.materialized_through = f"{publish.origin_close(settings):%Y-%m-%d %H:%M}"

    from training import train

    result = clock.step(
        "train", lambda: train.run(settings, progress=progress, skip_if_registered=True)
    )
    report.version, report.retrained = str(result.version), not result.reused
    if not result.summary.empty:
        report.backtest_wape = {k: round(float(v), 4) for k, v in result.summary["wape"].items()}

    hold = Hold()
    if promote and settings.nightly_shadow_hold:
        hold = clock.step("shadow policy", lambda: shadow_hold(settings, last, progress))
    _gates(settings, report, promote, hold, clock)
    client = connect(settings)
    held = aliases(client, settings.model_name)
    report.production_version = held.get("production")

    report.services = [_reload(url) for url in notify]
    report.published = clock.step("publish forecasts", lambda: _publish(settings, progress))
    report.shadow = clock.step("publish shadow", lambda: _publish_shadow(settings, progress))
    report.skew = clock.step("skew", lambda: skew_check(settings, progress))
    clock.step("monitor", lambda: _monitor(settings, report, notify, progress))

    state = {"raw": fingerprint, "definitions": definitions, "last_day": report.last_day}
    if hold.held:
        state["held"] = hold.version  # a hold whose shadow never appears is released
    _save_state(settings, state, report)
    return report


def _build_aside(settings: Settings, progress: Progress) -> plan.BuildReport:
    """Build every feature table into a sibling directory, then swap them in together.

    On the engine DEMAND_ENGINE names. On DuckDB incremental when the tables in place
    extend (same grain and definitions, raw sales only appended; see ``build_duckdb.build``),
    else full; the progress line says which. The directory is replaced whole (one rename
    of a link, ``demand.swap``): a crash leaves every table old or every table new.
    """
    live = settings.feature_dir
    built = pipeline.build_with(
        settings,
        progress=lambda m: progress(f"built {m}"),
        previous=live if live.exists() else None,
    )
    progress(f"feature build: {built.mode}, {built.seconds:.1f}s")
    return built


def apply_reason(settings: Settings, last: dict) -> str | None:
    """Why tonight must run `feast apply` (None: the registry would not change)."""
    if last.get("definitions") != definitions_fingerprint(settings):
        return "the feature definitions, tables or chosen service changed"
    if not _registered(settings):
        return "the registry lacks the feature service"
    return None


def _registered(settings: Settings) -> bool:
    """Whether the Feast registry still holds the feature service training will choose (a
    registry can be reset; a weekly set never registers the settings' daily default)."""
    from demand.featurestore import open_store
    from training import dataset

    services = open_store(settings).list_feature_services()
    return dataset.service_for(settings) in {s.name for s in services}


def _materialize(settings: Settings, progress: Progress, mode: str = "incremental") -> None:
    """Only rows newer than each view's last load when the build only appended periods
    (``mode``: the feature build's); everything for a view never loaded, and after a build
    that rebuilt the tables whole.

    (Feast's incremental load of a view it never loaded starts at now − TTL, which
    skips a history that ended earlier than that. A whole rebuild may have changed rows
    the online store already holds, a correction of earlier periods with no new one: an
    incremental load would add nothing and serve the rows before the correction. A full
    load writes one latest row per key, as many keys as an incremental night's.)
    """
    from demand.featurestore import open_store

    views = open_store(settings).list_feature_views()
    never = [v.name for v in views if not v.most_recent_end_time]
    full = bool(never) or not mode.startswith("incremental")
    if never:
        progress(f"first load of {', '.join(never)}: materializing everything")
    elif full:
        progress(f"the feature tables were rebuilt ({mode}): materializing everything")
    publish.materialize(settings, incremental=not full)


def _rows_after(settings: Settings, previous: pd.Timestamp | None) -> int:
    """Purchase feature rows about days after ``previous`` (all rows on the first night)."""
    built = plan.lineage(settings.feature_dir)  # daily or weekly purchase rows
    table = (settings.feature_dir / f"{built.sales_features_table}.parquet").as_posix()
    # counted by DuckDB: the purchase table can be tens of millions of rows
    con = build_duckdb.connect(settings.duckdb_config)
    try:
        if previous is None:
            return con.execute("SELECT COUNT(*) FROM read_parquet(?)", [table]).fetchone()[0]
        # a row known at the start of period p + 1 describes period p
        after = (previous + pd.Timedelta(days=built.calendar.days)).tz_localize("UTC")
        return con.execute(
            "SELECT COUNT(*) FROM read_parquet(?) WHERE event_timestamp > ?",
            [table, after.to_pydatetime()],
        ).fetchone()[0]
    finally:
        con.close()


@dataclass(frozen=True)
class Hold:
    """What the shadow policy (``nightly_shadow_hold``) says tonight of the staging version.

    ``held``: it stays in staging, still collecting live evidence; tonight's version is
    registered, not staged. ``judge``: it has its ``shadow_nights`` nights; the production
    gate judges it on them tonight. Neither: nothing to hold (no staging version beside a
    production one, the policy off) or a hold released (``reason`` says why).
    """

    version: str | None = None
    held: bool = False
    judge: bool = False
    reason: str = ""


def shadow_hold(settings: Settings, last: dict, progress: Progress = print) -> Hold:
    """Tonight's verdict on the staging version's live evidence (before tonight's gates).

    A staging version is shadowed beside production each night; while it has fewer than
    ``shadow_nights`` nights of forecasts with actuals it keeps staging, so the evidence
    can accumulate (each night's new version would otherwise replace it). A shadow that
    stopped (a night production published and it did not, or none published since the
    last night held it) releases the hold: a stuck version never blocks staging.
    """
    if not settings.nightly_shadow_hold:
        return Hold()
    from monitoring import shadow
    from registry.state import holder

    held = aliases(connect(settings), settings.model_name)
    staging, production = holder(held, Stage.staging), holder(held, Stage.production)
    if staging is None or production is None:
        return Hold()
    found = shadow.live_evidence(settings, staging, production, progress)
    counted = f"{found.nights} of {found.needed} nights of live evidence"
    if found.sufficient:
        return Hold(
            staging, judge=True, reason=f"v{staging} has {counted}: the production gate judges it"
        )
    stopped = shadow.stalled(settings, staging, production)
    if not stopped and last.get("held") == staging and not shadow.shadow_origins(settings, staging):
        stopped = f"v{staging}'s shadow was never published"
    if stopped:
        return Hold(staging, reason=f"{stopped}: released from staging's hold with {counted}")
    return Hold(
        staging,
        held=True,
        reason=f"v{staging} stays in staging collecting live evidence ({counted})",
    )


def _gates(
    settings: Settings, report: NightReport, promote: bool, hold: Hold, clock: _Clock
) -> None:
    """The staging and production gates tonight, under the shadow policy (``hold``).

    Without the policy (or with nothing to hold) tonight's version goes to staging and,
    when ``promote``, to the production gate at once: on its backtest, as it has no
    shadow yet, unless no production version exists. With it, a staging version still
    collecting live evidence keeps staging (tonight's version is registered only); one
    that has its nights is judged by the production gate on them, and tonight's version
    then takes staging, to be shadowed in turn.
    """
    version = report.version
    report.challenger = hold.reason or None
    if hold.held:
        report.staging = f"v{version} registered, not staged: {hold.reason}"
        if hold.version == version:  # the night run again: tonight's version is the held one
            report.staging = f"v{version} already in staging: {hold.reason}"
        report.production = f"not run: {hold.reason}"
        clock.progress(report.staging)
        return
    if hold.judge:
        clock.progress(hold.reason)
        report.production = clock.step(
            "production gate", lambda: _promote(settings, report, Stage.production, hold.version)
        )
        if hold.version == version:
            report.staging = f"v{version} was in staging: {hold.reason}"
            return
        # whatever the verdict, tonight's version may take staging and be shadowed in turn
        # (a refused holder goes back to candidate; a refused version leaves it judged again)
        report.staging = clock.step(
            "staging gate", lambda: _promote(settings, report, Stage.staging)
        )
        return
    if hold.reason:  # released
        clock.progress(hold.reason)
    report.staging = clock.step("staging gate", lambda: _promote(settings, report, Stage.staging))
    if report.staging.startswith("refused"):
        report.production = "not run: the version is not in staging"
    elif not promote:
        report.production = "not asked (--promote moves production)"
    elif _shadowed_first(settings, version):
        report.production = (
            f"not run: v{version} is shadowed beside production first "
            f"(DEMAND_SHADOW_NIGHTS={settings.shadow_nights} nights of live evidence)"
        )
    else:
        report.production = clock.step(
            "production gate", lambda: _promote(settings, report, Stage.production)
        )


def _shadowed_first(settings: Settings, version: str) -> bool:
    """Whether the shadow policy sends ``version``, now in staging, to collect live evidence
    before its production gate: it does whenever a production version exists to shadow."""
    if not settings.nightly_shadow_hold:
        return False
    from registry.state import holder

    held = aliases(connect(settings), settings.model_name)
    production = holder(held, Stage.production)
    return production is not None and holder(held, Stage.staging) == version != production


def _promote(settings: Settings, report: NightReport, to: Stage, version: str | None = None) -> str:
    """Move ``version`` (tonight's by default) to ``to`` through its gate; the verdict."""
    version = version or report.version
    client = connect(settings)
    found = model_version(client, settings.model_name, version)
    stage = stage_of(found, aliases(client, settings.model_name))
    if stage == to or (to == Stage.staging and stage == Stage.production):
        return f"v{version} already in {stage}"
    if stage == Stage.archived:
        return f"v{version} is archived; not promoted again"
    try:
        outcome = lifecycle.promote(settings, version, to)
    except lifecycle.GateRefused as refused:
        if to == Stage.production:
            report.production_evidence = evidence_used(refused.result)
        return f"refused: {refused.result.explain()}"
    if to == Stage.production and outcome.gates is not None:
        report.production_evidence = evidence_used(outcome.gates)
    return f"v{version} promoted to {to}"


def evidence_used(result) -> str:
    """Which evidence the production gate judged the challenger on, in its own words."""
    from registry.gates import NO_WORSE_LIVE

    for check in result.checks:
        if check.name == NO_WORSE_LIVE:
            return f"live (shadow against production): {check.detail}"
        if check.name.startswith("no worse than production"):
            return f"backtest: {check.detail}"
    return "none: the gate stopped before comparing with production"


def _reload(url: str) -> str:
    """Ask a running service to load the version @production points at now."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{url.rstrip('/')}/reload", data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.loads(response.read())
        model = answer.get("model", {})
        return f"{url}: serving v{model.get('version')} (changed: {answer.get('changed')})"
    except (urllib.error.URLError, OSError, ValueError) as error:
        return f"{url}: not reloaded ({error}); it follows the alias on its next poll"


def _publish(settings: Settings, progress: Progress) -> list[str]:
    from serving import batch, model_loader

    try:
        loaded = model_loader.load(settings, alias="production")
    except model_loader.ServingError as error:
        progress(f"no forecasts published: {error}")
        return []
    return batch.publish(settings, batch.forecast_all(settings, loaded, progress), progress)


def _publish_shadow(settings: Settings, progress: Progress) -> list[str]:
    """The staging version's forecasts beside production's, marked by version (its live
    evidence for the production gate); nothing when staging holds production's version."""
    from serving import batch, model_loader

    client = connect(settings)
    held = aliases(client, settings.model_name)
    staging, production = held.get("staging"), held.get("production")
    if staging is None or production is None or staging == production:
        # a shadow is evidence against production: none without both
        progress("no shadow forecasts: no staging version beside a production one")
        return []
    try:
        loaded = model_loader.load(settings, alias="staging")
    except model_loader.ServingError as error:
        progress(f"no shadow forecasts: {error}")
        return []
    frame = batch.forecast_all(settings, loaded, progress)
    return batch.publish(settings, frame, progress, shadow=True)


def skew_check(settings: Settings, progress: Progress = print) -> list[dict]:
    """Served vs offline features of a seeded sample of the logged rows (monitoring/skew.py), each
    feature service's summary; callable alone (`demand skew`)."""
    from monitoring import skew

    found = skew.check(settings, progress=progress)
    for one in found:
        progress(one.summary())
    return [one.to_dict() for one in found]


def _monitor(
    settings: Settings, report: NightReport, notify: Sequence[str], progress: Progress
) -> None:
    """Score the forecasts whose targets closed, measure drift; post any alert as JSON to
    each ``--notify`` URL. The forecasts are published by now: a monitoring failure is
    reported, and the night still counts as done."""
    from monitoring import monitor, skew

    try:
        # the skew step ran before: its findings become alerts and the report's table
        result = monitor.run(settings, progress, skew=lambda _: skew.findings(report.skew))
    except UserError as error:
        report.monitoring = f"failed: {error}"
        return
    measured = result.accuracy
    headline = measured.headline if measured is not None and measured.rows else None
    report.monitoring = (
        "nothing to score yet"
        if headline is None
        else f"v{measured.headline_version} live WAPE {headline['live_wape']:.3f}, "
        f"{headline['ratio']:.2f} × its backtest"
    )
    report.alerts = [a.message for a in result.alerts]
    if result.alerts:
        body = {
            "model": settings.model_name,
            "night": str(result.update.last_closed),
            "alerts": [a.to_dict() for a in result.alerts],
        }
        for url in notify:
            progress(_post_alerts(url, body))


def _post_alerts(url: str, body: dict) -> str:
    """POST the night's alerts (JSON) to ``url``; a receiver that does not answer is said,
    never fatal."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        url,
        data=json.dumps(body, default=str).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return f"alerts posted to {url} ({response.status})"
    except (urllib.error.URLError, OSError, ValueError) as error:
        return f"alerts not posted to {url}: {error}"


def _save_state(settings: Settings, state: dict, report: NightReport) -> None:
    """Record the night (only once it finished: a failed night is redone next time)."""
    folder = _state_path(settings).parent
    folder.mkdir(parents=True, exist_ok=True)
    stamp = report.started_at.replace(":", "")
    (folder / f"report-{stamp}.json").write_text(json.dumps(asdict(report), indent=2))
    tmp = folder / f"{STATE}.tmp"
    tmp.write_text(json.dumps({**state, "finished_at": datetime.now(UTC).isoformat()}))
    tmp.replace(_state_path(settings))
