"""Moving versions through candidate → staging → production → archived.

The only module that changes the registry. Every move runs under the registry
lock (see ``lock.py``), re-reads the state it decides on inside that lock, and
writes in the order serving cares about: the alias first (what serving loads),
then the legacy stage field and the stage tag, then the audit trail.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

from demand.settings import Settings
from registry import audit, scoring
from registry.gates import GateResult, Rescore, Stage, production_gate, staging_gate
from registry.lock import registry_lock
from registry.state import (
    ALIAS,
    LEGACY,
    LINEAGE_TAG,
    STAGE_TAG,
    RegistryError,
    aliases,
    connect,
    contract_of,
    holder,
    lineage,
    model_version,
    number,
    run_facts,
    stage_of,
)

Progress = Callable[[str], None]
TARGETS = (Stage.staging, Stage.production)
LINEAGE_KEPT = 50  # rollback depth; a tag value has a size limit


class GateRefused(RegistryError):
    def __init__(self, version: str, result: GateResult):
        self.result = result
        super().__init__(
            f"v{version} refused for {result.target}: {result.explain()}. "
            "Fix the model, or override with --force --reason '…'"
        )


@dataclass
class Outcome:
    version: str
    moves: list[audit.Move] = field(default_factory=list)
    gates: GateResult | None = None


def _quiet_stage(client, name: str, version: str, stage: Stage) -> None:
    """Mirror ``stage`` into MLflow's legacy stage field, which the MLflow UI still shows."""
    with warnings.catch_warnings():
        # deprecated since MLflow 2.9 in favour of aliases; kept while MLflow has it
        warnings.simplefilter("ignore", FutureWarning)
        client.transition_model_version_stage(
            name, version, LEGACY[stage], archive_existing_versions=False
        )


def _move(
    client, settings: Settings, version, before: Stage, to: Stage, reason: str, **audit_fields
) -> audit.Move:
    """Put ``version`` in stage ``to``: alias, legacy stage, stage tag, audit trail."""
    name, num = version.name, number(version)
    held = aliases(client, name)
    for stage, alias in ALIAS.items():
        if stage == to:
            # setting an alias moves it: the seat changes hands in one write
            client.set_registered_model_alias(name, alias, num)
        elif held.get(alias) == num:
            client.delete_registered_model_alias(name, alias)
    _quiet_stage(client, name, num, to)
    client.set_model_version_tag(name, num, STAGE_TAG, to.value)
    move = audit.new_move(settings, num, before, to, reason, **audit_fields)
    audit.record(client, name, move, version.tags)
    return move


def _check_movable(client, version, to: Stage) -> Stage:
    held = aliases(client, version.name)
    stage = stage_of(version, held)
    if version.status != "READY":
        raise RegistryError(
            f"v{number(version)} is not a usable version (registration {version.status})"
        )
    if stage == Stage.archived:
        raise RegistryError(
            f"v{number(version)} is archived; archived versions are not promoted again "
            "(`demand models rollback` restores the previous production version)"
        )
    if stage == to:
        raise RegistryError(f"v{number(version)} is already in {to}")
    if to == Stage.staging and stage == Stage.production:
        raise RegistryError(f"v{number(version)} is in production; it does not go back to staging")
    contract_of(version)  # no contract: never servable, not even with --force
    return stage


def promote(
    settings: Settings,
    version: str,
    to: Stage,
    *,
    force: bool = False,
    reason: str | None = None,
    progress: Progress = lambda _: None,
) -> Outcome:
    """Move ``version`` to staging or production if its gates pass (or ``force`` with a reason)."""
    to = Stage(to)
    if to not in TARGETS:
        raise RegistryError(f"--to {to}: expected staging or production")
    if force and not (reason and reason.strip()):
        raise RegistryError("--force needs --reason '…': the audit trail records why")
    client = connect(settings)
    name = settings.model_name
    challenger = model_version(client, name, version)
    _check_movable(client, challenger, to)
    contract = contract_of(challenger)
    facts = run_facts(client, challenger)
    if facts.status == "FAILED":
        raise RegistryError(f"v{version}: its training run {challenger.run_id} FAILED")
    rows, challenger_wape, problem = None, float("nan"), ""
    if to == Stage.production:
        # the slow part (Feast retrieval, loading the model) before taking the lock
        try:
            rows = scoring.backtest_rows(settings, contract, facts.params, progress)
            challenger_wape = scoring.wape(name, number(challenger), contract, rows, progress)
        except scoring.ScoringProblem as error:
            problem = str(error)

    with registry_lock(settings):
        challenger = model_version(client, name, version)  # as it is now, under the lock
        before = _check_movable(client, challenger, to)
        held = aliases(client, name)
        champion_number = holder(held, Stage.production)
        if to == Stage.staging:
            result = staging_gate(facts.backtest, contract.problems())
        else:
            rescore = _rescore(
                client, name, champion_number, rows, challenger_wape, problem, challenger
            )
            result = production_gate(
                facts.backtest, contract.problems(), rescore, settings.promotion_tolerance
            )
        if not result.passed and not force:
            raise GateRefused(version, result)
        outcome = Outcome(number(challenger), gates=result)
        why = reason.strip() if reason and reason.strip() else result.explain()
        outcome.moves.append(
            _move(client, settings, challenger, before, to, why, gates=result, forced=force)
        )
        displaced = holder(held, to)
        if displaced:
            # one seat per stage: staging's holder goes back to candidate, production's
            # is archived (and stays in the lineage, for rollback)
            fate = Stage.archived if to == Stage.production else Stage.candidate
            previous = model_version(client, name, displaced)
            outcome.moves.append(
                _move(client, settings, previous, to, fate, f"replaced by v{version}: {why}")
            )
        if to == Stage.production:
            _set_lineage(client, name, [*lineage(client, name), number(challenger)])
    return outcome


