"""The training job: training set through Feast → CatBoost → backtest → refit → MLflow registry.

The backtest model is fitted before the validation window (early stopping there picks
the number of trees) and judged on the backtest window after it. The model registered
and served is refit with that many trees on every closed day, the held-out ones too;
the backtest model stays inside it for the production gate, which may score only it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from demand import memory
from demand.calendar import Calendar
from demand.contract import BACKTEST_MODEL, FeatureContract
from demand.featurestore import open_store
from demand.settings import Engine, Settings
from training import baselines, dataset, profile, quantiles, search, short_history, tracking
from training import device as devices
from training import model as demand_model
from training.metrics import (
    METRICS,
    breakdown,
    floor_note,
    metric_key,
    poisson_floor_wape,
    scores,
)
from training.model import rows_of
from training.periods import Schedule

Progress = Callable[[str], None]


@dataclass
class Split:
    train: pd.Series
    valid: pd.Series
    test: pd.Series
    cutoff: pd.Timestamp
    valid_start: pd.Timestamp
    refit: pd.Series  # every row whose target is a day of the history: what the refit sees


def time_split(frame: pd.DataFrame, settings: Settings, schedule: Schedule | None = None) -> Split:
    """Train before the validation window, stop early on it, backtest on the periods after.

    No label of one part falls inside a later part: a row belongs to a window
    only when its target period does too. The model that serves is then refit on
    ``refit``: every row through the last period of the history, the held-out ones too.
    Windows count periods of the schedule's grain (default: the daily settings).
    """
    schedule = schedule or Schedule.of(settings, Calendar())
    days = schedule.calendar.days
    last = frame["target"].max()
    cutoff = last - pd.Timedelta(days=(schedule.test - 1) * days)
    valid_start = cutoff - pd.Timedelta(days=schedule.validation * days)
    test = frame["origin"] >= cutoff
    valid = (frame["origin"] >= valid_start) & (frame["target"] < cutoff)
    train = frame["target"] < valid_start
    for name, mask in (("training", train), ("validation", valid), ("backtest", test)):
        if not mask.any():
            unit = schedule.unit
            raise dataset.TrainingDataError(
                f"the {name} window is empty: the history is too short for "
                f"{schedule.test} backtest + {schedule.validation} validation {unit}s; "
                f"lower {' / '.join(list(schedule.params())[3:])} (DEMAND_…) or add history"
            )
    return Split(train, valid, test, cutoff, valid_start, refit=frame["target"] <= last)


def feature_contract(
    project: str,
    settings: Settings,
    training_set: dataset.TrainingSet,
    split: Split,
    task_type: str,
) -> FeatureContract:
    """What a model fitted on ``training_set`` needs to be served from entity keys.

    ``train_start``/``train_end`` are the served model's: the refit on ``split.refit``.
    The backtest model's range ends before the validation window (whose labels it
    saw through early stopping) and is recorded beside its path in ``extra``.
    """
    frame = training_set.frame
    schedule = training_set.schedule or Schedule.of(settings, Calendar())
    train_targets = frame.loc[split.train, "target"]
    refit_targets = frame.loc[split.refit, "target"]
    return FeatureContract(
        feast_project=project,
        feature_service=settings.feature_service,
        feature_views=training_set.feature_views,
        features=training_set.features,
        dtypes={
            f: "category" if f in training_set.categorical else "float"
            for f in training_set.features
        },
        categorical=training_set.categorical,
        entity_keys=["store_id", "product_id"],
        request_features=training_set.request_features,
        horizon=schedule.horizon,
        train_start=f"{refit_targets.min():%Y-%m-%d}",
        train_end=f"{refit_targets.max():%Y-%m-%d}",
        training_set_hash=training_set.digest,
        device=task_type,
        grain=schedule.calendar.grain.value,
        week_start=schedule.calendar.week_start,
        engine=Engine(settings.engine).value,
        extra={
            "backtest_start": f"{split.cutoff:%Y-%m-%d}",
            "backtest_end": f"{frame['target'].max():%Y-%m-%d}",
            # the backtest rows alone: later nights add rows after the window, never in it,
            # so the production gate can still prove it re-scores the same rows
            "backtest_hash": dataset.digest(frame[split.test], training_set.features),
            # never score the refit model on the backtest: it trained on those rows
            "backtest_model": BACKTEST_MODEL,
            "backtest_model_train_start": f"{train_targets.min():%Y-%m-%d}",
            "backtest_model_train_end": f"{train_targets.max():%Y-%m-%d}",
            "loss": settings.loss,
            **target_scale(settings, training_set, split, schedule),
            # pairs too new for the model: the baseline chosen on the validation window
            **short_history.choose(settings, frame, split.valid, schedule.calendar.grain.value)[0],
        },
    )


def target_scale(
    settings: Settings, training_set: dataset.TrainingSet, split: Split, schedule: Schedule
) -> dict[str, str]:
    """The contract's ``target_scale`` and its floor (from the backtest model's training
    rows, so the backtest judges a choice made without it); empty when not scaled."""
    name = demand_model.scale_feature(
        settings, training_set.features, schedule.calendar.grain.value
    )
    if name is None:
        return {}
    floor = demand_model.scale_floor(training_set.frame.loc[split.train, name])
    return {"target_scale": name, "target_scale_floor": repr(floor)}


# the furthest any baseline looks back from an origin, in periods: the 28-day moving
# average, the same week last year (52); a margin beyond it
BASELINE_LOOKBACK = 56


def baseline_history(history: pd.DataFrame, rows: pd.DataFrame, schedule: Schedule) -> pd.DataFrame:
    """The part of the sales history the baselines read for ``rows``: their pairs, from
    BASELINE_LOOKBACK periods before the first origin. The same forecasts as from the
    whole history, without sorting and rolling every series' years (36 M rows at M5)."""
    first = rows["origin"].min() - pd.Timedelta(days=BASELINE_LOOKBACK * schedule.calendar.days)
    pairs = pd.MultiIndex.from_frame(rows[["store_id", "product_id"]].astype(str).drop_duplicates())
    recent = history[history["date"] >= first]
    # plain strings: grouping on categorical keys would make a group of every store ×
    # every product, sold or not
    recent = recent.assign(
        store_id=recent["store_id"].astype(str), product_id=recent["product_id"].astype(str)
    )
    keys = pd.MultiIndex.from_frame(recent[["store_id", "product_id"]])
    return recent[keys.isin(pairs)].reset_index(drop=True)


