"""Reading the registry: which versions exist, and where each is in its lifecycle.

A stage is stored three ways, each for its reader:

- the aliases ``@staging`` and ``@production`` (what MLflow 3 supports, what serving
  loads: ``models:/demand_forecast@production``) are the truth for those two stages;
- the legacy stage field (deprecated, still shown by the MLflow UI) mirrors them;
- the tag ``demand.stage`` names the stage too, and is the only record of ``archived``
  (an alias would be the wrong tool: many versions are archived at once). A version
  holding an alias is in that alias's stage whatever its tag says, so a move can mark
  the outgoing production version archived first and hand the alias over second.

A move in progress is journaled on the registered model (``demand.move_in_progress``)
until every record of it is written; see ``lifecycle.py``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from demand import tracking
from demand.console import UserError
from demand.contract import FeatureContract, IncompleteContract
from demand.settings import Settings
from registry.gates import LEGACY_BASELINES, Backtest, Intervals, Stage

ALIAS = {Stage.staging: "staging", Stage.production: "production"}
LEGACY = {
    Stage.candidate: "None",
    Stage.staging: "Staging",
    Stage.production: "Production",
    Stage.archived: "Archived",
}
STAGE_TAG = "demand.stage"
# versions that held production, oldest first: what rollback walks back through
LINEAGE_TAG = "demand.production_lineage"
# the moves of a change not yet fully written (JSON), for whoever takes the lock next
JOURNAL_TAG = "demand.move_in_progress"


class RegistryError(UserError):
    """A problem the user can fix (unknown version, refused move…); the message says how."""


def connect(settings: Settings):
    """An MlflowClient on the settings' registry, failing fast when it does not answer."""
    return tracking.connect(settings)


