"""Moving versions through candidate → staging → production → archived.

The only module that changes the registry. Every move runs under the registry
lock (see ``lock.py``) and re-reads the state it decides on inside that lock.

MLflow has no transaction across the several writes of one change (promoting v3
over v2 touches both versions' aliases, stage tags, legacy stages, audit trails
and the lineage), so a change is written in an order where a crash between any
two writes leaves a production holder and a record of what was meant:

1. the journal: the change's moves (the audit records to be) and the lineage
   after it, as one tag on the registered model;
2. versions leaving for *archived* get the archived stage tag; while one still
   holds an alias the alias wins (``state.stage_of``), so this changes nothing yet;
3. the switch, one write that makes the change true: setting the alias hands
   the seat over (``@production`` is never absent, a rollback included); then
   aliases the moved versions must no longer hold are deleted;
4. roll forward from the journal: audit records, lineage, then the mirrors
   (stage tag, legacy stage field); last, the journal is deleted.

The next move (or ``demand models recover``) finds a journal left by a crash and
finishes it: if the switch happened, the aliases the moved versions left are
deleted (a version never keeps two) and the missing records are written from the
journal (nothing twice); if not, the mirrors are put back to what the aliases say.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from demand.settings import Settings
from registry import audit, scoring
from registry.gates import (
    Check,
    GateResult,
    Rescore,
    Stage,
    no_worse_than_champion_live,
    production_gate,
    staging_gate,
)
from registry.lock import check_reachable, registry_lock
from registry.state import (
    ALIAS,
    JOURNAL_TAG,
    LEGACY,
    LINEAGE_TAG,
    STAGE_TAG,
    RegistryError,
    aliases,
    connect,
    contract_of,
    doubled,
    holder,
    interrupted,
    journal,
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


def _begin(client, name: str, moves: list[audit.Move], lineage_after: list[str] | None):
    """Write a change in the crash-safe order (module docstring); moves[0] is its primary."""
    entry = {"moves": [asdict(m) for m in moves], "lineage": lineage_after}
    client.set_registered_model_tag(name, JOURNAL_TAG, json.dumps(entry, sort_keys=True))
    for move in moves:
        if move.to_stage == Stage.archived:
            client.set_model_version_tag(name, move.version, STAGE_TAG, Stage.archived.value)
    primary = moves[0]
    if primary.to_stage in ALIAS:
        # the switch: setting an alias moves it, so the seat changes hands in one write
        client.set_registered_model_alias(name, ALIAS[Stage(primary.to_stage)], primary.version)
    # (an archive has no switch: deleting the alias it leaves is what makes it happen)
    _drop_aliases(client, name, moves)
    _finish(client, name, entry)


def _drop_aliases(client, name: str, moves: list[audit.Move]) -> bool:
    """Delete the aliases the moved versions must no longer hold; whether any was."""
    held = aliases(client, name)
    dropped = False
    for move in moves:
        for stage, alias in ALIAS.items():
            if held.get(alias) == move.version and stage != move.to_stage:
                client.delete_registered_model_alias(name, alias)
                dropped = True
    return dropped


def _finish(client, name: str, entry: dict) -> bool:
    """Roll a journaled change forward if its switch happened; mirrors follow the aliases.

    Idempotent: run again after a crash inside it, it writes only what is missing.
    Returns whether the change happened.
    """
    moves = [audit.Move(**m) for m in entry["moves"]]
    held = aliases(client, name)
    primary = model_version(client, name, moves[0].version)
    happened = stage_of(primary, held) == moves[0].to_stage
    if happened:
        # a crash after the switch may have left a moved version holding the alias of the
        # stage it left (v2 promoted out of staging, still @staging): the change is only
        # finished when it is gone, or the next promotion to staging would displace v2
        if _drop_aliases(client, name, moves):
            held = aliases(client, name)
        for move in moves:
            version = model_version(client, name, move.version)  # its tags as they are now
            if move not in audit.history(version.tags):
                audit.record(client, name, move, version.tags)
        if entry["lineage"] is not None and lineage(client, name) != entry["lineage"]:
            _set_lineage(client, name, entry["lineage"])
    for num in dict.fromkeys(m.version for m in moves):
        _mirror(client, name, num, held)
    client.delete_registered_model_tag(name, JOURNAL_TAG)
    return happened


def _mirror(client, name: str, num: str, held: dict[str, str]) -> None:
    """Make version ``num``'s stage tag and legacy stage field say what the aliases say."""
    version = model_version(client, name, num)
    stage = stage_of(version, held)
    if version.tags.get(STAGE_TAG) != stage.value:
        client.set_model_version_tag(name, num, STAGE_TAG, stage.value)
    if version.current_stage != LEGACY[stage]:
        _quiet_stage(client, name, num, stage)


