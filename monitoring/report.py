"""`demand report`: one self-contained HTML page of how the forecasts do live.

From what the last `demand monitor` left (the ledger, the accuracy history, the drift
and feed tables, ``last.json``): live vs backtest WAPE by horizon over the nights,
live vs backtest quantile coverage and wQL by horizon (or "no quantiles" for a version
published without them), accuracy by category and store, forecast vs actual for the
worst series, the drift table and skew. Plots are PNGs beside the page and embedded in
it (base64), so the one file can be mailed or opened from the version's MLflow run,
where the folder is logged.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pandas as pd

from demand import quantiles as qmath
from demand.settings import Settings
from monitoring import accuracy, ledger
from monitoring import monitor as monitoring
from training.metrics import level_key

Progress = Callable[[str], None]
WORST_SERIES = 4


def write(
    settings: Settings,
    out: Path | None = None,
    progress: Progress = print,
    measured: accuracy.Accuracy | None = None,
) -> Path | None:
    """Write the page (and its PNGs); None when no forecast has a closed target yet.

    ``measured``: tonight's accuracy when the caller has it (else measured again)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display

    history = accuracy.read_history(settings)
    last = monitoring.read_last(settings)
    if history.empty or not last.get("night") or not ledger.partitions(settings):
        return None
    night = pd.Timestamp(last["night"]).date()
    version = str(history.sort_values("night").iloc[-1]["model_version"])
    if measured is None:
        versions = sorted(history["model_version"].astype(str).unique())
        measured = accuracy.measure(settings, night, accuracy.backtest_metrics(settings, versions))
    if not measured.rows:
        return None
    version = measured.headline_version or version
    page = out or settings.monitoring_dir / "report" / "report.html"
    folder = page.parent
    folder.mkdir(parents=True, exist_ok=True)
    plots = {
        "wape_over_time.png": _over_time(history, version),
        "by_category.png": _bars(measured.by["category"], "category", "WAPE by category"),
        "by_store.png": _bars(measured.by["store_id"], "store_id", "WAPE by store"),
        "worst_series.png": _worst(settings, measured),
    }
    quantile_plot = _quantiles(measured.quantiles, version)
    if quantile_plot is not None:
        plots["quantiles_by_horizon.png"] = quantile_plot
    drift_table = monitoring.read_table(settings, monitoring.DRIFT_TABLE)
    if not drift_table.empty and drift_table["psi"].notna().any():
        plots["drift_psi.png"] = _psi(drift_table, settings.monitor_psi_threshold)
    images = {}
    for name, figure in plots.items():
        figure.savefig(folder / name, dpi=90, bbox_inches="tight")
        images[name] = base64.b64encode((folder / name).read_bytes()).decode()
        import matplotlib.pyplot as plt

        plt.close(figure)
    feeds = monitoring.read_table(settings, monitoring.FEED_TABLE)
    page.write_text(_html(settings, measured, last, images, drift_table, feeds))
    progress(f"wrote {page} and {len(images)} plot(s) beside it")
    _log(settings, version, folder, progress)
    return page


def _over_time(history: pd.DataFrame, version: str):
    import matplotlib.pyplot as plt

    lines = history[history["model_version"].astype(str) == version].copy()
    lines["night"] = pd.to_datetime(lines["night"])
    horizons = sorted(h for h in lines["horizon"].unique() if h)
    chosen = [0, *_spread(horizons, 4)]
    figure, axis = plt.subplots(figsize=(8, 4))
    for i, horizon in enumerate(chosen):
        part = lines[lines["horizon"] == horizon].sort_values("night")
        label = "all horizons" if horizon == 0 else f"h{horizon}"
        color = f"C{i}"
        axis.plot(part["night"], part["live_wape"], marker="o", color=color, label=f"{label} live")
        axis.plot(
            part["night"], part["backtest_wape"], ls="--", color=color, label=f"{label} backtest"
        )
    axis.set_title(f"v{version}: live vs backtest WAPE, by horizon")
    axis.set_ylabel("WAPE")
    axis.legend(fontsize=7, ncol=2)
    figure.autofmt_xdate()
    return figure