def validation_wapes(
    model,
    x: pd.DataFrame,
    frame: pd.DataFrame,
    split: Split,
    history,
    schedule: Schedule,
    levels: np.ndarray | None = None,
    contract: FeatureContract | None = None,
) -> dict[str, float]:
    """WAPE of the model and of each baseline on the validation window: where options are
    chosen (the backtest only judges them). With ``contract``, the model's forecasts are
    its rule's (the short-history rows the baseline's)."""
    rows = frame[split.valid]
    valid = split.valid.to_numpy()
    predictions = {
        "model": demand_model.predict(
            model, x[split.valid], None if levels is None else levels[valid]
        )
    }
    if contract is not None:
        predictions["model"] = with_short_history(contract, predictions["model"], rows)
    recent = baseline_history(history, rows, schedule)
    for name, baseline in baselines.for_grain(schedule.calendar.grain.value).items():
        predictions[name] = baseline.fit(recent).predict(rows)
    return {p: scores(rows["label"], v)["wape"] for p, v in predictions.items()}


def with_short_history(
    contract: FeatureContract, units: np.ndarray, rows: pd.DataFrame
) -> np.ndarray:
    """The model's ``units`` for ``rows`` with the contract's short-history rule applied."""
    rule = contract.short_history_rule
    if rule is None:
        return units
    return contract.with_fallback(units, rows[rule.age_feature], rows[rule.feature])


def short_history_metrics(
    contract: FeatureContract, frame: pd.DataFrame, split: Split, wapes: dict[str, float]
) -> dict[str, float]:
    """How many backtest and validation rows the rule gave the baseline, and each
    candidate's validation WAPE on such rows (what chose it). Empty without a rule."""
    rule = contract.short_history_rule
    if rule is None:
        return {}
    ages = frame[rule.age_feature]
    short = pd.Series(contract.short_history(ages), index=frame.index)
    test_rows = int(split.test.sum())
    return {
        "short_history_rows": float((short & split.test).sum()),
        "short_history_share": float((short & split.test).sum() / test_rows) if test_rows else 0.0,
        "validation_short_history_rows": float((short & split.valid).sum()),
        **{f"validation_short_history_{n}_wape": v for n, v in wapes.items()},
    }