def _recover(client, name: str, progress: Progress) -> bool:
    """Finish a change a crashed process left journaled, and drop a second alias an
    earlier recovery left (callers hold the lock); whether there was anything to do."""
    entry = journal(client, name)
    if entry is not None:
        what = interrupted(entry).removesuffix(" was interrupted")
        if _finish(client, name, entry):
            progress(f"{what} had happened; its records are now complete")
        else:
            progress(f"{what} had not happened; its stage records are put back")
    # without a journal, two aliases on one version can only be the leftover of a recovery
    # before this one finished alias changes: production wins (as in stage_of), the
    # version was promoted out of staging and its @staging is stale
    held = aliases(client, name)
    stale = doubled(held)
    for num, seats in stale.items():
        for alias in seats:
            if alias != ALIAS[Stage.production]:
                client.delete_registered_model_alias(name, alias)
        held = aliases(client, name)
        _mirror(client, name, num, held)
        progress(f"v{num} held @production and @staging; the stale @staging is removed")
    return entry is not None or bool(stale)


def recover(settings: Settings, progress: Progress = lambda _: None) -> bool:
    """Finish a change a crashed process left half-recorded; False when there was none."""
    client = connect(settings)
    with registry_lock(settings):
        return _recover(client, settings.model_name, progress)


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
    check_reachable(settings)  # a lock that cannot be taken fails now, not after scoring
    rows, challenger_forecast, problem = None, None, ""
    live = _live_evidence(settings, client, name, challenger, to, progress)
    if to == Stage.production and live is None:
        # the slow part (Feast retrieval, loading the model) before taking the lock
        try:
            rows = scoring.backtest_rows(settings, contract, facts.params, progress)
            challenger_forecast = scoring.forecast(
                name, number(challenger), contract, rows, progress
            )
        except scoring.ScoringProblem as error:
            problem = str(error)

    with registry_lock(settings):
        _recover(client, name, progress)
        challenger = model_version(client, name, version)  # as it is now, under the lock
        before = _check_movable(client, challenger, to)
        held = aliases(client, name)
        champion_number = holder(held, Stage.production)
        if to == Stage.staging:
            result = staging_gate(
                facts.backtest, contract.problems(), settings.gate_coverage_tolerance
            )
        elif live is not None and live.champion_version == champion_number:
            # judged on the same live targets instead of a backtest window
            result = GateResult(
                Stage.production,
                (
                    *staging_gate(
                        facts.backtest, contract.problems(), settings.gate_coverage_tolerance
                    ).checks,
                    no_worse_than_champion_live(live, settings),
                ),
            )
        elif live is not None:
            moved = f"production moved to v{champion_number} while v{version} was judged"
            result = GateResult(
                Stage.production,
                (Check("no worse than production", False, f"{moved}; run the promotion again"),),
            )
        else:
            rescore = _rescore(
                settings, client, champion_number, rows, challenger_forecast, problem, challenger
            )
            result = production_gate(facts.backtest, contract.problems(), rescore, settings)
        if not result.passed and not force:
            raise GateRefused(version, result)
        num = number(challenger)
        why = reason.strip() if reason and reason.strip() else result.explain()
        moves = [audit.new_move(settings, num, before, to, why, gates=result, forced=force)]
        displaced = holder(held, to)
        if displaced:
            # one seat per stage: staging's holder goes back to candidate, production's
            # is archived (and stays in the lineage, for rollback)
            fate = Stage.archived if to == Stage.production else Stage.candidate
            moves.append(
                audit.new_move(settings, displaced, to, fate, f"replaced by v{num}: {why}")
            )
        after = [*lineage(client, name), num] if to == Stage.production else None
        _begin(client, name, moves, after[-LINEAGE_KEPT:] if after else None)
    return Outcome(num, moves, result)


def _live_evidence(settings, client, name, challenger, to, progress):
    """The shadow's live evidence against production, when there is enough of it (None:
    the production gate judges on the backtest)."""
    if to != Stage.production:
        return None
    champion = holder(aliases(client, name), Stage.production)
    if champion is None or champion == number(challenger):
        return None
    from monitoring import shadow

    found = shadow.live_evidence(settings, number(challenger), champion)
    progress(found.describe() + ("" if found.sufficient else ": the backtest decides"))
    return found if found.sufficient else None