def _quantiles(table: pd.DataFrame, version: str):
    """The version's live coverage (each level, the central interval) and wQL by horizon,
    beside the backtest's; None for a version without quantiles."""
    import matplotlib.pyplot as plt

    if table.empty:
        return None
    rows = table[(table["model_version"] == version) & (table["horizon"] != accuracy.ALL)]
    if rows.empty:
        return None
    rows = rows.sort_values("horizon")
    levels = qmath.parse_levels(rows.iloc[0]["levels"])
    horizon = rows["horizon"]
    figure, (cover, loss) = plt.subplots(1, 2, figsize=(10, 4))
    central = qmath.central(levels)
    if central is not None:
        name = f"P{central[0] * 100:g}–P{central[1] * 100:g}"
        cover.plot(horizon, rows["live_interval_coverage"], "o-", color="C0", label=f"{name} live")
        cover.plot(
            horizon, rows["backtest_interval_coverage"], "--", color="C0", label=f"{name} backtest"
        )
        cover.axhline(central[1] - central[0], color="C0", ls=":", lw=1)
    for i, level in enumerate(levels, start=1):
        column = f"live_coverage_{level_key(level)}"
        cover.plot(horizon, rows[column], ".-", color=f"C{i}", lw=1, label=f"P{level * 100:g} live")
        cover.axhline(level, color=f"C{i}", ls=":", lw=1)
    cover.set_ylim(0, 1.05)
    cover.set_xlabel("horizon")
    cover.set_ylabel("share of actuals covered (dotted: nominal)")
    cover.set_title("Coverage")
    cover.legend(fontsize=7)
    loss.plot(horizon, rows["live_wql"], "o-", color="C0", label="live")
    loss.plot(horizon, rows["backtest_wql"], "--", color="C0", label="backtest")
    loss.set_xlabel("horizon")
    loss.set_ylabel("mean wQL")
    loss.set_title("Weighted quantile loss")
    loss.legend(fontsize=7)
    figure.suptitle(f"v{version}: quantiles live vs backtest, by horizon")
    figure.tight_layout()
    return figure


def _quantile_html(measured: accuracy.Accuracy, image) -> str:
    e = html.escape
    parts = [
        f"<p>v{e(v)}: no quantiles (its published forecasts carry no quantile columns).</p>"
        for v in measured.no_quantiles
    ]
    if not measured.quantiles.empty:
        parts.append(image("quantiles_by_horizon.png", "live vs backtest coverage and wQL"))
        parts.append(
            "<p>Coverage: the share of actuals at or below each quantile, and inside the "
            "central interval (ends included); wQL: 2 Σ pinball loss / Σ actual. Horizon 0: "
            "every horizon. A backtest figure the version's run did not log is “—”.</p>"
        )
        table = measured.quantiles
        keys = ["model_version", "horizon"]
        central = [
            c
            for c in (
                "levels",
                "rows",
                "nominal_interval",
                "live_interval_coverage",
                "backtest_interval_coverage",
                "live_wql",
                "backtest_wql",
            )
            if c in table
        ]
        each = [c for c in table if c not in keys + central]
        # two tables, each narrow enough to read: the interval and mean wQL, then each level
        parts.append(_table(table[keys + central], na_rep="—"))
        parts.append("<h3>Each level</h3>")
        parts.append(f'<div class="wide">{_table(table[keys + each], na_rep="—")}</div>')
    return "\n".join(parts) or "<p>none</p>"


def _spread(values: list, count: int) -> list:
    if len(values) <= count:
        return list(values)
    step = (len(values) - 1) / (count - 1)
    return [values[round(i * step)] for i in range(count)]


def _bars(frame: pd.DataFrame, by: str, title: str):
    import matplotlib.pyplot as plt

    frame = frame.sort_values("wape", ascending=False).head(30)
    figure, axis = plt.subplots(figsize=(8, max(2.5, 0.25 * len(frame) + 1)))
    axis.barh(frame[by].astype(str), frame["wape"], color="C0")
    axis.invert_yaxis()
    axis.set_xlabel("WAPE (live, rolling window)")
    axis.set_title(title)
    return figure


def _worst(settings: Settings, measured: accuracy.Accuracy):
    """Forecast (shortest horizon) vs actual of the series with the most absolute error."""
    import matplotlib.pyplot as plt

    rows = ledger.worst_series(settings, measured.window_start, measured.night, WORST_SERIES)
    worst = (
        []
        if rows is None
        else list(dict.fromkeys(zip(rows["store_id"], rows["product_id"], strict=True)))
    )
    figure, axes = plt.subplots(len(worst) or 1, 1, figsize=(8, 2.2 * max(len(worst), 1)))
    axes = list(axes) if len(worst) > 1 else [axes]
    for axis, (store, product) in zip(axes, worst, strict=False):
        part = rows[(rows["store_id"] == store) & (rows["product_id"] == product)]
        first = part[part["horizon"] == part["horizon"].min()].sort_values("target_date")
        actual = part.drop_duplicates("target_date").sort_values("target_date")
        axis.plot(pd.to_datetime(actual["target_date"]), actual["actual"], "k-", label="actual")
        axis.plot(
            pd.to_datetime(first["target_date"]),
            first["forecast"],
            "C1o--",
            label=f"forecast h{int(part['horizon'].min())}",
        )
        axis.set_title(f"{store} × {product}", fontsize=9)
        axis.legend(fontsize=7)
    figure.suptitle("Forecast vs actual: the worst series")
    figure.autofmt_xdate()
    return figure