def _rescore(client, name, champion_number, rows, challenger_wape, problem, challenger) -> Rescore:
    if rows is None:
        return Rescore(challenger_wape, None, champion_number, 0, "?", problem=problem)
    if champion_number is None:
        return Rescore(challenger_wape, None, None, rows.rows, rows.window)
    champion = model_version(client, name, champion_number)
    try:
        champion_contract = contract_of(champion)
        scored = scoring.unseen_by(champion_contract, rows)
        if scored is not rows:  # fewer rows: the challenger is scored on them too
            challenger_wape = scoring.wape(
                name, number(challenger), contract_of(challenger), scored, lambda _: None
            )
        champion_wape = scoring.wape(
            name, champion_number, champion_contract, scored, lambda _: None
        )
    except (scoring.ScoringProblem, RegistryError, KeyError) as error:
        return Rescore(
            challenger_wape,
            None,
            champion_number,
            rows.rows,
            rows.window,
            problem=f"production v{champion_number} cannot be re-scored: {error}",
        )
    window = f"{scored.window}, {scored.note}" if scored.note else scored.window
    return Rescore(challenger_wape, champion_wape, champion_number, scored.rows, window)


def _set_lineage(client, name: str, versions: list[str]) -> None:
    client.set_registered_model_tag(name, LINEAGE_TAG, json.dumps(versions[-LINEAGE_KEPT:]))


def rollback(settings: Settings, reason: str, progress: Progress = lambda _: None) -> Outcome:
    """Put the previous production version back (no gates) and archive the current one."""
    if not (reason and reason.strip()):
        raise RegistryError("rollback needs --reason '…': the audit trail records why")
    client = connect(settings)
    name = settings.model_name
    with registry_lock(settings):
        current = holder(aliases(client, name), Stage.production)
        if current is None:
            raise RegistryError(f"{name} has no production version to roll back")
        earlier = [v for v in lineage(client, name) if v != current]
        if not earlier:
            raise RegistryError(
                f"v{current} is the first production version of {name}: nothing to roll back to"
            )
        previous = model_version(client, name, earlier[-1])
        leaving = model_version(client, name, current)
        was = stage_of(previous, aliases(client, name))
        outcome = Outcome(number(previous))
        outcome.moves.append(
            _move(
                client,
                settings,
                leaving,
                Stage.production,
                Stage.archived,
                f"rolled back: {reason}",
            )
        )
        outcome.moves.append(
            _move(client, settings, previous, was, Stage.production, f"rollback: {reason}")
        )
        _set_lineage(client, name, earlier)
        progress(f"v{number(previous)} is back in production; v{current} archived")
    return outcome


def archive(settings: Settings, version: str, reason: str | None = None) -> Outcome:
    """Archive a candidate or staging version (production leaves by promotion or rollback)."""
    client = connect(settings)
    name = settings.model_name
    with registry_lock(settings):
        found = model_version(client, name, version)
        stage = stage_of(found, aliases(client, name))
        if stage == Stage.archived:
            raise RegistryError(f"v{version} is already archived")
        if stage == Stage.production:
            raise RegistryError(
                f"v{version} is in production; promote another version or "
                "`demand models rollback --reason '…'` instead of archiving it"
            )
        move = _move(client, settings, found, stage, Stage.archived, reason or "archived by hand")
    return Outcome(number(found), [move])


def promote_if_passing(
    settings: Settings, version: str, progress: Progress = lambda _: None
) -> Outcome | GateResult:
    """What the demo does after training: staging, then production, each only if its gate passes.

    Returns the outcome of the last move, or the gate result that stopped it.
    """
    outcome = None
    for to in TARGETS:
        try:
            outcome = promote(settings, version, to, progress=progress)
        except GateRefused as refused:
            progress(f"v{version} stays out of {to}: {refused.result.explain()}")
            return refused.result
        progress(f"v{version} → {to}")
    assert outcome is not None
    return outcome