def _rescore(
    settings: Settings, client, champion_number, rows, challenger_forecast, problem, challenger
) -> Rescore:
    """Both versions' forecasts of the same rows: the challenger's backtest rows that the
    champion never saw (``scoring.unseen_by``), for the paired comparison."""
    if rows is None or problem:
        return Rescore(champion_number, 0, "?", problem=problem)
    name = settings.model_name
    if champion_number is None:
        actual, series = scoring.actual_and_series(rows)
        return Rescore(
            None,
            rows.rows,
            rows.window,
            actual=actual,
            challenger=challenger_forecast,
            series=series,
        )
    champion = model_version(client, name, champion_number)
    try:
        champion_contract = contract_of(champion)
        minimum = scoring.UnseenMinimum.of(settings, champion_contract.grain)
        scored = scoring.unseen_by(champion_contract, rows, minimum)
        if scored is not rows:  # fewer rows: the challenger is scored on them too
            challenger_forecast = scoring.forecast(
                name, number(challenger), contract_of(challenger), scored, lambda _: None
            )
        champion_forecast = scoring.forecast(
            name, champion_number, champion_contract, scored, lambda _: None
        )
        challenger_contract = contract_of(challenger)
        unjudged = ""
        if challenger_contract.quantiles != champion_contract.quantiles:
            unjudged = (
                f"the levels differ (v{number(challenger)}: "
                f"{challenger_contract.quantiles or 'none'}, production v{champion_number}: "
                f"{champion_contract.quantiles or 'none'})"
            )
        elif not champion_contract.quantiles:
            unjudged = "neither version forecasts quantiles"
        pinballs = (None, None)
        if not unjudged:
            pinballs = (
                scoring.pinball_of(name, number(challenger), challenger_contract, scored),
                scoring.pinball_of(name, champion_number, champion_contract, scored),
            )
    except (scoring.ScoringProblem, RegistryError, KeyError) as error:
        return Rescore(
            champion_number,
            rows.rows,
            rows.window,
            problem=f"production v{champion_number} cannot be re-scored: {error}",
        )
    window = f"{scored.window}, {scored.note}" if scored.note else scored.window
    actual, series = scoring.actual_and_series(scored)
    return Rescore(
        champion_number,
        scored.rows,
        window,
        actual=actual,
        challenger=challenger_forecast,
        champion=champion_forecast,
        series=series,
        challenger_pinball=pinballs[0],
        champion_pinball=pinballs[1],
        unjudged=unjudged,
    )


def _set_lineage(client, name: str, versions: list[str]) -> None:
    client.set_registered_model_tag(name, LINEAGE_TAG, json.dumps(versions[-LINEAGE_KEPT:]))


def rollback(settings: Settings, reason: str, progress: Progress = lambda _: None) -> Outcome:
    """Put the previous production version back (no gates) and archive the current one.

    ``@production`` moves to the previous version in one write: it always has a holder.
    """
    if not (reason and reason.strip()):
        raise RegistryError("rollback needs --reason '…': the audit trail records why")
    client = connect(settings)
    name = settings.model_name
    with registry_lock(settings):
        _recover(client, name, progress)
        current = holder(aliases(client, name), Stage.production)
        if current is None:
            raise RegistryError(f"{name} has no production version to roll back")
        earlier = [v for v in lineage(client, name) if v != current]
        if not earlier:
            raise RegistryError(
                f"v{current} is the first production version of {name}: nothing to roll back to"
            )
        previous = model_version(client, name, earlier[-1])
        was = stage_of(previous, aliases(client, name))
        moves = [
            audit.new_move(
                settings, number(previous), was, Stage.production, f"rollback: {reason}"
            ),
            audit.new_move(
                settings, current, Stage.production, Stage.archived, f"rolled back: {reason}"
            ),
        ]
        _begin(client, name, moves, earlier)
        progress(f"v{number(previous)} is back in production; v{current} archived")
    return Outcome(number(previous), moves)


def archive(settings: Settings, version: str, reason: str | None = None) -> Outcome:
    """Archive a candidate or staging version (production leaves by promotion or rollback)."""
    client = connect(settings)
    name = settings.model_name
    with registry_lock(settings):
        _recover(client, name, lambda _: None)
        found = model_version(client, name, version)
        stage = stage_of(found, aliases(client, name))
        if stage == Stage.archived:
            raise RegistryError(f"v{version} is already archived")
        if stage == Stage.production:
            raise RegistryError(
                f"v{version} is in production; promote another version or "
                "`demand models rollback --reason '…'` instead of archiving it"
            )
        move = audit.new_move(
            settings, number(found), stage, Stage.archived, reason or "archived by hand"
        )
        _begin(client, name, [move], None)
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