def _psi(table: pd.DataFrame, threshold: float):
    import matplotlib.pyplot as plt

    table = table[table["psi"].notna()].sort_values("psi", ascending=False).head(30)
    figure, axis = plt.subplots(figsize=(8, max(2.5, 0.25 * len(table) + 1)))
    colors = ["C3" if d else "C0" for d in table["drifted"]]
    axis.barh(table["feature"], table["psi"], color=colors)
    axis.axvline(threshold, color="C3", ls="--")
    axis.invert_yaxis()
    axis.set_xlabel("PSI against the reference profile")
    axis.set_title("Drift per feature")
    return figure


def _table(frame: pd.DataFrame, digits: int = 3, na_rep: str = "NaN") -> str:
    if frame.empty:
        return "<p>none</p>"
    return frame.to_html(
        index=False, float_format=lambda v: f"{v:.{digits}f}", border=0, na_rep=na_rep
    )


def _html(settings, measured, last, images, drift_table, feeds) -> str:
    e = html.escape
    headline = measured.headline
    summary = (
        f"v{e(str(measured.headline_version))}: live WAPE {headline['live_wape']:.3f}, backtest "
        f"{headline['backtest_wape']:.3f}, ratio <b>{headline['ratio']:.2f}</b>"
        if headline is not None
        else "no headline"
    )
    excluded = ", ".join(f"{v:,} {e(k)}" for k, v in measured.excluded.items()) or "none"
    ledger_facts = last.get("ledger", {})
    alerts = last.get("alerts") or []
    if last.get("drift_skipped"):
        drift_html = f"<p>Drift skipped: {e(last['drift_skipped'])}</p>"
    else:
        drift_html = _table(drift_table)
        if last.get("drift_note"):
            drift_html = f"<p>{e(last['drift_note'])}.</p>" + drift_html
        if not feeds.empty:
            drift_html += "<h3>Feeds</h3>" + _table(feeds, 1)
    skew = last.get("skew")
    skew_html = (
        "<p>Skew not checked tonight.</p>"
        if skew is None
        else _table(pd.DataFrame(skew))
        if skew
        else "<p>No served-vs-offline mismatch.</p>"
    )

    def image(name: str, alt: str) -> str:
        if name not in images:
            return ""
        return f'<img src="data:image/png;base64,{images[name]}" alt="{e(alt)}">'

    window = measured.window_start + timedelta(days=0)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Forecast monitoring · {e(settings.model_name)} · {measured.night}</title>
<style>
body {{ font-family: sans-serif; margin: 2em auto; max-width: 60em; color: #222; }}
img {{ max-width: 100%; display: block; margin: 1em 0; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
td, th {{ padding: 0.2em 0.6em; border-bottom: 1px solid #ddd; text-align: right; }}
.alert {{ color: #a00; }}
.wide {{ overflow-x: auto; }}
</style></head><body>
<h1>{e(settings.model_name)}: forecasts against actuals</h1>
<p>Targets {window} … {measured.night}: {measured.rows:,} scored forecasts. {summary}.
Left out: {excluded}. Actuals never forecast (ignored):
{ledger_facts.get("unforecast_actuals", 0):,}.</p>
<h2>Alerts</h2>
{"".join(f'<p class="alert">{e(a["message"])}</p>' for a in alerts) or "<p>none</p>"}
<h2>Live vs backtest WAPE by horizon</h2>
{image("wape_over_time.png", "live vs backtest WAPE over the nights")}
{_table(measured.versus)}
<h2>Quantiles: live vs backtest coverage and wQL by horizon</h2>
{_quantile_html(measured, image)}
<h2>Accuracy by category and store</h2>
{image("by_category.png", "WAPE by category")}
{image("by_store.png", "WAPE by store")}
<h2>Forecast vs actual, worst series</h2>
{image("worst_series.png", "forecast vs actual of the worst series")}
<h2>Drift</h2>
{image("drift_psi.png", "PSI per feature")}
{drift_html}
<h2>Skew</h2>
{skew_html}
</body></html>
"""


def _log(settings: Settings, version: str, folder: Path, progress: Progress) -> None:
    """The page and its PNGs in the version's MLflow run (``monitoring/report``)."""
    from demand.tracking import connect

    client = connect(settings)
    try:
        run_id = client.get_model_version(settings.model_name, version).run_id
    except Exception:  # the version is gone from the registry: the files stay on disk
        progress(f"v{version} is not in the registry: the report is not logged to MLflow")
        return
    client.log_artifacts(run_id, str(folder), "monitoring/report")
    progress(f"logged the report to run {run_id} (monitoring/report)")