def short_history_backtest(
    contract: FeatureContract, test: pd.DataFrame, alone: np.ndarray, served: np.ndarray
) -> dict[str, float]:
    """On the backtest rows the rule gave the baseline: the model's WAPE alone and the
    baseline's (what the rule won or lost there). Empty without a rule or such rows."""
    rule = contract.short_history_rule
    if rule is None:
        return {}
    short = contract.short_history(test[rule.age_feature])
    if not short.any():
        return {}
    label = test["label"].to_numpy()[short]
    return {
        "short_history_model_wape": scores(label, alone[short])["wape"],
        "short_history_baseline_wape": scores(label, served[short])["wape"],
    }


def model_inputs(
    contract: FeatureContract, frame: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The model's input columns (``contract.model_frame``, numbers as float32), and
    ``frame`` without the feature columns only the model reads (keys, category, labels,
    origins, the target's scale, the short-history rule's columns and every other column
    stay).

    CatBoost keeps features as float32 whatever it is given, so the model, its
    predictions and the training-set hash (taken before) are the same; the training job
    holds one copy of the features at half the size instead of two (measured on 400k
    weekly rows: docs/benchmarks.md).
    """
    x = contract.model_frame(frame)
    numeric = [c for c in x.columns if c not in contract.categorical]
    x = x.astype(dict.fromkeys(numeric, np.float32), copy=False)
    kept = {"label", "store_id", "product_id", "category"}
    if (rule := contract.short_history_rule) is not None:
        kept |= {rule.feature, rule.age_feature}  # the fallback's baseline is read per row
    if contract.target_scale:
        kept.add(contract.target_scale)  # the quantiles' level per row (quantile_units)
    model_only = set(numeric) - kept
    return x, frame.drop(columns=[c for c in frame.columns if c in model_only])


@dataclass
class TrainResult:
    run_id: str
    model_name: str
    version: str | None
    task_type: str
    summary: pd.DataFrame  # predictor × metric, backtest overall
    floor_wape: float  # WAPE of a perfect forecast under Poisson noise; NaN: see floor_note
    by_category: pd.DataFrame
    digest: str
    rows: int
    seconds: dict[str, float]
    reused: bool = False  # the version already trained on this training set
    floor_note: str = ""  # why floor_wape is NaN (fractional units), else ""
    # WAPE on the validation window (where early stopping, and any choice, looks), per
    # predictor: the model and each baseline
    validation: dict[str, float] | None = None
    # the quantile forecasts' backtest numbers (wQL, coverage, lead time); None: point only
    quantiles: dict[str, float] | None = None


def run(
    settings: Settings,
    device: str = "auto",
    register: bool = True,
    progress: Progress = print,
    skip_if_registered: bool = False,
) -> TrainResult:
    """Train on the settings' training set; with ``skip_if_registered``, a training set
    some version was already trained on returns that version instead (the nightly cycle
    run twice on the same data registers nothing new)."""
    task_type = devices.resolve(device)  # before any work: `gpu` without one fails here
    progress(
        f"training on {task_type}"
        + (" (no GPU found)" if device == "auto" and task_type == "CPU" else "")
    )
    client = tracking.connect(settings)
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    store = open_store(settings)
    training_set = dataset.build(store, settings, progress)
    seconds["training set"] = time.perf_counter() - started
    memory.release()  # the sales history and the join's intermediates, before the fit
    schedule = training_set.schedule
    # the service the data set implies, unless the settings name one (training.periods)
    settings = settings.model_copy(
        update={"feature_service": dataset.chosen_service(settings, training_set)}
    )
    frame = training_set.frame
    split = time_split(frame, settings, schedule)
    progress(
        f"{len(frame):,} rows in {seconds['training set']:.0f}s"
        + (
            f" (a {training_set.sampling.fraction:.2%} sample)"
            if training_set.sampling and training_set.sampling.fraction < 1
            else ""
        )
        + f" · train "
        f"{split.train.sum():,} · validation {split.valid.sum():,} · backtest "
        f"{split.test.sum():,} (origins from {split.cutoff:%Y-%m-%d})"
    )

    if skip_if_registered:
        existing = tracking.version_trained_on(client, settings.model_name, training_set.digest)
        if existing is not None:
            progress(f"training set {training_set.digest} is v{existing.version}'s: not retrained")
            return TrainResult(
                run_id=existing.run_id,
                model_name=settings.model_name,
                version=str(existing.version),
                task_type=task_type,
                summary=pd.DataFrame(),
                floor_wape=float("nan"),
                by_category=pd.DataFrame(),
                digest=training_set.digest,
                rows=len(frame),
                seconds=seconds,
                reused=True,
            )

    contract = feature_contract(store.project, settings, training_set, split, task_type)
    # the divisor of each row's units when the target is scaled (None: raw units)
    levels = contract.levels(frame[contract.target_scale]) if contract.target_scale else None
    # the backtest rows' features as read (float64), for the reference profile monitoring
    # compares served vectors with: the model's float32 copy would shift values at bin edges
    reference_rows = frame.loc[split.test, contract.features].copy()
    x, frame = model_inputs(contract, frame)
    training_set.frame = frame  # the feature columns live in x alone from here
    memory.release()
    y = frame["label"]

    def part(mask: pd.Series) -> np.ndarray | None:
        return None if levels is None else levels[mask.to_numpy()]

    import mlflow

    params = demand_model.params(settings, task_type)
    grain_baselines = baselines.for_grain(schedule.calendar.grain.value)
    searched = None
    with mlflow.start_run(
        experiment_id=tracking.experiment_id(client, settings),
        run_name=f"{settings.model_name}-{training_set.digest[:8]}",
        tags={
            "feast.project": store.project,
            "feast.feature_service": settings.feature_service,
            "feast.feature_refs": ",".join(contract.features),
            "demand.device": task_type,
            "demand.engine": contract.engine,
        },
    ) as active:
        if settings.search_seconds > 0:
            # choose the parameters on the validation window before anything is logged:
            # the run's params are then the ones its models were fitted with
            searched = search.run(
                settings,
                params,
                (x[split.train], y[split.train], part(split.train)),
                (x[split.valid], y[split.valid], part(split.valid)),
                contract.categorical,
                progress,
                log_trial=tracking.log_trial,
            )
            params = searched.params
            seconds["search"] = searched.seconds
        mlflow.log_params(
            {
                **params,
                **schedule.params(),
                # which (series, origin) pairs were kept: a rebuild needs the same
                **(training_set.sampling.params() if training_set.sampling else {}),
                "grain": schedule.calendar.grain.value,
                "training_rows": int(split.train.sum()),
                "refit_rows": int(split.refit.sum()),
                "device": task_type,
                "engine": contract.engine,
                # the names of the baselines' metrics, which the gates compare with
                "baselines": ",".join(grain_baselines),
                "target_scale": contract.target_scale or "none",
                # pairs too new for the model and the baseline forecasting them (0: off)
                "min_history_periods": contract.extra.get("short_history_min_periods", 0),
                "short_history_baseline": contract.extra.get("short_history_baseline", "none"),
            }
        )
        tracking.log_dataset(
            rows_of(frame, split.refit), contract, "demand_training_set", settings.feature_dir
        )

        started = time.perf_counter()
        if searched is not None:  # the best trial's model: fitted on these rows, these params
            model = searched.model
            tracking.log_tables({"search_trials": searched.trials})
        else:
            model = demand_model.fit(
                x[split.train],
                y[split.train],
                x[split.valid],
                y[split.valid],
                contract.categorical,
                params,
                train_levels=part(split.train),
                valid_levels=part(split.valid),
            )
        seconds["fit"] = time.perf_counter() - started + seconds.get("search", 0.0)
        progress(f"fitted {model.tree_count_} trees in {seconds['fit']:.0f}s")

        test = frame[split.test].assign(category=frame.loc[split.test, "category"].fillna("?"))
        history = baseline_history(training_set.history, test, schedule)
        alone = demand_model.predict(model, x[split.test], part(split.test))
        predictions = {"model": with_short_history(contract, alone, test)}
        for name, baseline in grain_baselines.items():
            predictions[name] = baseline.fit(history).predict(test)
        summary = pd.DataFrame({p: scores(test["label"], v) for p, v in predictions.items()}).T
        validation = validation_wapes(
            model, x, frame, split, training_set.history, schedule, levels, contract
        )
        by_horizon = breakdown(test, predictions, "horizon")
        by_category = breakdown(test, predictions, "category")

        metrics = {metric_key(p, m): float(summary.loc[p, m]) for p in predictions for m in METRICS}
        for _, r in by_horizon.iterrows():
            metrics.update(
                {metric_key(r["predictor"], m, f"h{r['horizon']}"): r[m] for m in METRICS}
            )
        for _, r in by_category.iterrows():
            metrics[metric_key(r["predictor"], "wape", r["category"])] = r["wape"]
        metrics.update({f"validation_{metric_key(p, 'wape')}": v for p, v in validation.items()})
        metrics["best_iteration"] = float(model.get_best_iteration() or 0)
        fallback = short_history_metrics(
            contract,
            frame,
            split,
            short_history.choose(settings, frame, split.valid, schedule.calendar.grain.value)[1],
        )
        metrics.update(fallback)
        metrics.update(short_history_backtest(contract, test, alone, predictions["model"]))
        if fallback:
            rule = contract.short_history_rule
            progress(
                f"{int(fallback['short_history_rows']):,} of {split.test.sum():,} backtest rows "
                f"fewer than {rule.min_periods} {schedule.unit}s past their first sale: "
                f"forecast by {rule.baseline} (DEMAND_MIN_HISTORY_PERIODS)"
            )
        metrics["poisson_floor_wape"] = poisson_floor_wape(test["label"], predictions["model"])
        note = floor_note(test["label"])
        if note:  # the metric is NaN and not logged: the run says why
            mlflow.set_tag("demand.poisson_floor", note)
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if pd.notna(v)})
        # what nightly monitoring compares the served features and forecasts with
        profile.log_reference(
            store,
            contract,
            dataset.built_lineage(settings).sales_features_table,
            reference_rows,
            predictions["model"],
        )
        tracking.log_tables(
            {
                "summary": summary.reset_index(names="predictor"),
                "by_horizon": by_horizon,
                "by_category": by_category,
            }
        )

        # quantile forecasts beside the point model (DEMAND_QUANTILES; None when empty)
        started = time.perf_counter()
        intervals = quantiles.run(
            settings,
            contract,
            x,
            frame,
            split,
            lambda rows: baseline_history(training_set.history, rows, schedule),
            schedule,
            levels,
            progress,
        )
        if intervals is not None:
            contract = intervals.contract(contract)
            seconds["quantiles"] = time.perf_counter() - started
            seconds.update(intervals.fit_seconds)  # part of it: its CatBoost fits

        # the backtest chose the trees; the model that serves learns from every closed day
        del test, history  # the backtest's rows (the predictions stay, for the plots)
        memory.release()  # the backtest fit's pools, before the refit builds its own
        started = time.perf_counter()
        served = demand_model.refit(
            rows_of(x, split.refit),
            y[split.refit],
            contract.categorical,
            params,
            model.tree_count_,
            levels=part(split.refit),
        )
        seconds["refit"] = time.perf_counter() - started
        progress(
            f"refit {served.tree_count_} trees on {split.refit.sum():,} rows through "
            f"{contract.train_end} in {seconds['refit']:.0f}s"
        )
        mlflow.log_metric("refit_seconds", seconds["refit"])

        importance = pd.Series(served.get_feature_importance(), index=contract.features)
        test = frame[split.test].assign(category=frame.loc[split.test, "category"].fillna("?"))
        tracking.log_plots(test, predictions, by_horizon, importance, schedule.unit)
        # the input example in the contract's own dtypes (float64), as serving sends them
        example = contract.model_frame(x[split.test].head(5))
        info = tracking.log_model(served, example, contract, backtest_model=model)
        if intervals is not None:
            intervals.log_models(info, example)
        # a pyfunc of a scaled model predicts ratios, not units: say so where it is loaded
        mlflow.set_tag("demand.model_output", contract.output)

        version = None
        if register:
            registered = tracking.register(
                client,
                settings,
                info,
                active.info.run_id,
                contract,
                description=f"WAPE {summary.loc['model', 'wape']:.3f} on the backtest from "
                f"{split.cutoff:%Y-%m-%d} ("
                + ", ".join(f"{b} {summary.loc[b, 'wape']:.3f}" for b in grain_baselines)
                + f"); {model.tree_count_} trees "
                f"refit on targets through {contract.train_end}; trained on {task_type}; "
                f"raw output: {contract.output}",
            )
            version = registered.version
        run_id = active.info.run_id

    return TrainResult(
        run_id=run_id,
        model_name=settings.model_name,
        version=version,
        task_type=task_type,
        summary=summary,
        floor_wape=metrics["poisson_floor_wape"],
        floor_note=note,
        by_category=by_category,
        digest=training_set.digest,
        rows=len(frame),
        seconds=seconds,
        validation=validation,
        quantiles=None if intervals is None else intervals.metrics,
    )
