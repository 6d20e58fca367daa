"""An optional, time-budgeted hyperparameter search on the validation window (Optuna).

Off by default (``DEMAND_SEARCH_SECONDS=0``). When on, each trial fits the backtest model's
training rows with early stopping on the validation window, as the plain fit does, and is
judged by its WAPE there in units (the scaled target multiplied back): the backtest window
never takes part in a choice. Each trial is a nested MLflow run under the training run, with
its parameters, trees, validation WAPE and seconds. The best trial's model is the backtest
model; its parameters are the ones the refit uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from demand.console import UserError
from demand.settings import Settings
from training import model as demand_model
from training.metrics import scores

# what a trial may change; the rest of the parameters (loss, pinned CPU/GPU defaults,
# seed, early stopping) stay as training sets them
SPACE = {
    "depth": (4, 10),
    "learning_rate": (0.02, 0.3),
    "l2_leaf_reg": (1.0, 30.0),
    "random_strength": (0.1, 10.0),
}


@dataclass
class SearchResult:
    params: dict  # the chosen parameters, the fixed ones included
    model: object  # the best trial's fitted model (the backtest model)
    trials: pd.DataFrame  # number, parameters, trees, validation WAPE, seconds
    seconds: float


def _optuna():
    try:
        import optuna
    except ImportError:
        raise UserError(
            "DEMAND_SEARCH_SECONDS is set but optuna is not installed: pip install 'optuna>=5' "
            "(or set DEMAND_SEARCH_SECONDS=0 to train with the default parameters)"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def run(
    settings: Settings,
    params: dict,
    train: tuple[pd.DataFrame, pd.Series, np.ndarray | None],
    valid: tuple[pd.DataFrame, pd.Series, np.ndarray | None],
    categorical: list[str],
    progress: Callable[[str], None] = print,
    log_trial: Callable[[int, dict, dict], None] | None = None,
) -> SearchResult:
    """Trials for at most ``settings.search_seconds`` (and ``settings.search_trials``), the
    default parameters first so the search never ends worse than not searching."""
    optuna = _optuna()
    (train_x, train_y, train_levels), (valid_x, valid_y, valid_levels) = train, valid
    best: dict = {}

    def objective(trial) -> float:
        chosen = {"depth": trial.suggest_int("depth", *SPACE["depth"])}
        for name in ("learning_rate", "l2_leaf_reg", "random_strength"):
            chosen[name] = trial.suggest_float(name, *SPACE[name], log=True)
        trial_params = {**params, **chosen}
        started = time.perf_counter()
        model = demand_model.fit(
            train_x,
            train_y,
            valid_x,
            valid_y,
            categorical,
            trial_params,
            verbose=0,
            train_levels=train_levels,
            valid_levels=valid_levels,
        )
        seconds = time.perf_counter() - started
        wape = scores(valid_y, demand_model.predict(model, valid_x, valid_levels))["wape"]
        trial.set_user_attr("trees", int(model.tree_count_))
        trial.set_user_attr("seconds", seconds)
        if not best or wape < best["wape"]:
            best.update(wape=wape, model=model, params=trial_params)
        progress(
            f"trial {trial.number}: depth {chosen['depth']}, learning rate "
            f"{chosen['learning_rate']:.3f}, l2 {chosen['l2_leaf_reg']:.1f}, random strength "
            f"{chosen['random_strength']:.2f} → {model.tree_count_} trees, validation WAPE "
            f"{wape:.4f} in {seconds:.0f}s"
        )
        if log_trial is not None:
            log_trial(
                trial.number,
                chosen,
                {"validation_wape": wape, "trees": model.tree_count_, "seconds": seconds},
            )
        return wape

    study = optuna.create_study(
        direction="minimize", sampler=optuna.samplers.TPESampler(seed=settings.seed)
    )
    # the defaults are trial 0: a short budget still compares against them
    study.enqueue_trial(
        {
            "depth": params["depth"],
            "learning_rate": params["learning_rate"],
            "l2_leaf_reg": params.get("l2_leaf_reg", 3.0),
            "random_strength": params.get("random_strength", 1.0),
        }
    )
    started = time.perf_counter()
    study.optimize(objective, n_trials=settings.search_trials, timeout=settings.search_seconds)
    seconds = time.perf_counter() - started
    trials = study.trials_dataframe(attrs=("number", "params", "value", "user_attrs", "state"))
    progress(
        f"search: {len(study.trials)} trials in {seconds:.0f}s, best validation WAPE "
        f"{best['wape']:.4f} (trial {study.best_trial.number})"
    )
    return SearchResult(best["params"], best["model"], trials, seconds)