def registered_model(client, name: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException:
        raise RegistryError(
            f"no registered model {name!r} in the registry; train one with `demand train` "
            "(or set DEMAND_MODEL_NAME)"
        ) from None


def model_version(client, name: str, version: str):
    from mlflow.exceptions import MlflowException

    registered_model(client, name)
    if not str(version).isdigit():
        raise RegistryError(f"version {version!r}: expected a version number, e.g. 3")
    try:
        return client.get_model_version(name, str(version))
    except MlflowException:
        known = ", ".join(number(v) for v in versions(client, name)) or "none"
        raise RegistryError(
            f"{name} has no version {version} (versions: {known}); see `demand models list`"
        ) from None


def versions(client, name: str) -> list:
    found = client.search_model_versions(f"name = '{name}'")
    return sorted(found, key=lambda v: int(v.version))


def number(version) -> str:
    """A version's number as text (stores disagree: the SQL store says int, REST says str)."""
    return str(version.version)


def aliases(client, name: str) -> dict[str, str]:
    """Alias → version number, as the registered model holds them now."""
    return {a: str(v) for a, v in (registered_model(client, name).aliases or {}).items()}


def alias_stage(num: str, held: dict[str, str]) -> Stage | None:
    """The stage version ``num``'s aliases put it in, if it holds one."""
    # production first: a version promoted from staging holds both aliases for one write
    for stage in (Stage.production, Stage.staging):
        if held.get(ALIAS[stage]) == num:
            return stage
    return None


def stage_of(version, held: dict[str, str]) -> Stage:
    seat = alias_stage(number(version), held)
    if seat is not None:
        return seat
    if version.tags.get(STAGE_TAG) == Stage.archived:
        return Stage.archived
    return Stage.candidate


def holder(held: dict[str, str], stage: Stage) -> str | None:
    """The version whose stage is ``stage`` (staging or production), if any.

    Not simply the alias's holder: a version holding @production as well as @staging is
    in production, and must not be taken for the staging holder that a promotion to
    staging displaces (sending it back to candidate would delete @production).
    """
    num = held.get(ALIAS[stage])
    return num if num is not None and alias_stage(num, held) == stage else None


def doubled(held: dict[str, str]) -> dict[str, list[str]]:
    """Versions holding more than one stage alias → those aliases (none, when consistent)."""
    seats: dict[str, list[str]] = {}
    for alias in ALIAS.values():
        if alias in held:
            seats.setdefault(held[alias], []).append(alias)
    return {num: found for num, found in seats.items() if len(found) > 1}


def lineage(client, name: str) -> list[str]:
    raw = registered_model(client, name).tags.get(LINEAGE_TAG)
    return json.loads(raw) if raw else []


def journal(client, name: str) -> dict | None:
    """The change in progress on ``name`` (interrupted, or being written now), if any."""
    raw = registered_model(client, name).tags.get(JOURNAL_TAG)
    return json.loads(raw) if raw else None


def contract_of(version) -> FeatureContract:
    try:
        return FeatureContract.from_tags(version.tags)
    except IncompleteContract as error:
        raise RegistryError(
            f"{version.name} version {number(version)} has no feature contract "
            f"(missing {', '.join(error.missing[:4])}…); it cannot be served. "
            "Retrain it with `demand train`"
        ) from None


@dataclass(frozen=True)
class RunFacts:
    backtest: Backtest
    params: dict[str, str]
    status: str


def run_facts(client, version) -> RunFacts:
    """The training run's backtest metrics, row parameters and status (NaN when absent)."""
    from mlflow.exceptions import MlflowException

    if not version.run_id:
        return RunFacts(Backtest(math.nan), {}, "UNKNOWN")
    try:
        run = client.get_run(version.run_id)
    except MlflowException:
        return RunFacts(Backtest(math.nan), {}, "UNKNOWN")
    metrics, params = run.data.metrics, dict(run.data.params)
    # the run names its baselines (``moving_average_4w``…); older runs logged the legacy names
    names = params["baselines"].split(",") if params.get("baselines") else LEGACY_BASELINES
    return RunFacts(
        Backtest(
            wape=metrics.get("wape", math.nan),
            baselines={n: metrics.get(f"{n}_wape", math.nan) for n in names},
            intervals=intervals_of(metrics, params),
        ),
        params,
        run.info.status,
    )


def intervals_of(metrics: dict[str, float], params: dict[str, str]) -> Intervals:
    """The run's quantile backtest (training/quantiles.py); no levels for a run without."""
    from demand.quantiles import parse_levels

    levels = parse_levels(params.get("quantiles", ""))
    if not levels:
        return Intervals()
    horizons = {
        int(key.rsplit("_h", 1)[1]): value
        for key, value in metrics.items()
        if key.startswith("interval_coverage_h") and key.rsplit("_h", 1)[1].isdigit()
    }
    return Intervals(
        levels=levels,
        coverage=metrics.get("interval_coverage", math.nan),
        wql=metrics.get("wql", math.nan),
        baseline_wql=metrics.get("baseline_interval_wql", math.nan),
        coverage_by_horizon=horizons,
    )


def interrupted(entry: dict) -> str:
    """One line naming the journaled change ``entry``."""
    first = entry["moves"][0]
    return (
        f"a move of v{first['version']} to {first['to_stage']} "
        f"({first['at']} by {first['by']}) was interrupted"
    )


def disagreements(client, name: str) -> list[str]:
    """Everything that says the registry is not whole: a change left journaled, a version
    holding two aliases, a legacy stage field or stage tag that disagrees with the aliases."""
    held = aliases(client, name)
    problems = []
    entry = journal(client, name)
    if entry is not None:
        problems.append(interrupted(entry))
    for num, seats in doubled(held).items():
        problems.append(f"v{num} holds both " + " and ".join(f"@{a}" for a in seats))
    for version in versions(client, name):
        stage = stage_of(version, held)
        if version.current_stage != LEGACY[stage]:
            problems.append(
                f"v{number(version)}: stage {stage} but legacy stage {version.current_stage}"
            )
        tagged = version.tags.get(STAGE_TAG, Stage.candidate)
        if tagged != stage:
            problems.append(f"v{number(version)}: stage {stage} but tag {STAGE_TAG}={tagged}")
    return problems
