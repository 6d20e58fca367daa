"""A process dying between any two registry writes of a move, or of its recovery.

The client below raises at its n-th write, for every n a full move makes; after
each crash production still has a holder (the old one until the alias switch, the
new one from then on), the journal says what was under way, and the next move
(here ``recover``) finishes the records or puts them back, writing nothing twice.
Scoring is replaced by a constant and the gates are forced: what is under test is
the order of the writes.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from contextlib import closing, suppress
from pathlib import Path

import pytest
from mlflow import MlflowClient

from cli.main import main
from registry import audit, lifecycle, state
from registry.gates import Stage
from registry.state import RegistryError
from tests.registry.helpers import GOOD, assert_consistent, constant_rescore, fresh, snapshot

# a registry crashed at every write: minutes
pytestmark = pytest.mark.slow

WRITES = {
    "set_registered_model_alias",
    "delete_registered_model_alias",
    "set_registered_model_tag",
    "delete_registered_model_tag",
    "set_model_version_tag",
    "delete_model_version_tag",
    "transition_model_version_stage",
}


class Crash(Exception):
    pass


class CrashingClient:
    """An MlflowClient whose ``crash_at``-th write raises instead of writing."""

    def __init__(self, client, crash_at: int | tuple | None, observe=None):
        self._client = client
        self.crash_at = crash_at  # the n-th write, or the write (method, args) itself
        self.observe = observe  # called after each write
        self.writes: list[tuple[str, tuple]] = []

    def __getattr__(self, attr: str):
        method = getattr(self._client, attr)
        if attr not in WRITES:
            return method

        def write(*args, **kwargs):
            if self.crash_at in (len(self.writes) + 1, (attr, args)):
                raise Crash(f"crashed at write {len(self.writes) + 1}: {attr}{args}")
            self.writes.append((attr, args))
            result = method(*args, **kwargs)
            if self.observe is not None:
                self.observe()
            return result

        return write


@pytest.fixture
def crashing(monkeypatch):
    """``crashing(n)``: the next lifecycle call's client dies at its n-th write; the client."""
    real_connect = lifecycle.connect
    made: list[CrashingClient] = []
    plan = {"at": None, "observe": None}

    def connect(settings):
        client = CrashingClient(real_connect(settings), plan["at"], plan["observe"])
        made.append(client)
        return client

    monkeypatch.setattr(lifecycle, "connect", connect)
    # constant scores: the gates pass, and no model is loaded
    monkeypatch.setattr(lifecycle.scoring, "backtest_rows", lambda *a, **k: object())
    monkeypatch.setattr(lifecycle.scoring, "forecast", lambda *a, **k: None)
    monkeypatch.setattr(lifecycle, "_rescore", constant_rescore)

    def arm(at: int | tuple | None, observe=None) -> list[CrashingClient]:
        plan["at"], plan["observe"] = at, observe
        made.clear()
        return made

    return arm


def _promote_v2(settings):
    lifecycle.promote(settings, "2", Stage.production, force=True, reason="v2 is better")


def _roll_back(settings):
    lifecycle.rollback(settings, "v2 forecasts too low")


SCENARIOS = {
    # name: (set-up moves, the interrupted move, production before, production after)
    "promote": ([("1", Stage.production), ("2", Stage.staging)], _promote_v2, "1", "2"),
    "rollback": ([("1", Stage.production), ("2", Stage.production)], _roll_back, "2", "1"),
}


def _set_up(base, crashing, name: str, moves, sources=(GOOD, GOOD)) -> tuple:
    settings, client = fresh(base, name, sources=sources)
    crashing(None)
    for version, to in moves:
        lifecycle.promote(settings, version, to, force=True, reason="set-up")
    return settings, client


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_a_crash_between_any_two_writes_leaves_a_production_holder(
    base, crashing, scenario, capsys, monkeypatch
):
    moves, interrupted, old, new = SCENARIOS[scenario]
    # one uninterrupted run: how many writes, and which one is the alias switch
    settings, client = _set_up(base, crashing, f"crash_{scenario}_full", moves)
    made = crashing(None)
    interrupted(settings)
    writes = made[0].writes
    switch = 1 + writes.index(
        ("set_registered_model_alias", (settings.model_name, "production", new))
    )
    assert 2 <= switch < len(writes)  # the journal comes first; records follow the switch
    expected = assert_consistent(client, settings.model_name)
    assert expected[new] == Stage.production and expected[old] == Stage.archived

    for at in range(1, len(writes) + 1):
        settings, client = _set_up(base, crashing, f"crash_{scenario}_{at}", moves)
        name = settings.model_name
        before = snapshot(client, name)
        lineage_before = state.lineage(client, name)
        crashing(at)
        with pytest.raises(Crash):
            interrupted(settings)

        # production has a holder at every point: the old one until the switch
        held = state.holder(state.aliases(client, name), Stage.production)
        assert held == (old if at <= switch else new), at
        # what was under way is on record from the first write on
        pending = state.journal(client, name)
        if at == 1:
            assert pending is None and snapshot(client, name) == before
            continue
        assert (pending["moves"][0]["version"], pending["moves"][0]["to_stage"]) == (
            new,
            "production",
        )
        if at == switch + 1:  # died right after the alias moved: the step the issue names
            listed = _list(settings, capsys, monkeypatch)
            assert f"a move of v{new} to production" in listed and "interrupted" in listed

        crashing(None)
        assert lifecycle.recover(settings) is True
        stages = assert_consistent(client, name)
        if at <= switch:  # it never happened: everything as before
            assert snapshot(client, name) == before
            continue
        assert stages == expected, at
        assert state.lineage(client, name) == (
            [*lineage_before, new] if scenario == "promote" else [new]
        )
        for version in (old, new):
            history = audit.history(client.get_model_version(name, version).tags)
            assert len(history) == len(set(history)), "a record written twice"
        arrived = audit.history(client.get_model_version(name, new).tags)[-1]
        left = audit.history(client.get_model_version(name, old).tags)[-1]
        assert (arrived.to_stage, left.from_stage, left.to_stage) == (
            "production",
            "production",
            "archived",
        )
        assert ("v2 is better" if scenario == "promote" else "v2 forecasts too low") in (
            arrived.reason
        )
        assert lifecycle.recover(settings) is False  # nothing left to do


def _list(settings, capsys, monkeypatch) -> str:
    """What `demand models list` prints for ``settings``' model."""
    monkeypatch.setenv("DEMAND_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("DEMAND_MLFLOW_TRACKING_URI", settings.tracking_uri)
    monkeypatch.setenv("DEMAND_MODEL_NAME", settings.model_name)
    capsys.readouterr()
    assert main(["models", "list"]) == 0
    return capsys.readouterr().out


def test_recovery_finishes_every_alias_change(base, crashing):
    """The issue's case: promoting v2 out of staging dies after @production moved to it and
    before its @staging was deleted. Recovery must delete it: a v2 left holding both
    aliases is the "displaced" staging holder of the next `promote v3 --to staging`, which
    sends it back to candidate and so deletes @production."""
    settings, client = _set_up(
        base,
        crashing,
        "crash_double_alias",
        [("1", Stage.production), ("2", Stage.staging)],
        sources=(GOOD, GOOD, GOOD),
    )
    name = settings.model_name
    crashing(("delete_registered_model_alias", (name, "staging")))
    with pytest.raises(Crash):
        _promote_v2(settings)
    assert state.aliases(client, name) == {"production": "2", "staging": "2"}

    crashing(None)
    assert lifecycle.recover(settings) is True
    assert state.aliases(client, name) == {"production": "2"}
    assert assert_consistent(client, name) == {
        "1": Stage.archived,
        "2": Stage.production,
        "3": Stage.candidate,
    }
    lifecycle.promote(settings, "3", Stage.staging, force=True, reason="routine")
    assert state.aliases(client, name) == {"production": "2", "staging": "3"}
    assert assert_consistent(client, name)["2"] == Stage.production


def test_a_version_holding_both_aliases_is_only_in_production():
    held = {"production": "2", "staging": "2"}
    assert state.holder(held, Stage.production) == "2"
    assert state.holder(held, Stage.staging) is None  # so no move displaces it from staging
    assert state.holder({"production": "1", "staging": "2"}, Stage.staging) == "2"


def test_two_aliases_left_by_an_earlier_recovery_are_repaired(base, crashing):
    """A registry an older `demand` recovered: no journal, v2 holding both aliases."""
    settings, client = _set_up(
        base,
        crashing,
        "crash_left_double",
        [("1", Stage.production), ("2", Stage.staging), ("2", Stage.production)],
        sources=(GOOD, GOOD, GOOD),
    )
    name = settings.model_name
    client.set_registered_model_alias(name, "staging", "2")
    # the next move repairs it first, and does not take v2 for the staging holder
    lifecycle.promote(settings, "3", Stage.staging, force=True, reason="routine")
    assert state.aliases(client, name) == {"production": "2", "staging": "3"}
    assert assert_consistent(client, name)["2"] == Stage.production
    # `demand models recover` repairs it too, and says so
    settings, client = _set_up(
        base,
        crashing,
        "crash_left_double_recover",
        [("1", Stage.production), ("2", Stage.staging), ("2", Stage.production)],
        sources=(GOOD, GOOD, GOOD),
    )
    client.set_registered_model_alias(settings.model_name, "staging", "2")
    said: list[str] = []
    assert lifecycle.recover(settings, said.append) is True
    assert state.aliases(client, settings.model_name) == {"production": "2"}
    assert_consistent(client, settings.model_name)
    assert any("@staging" in line and "v2" in line for line in said), said
    assert lifecycle.recover(settings) is False


# The exhaustive harness: every write of every move, and of the recoveries after it.
#
# Each interrupted move runs on its own copy of a set-up registry (SQLite's backup API
# copies the database file; the versions' artifacts are not read: scores are constant).
# After a crash, one uninterrupted recovery runs on a copy with the registry noted after
# each of its writes; a recovery crashing at its r-th write leaves the registry as it was
# after r-1 writes, so every noted state not seen before is reached by a real crash and
# explored in turn (recovering the recovery). Every path ends in a recovered registry,
# which must be consistent, hold one alias per version, have a production holder and be
# where the uninterrupted move (or no move) ends; and from each recovered registry every
# routine move runs (on its own copy) and leaves a consistent registry with production.
# Time is frozen, so the same records written twice are the same registry.

NOW = "2024-06-03T04:05:06+00:00"
SET_UP = [("1", Stage.production), ("2", Stage.staging)]
INTERRUPTED = {
    "promote to production": (SET_UP, _promote_v2),
    "promote to staging": (
        SET_UP,
        lambda s: lifecycle.promote(s, "3", Stage.staging, force=True, reason="v3 to try"),
    ),
    "rollback": ([("1", Stage.production), ("2", Stage.production)], _roll_back),
    "archive": (SET_UP, lambda s: lifecycle.archive(s, "2", "retired")),
}


def _archive_staging(settings):
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    held = state.aliases(client, settings.model_name)
    lifecycle.archive(settings, state.holder(held, Stage.staging) or "4", "routine")


ROUTINE = {
    "promote to staging": lambda s: lifecycle.promote(
        s, "4", Stage.staging, force=True, reason="routine"
    ),
    "promote to production": lambda s: lifecycle.promote(
        s, "4", Stage.production, force=True, reason="routine"
    ),
    "rollback": lambda s: lifecycle.rollback(s, "routine"),
    "archive": _archive_staging,
}


def _copy(settings, path: Path):
    """A registry that is a copy of ``settings``' SQLite registry; its settings and client."""
    source = settings.tracking_uri.removeprefix("sqlite:///")
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(path)) as dst:
        src.backup(dst)
    uri = f"sqlite:///{path}"
    return settings.model_copy(update={"mlflow_tracking_uri": uri}), MlflowClient(uri, uri)


def _signature(client, name: str) -> str:
    return json.dumps(snapshot(client, name), sort_keys=True, default=str)


def _where(client, name: str):
    """What a move decides on and leaves: aliases, lineage, stages, how many records."""
    held = state.aliases(client, name)
    return (
        held,
        state.lineage(client, name),
        {
            state.number(v): (state.stage_of(v, held), len(audit.history(v.tags)))
            for v in state.versions(client, name)
        },
    )


class Explorer:
    def __init__(self, crashing, tmp_path: Path, name: str, ends: list):
        self.crashing, self.tmp_path, self.name, self.ends = crashing, tmp_path, name, ends
        self.explored: set[str] = set()
        self.routine_done: set[str] = set()
        self.copies = itertools.count()
        self.recover_crashes = 0
        self.recover_writes = 0

    def copy(self, settings):
        return _copy(settings, self.tmp_path / f"copy{next(self.copies)}.db")

    def production_held(self, client) -> None:
        assert state.holder(state.aliases(client, self.name), Stage.production) is not None

    def recoveries(self, settings, client) -> None:
        """Recover ``settings``' crashed registry, crashing at each write of the recovery."""
        signature = _signature(client, self.name)
        if signature in self.explored:
            return
        self.explored.add(signature)
        pending = state.journal(client, self.name) is not None
        crashed, _ = self.copy(settings)  # the crashed registry, for the crashes below
        noted = [signature]  # the registry after 0, 1, 2… writes of the recovery
        self.crashing(None, observe=lambda: noted.append(_signature(client, self.name)))
        assert lifecycle.recover(settings) is pending
        self.recovered(settings, client)
        self.recover_writes += len(noted) - 1
        for at in range(2, len(noted)):
            if noted[at - 1] in self.explored:
                continue
            again, again_client = self.copy(crashed)
            self.crashing(at)
            with pytest.raises(Crash):
                lifecycle.recover(again)
            self.recover_crashes += 1
            assert _signature(again_client, self.name) == noted[at - 1]
            self.production_held(again_client)
            self.recoveries(again, again_client)

    def recovered(self, settings, client) -> None:
        assert_consistent(client, self.name)
        self.production_held(client)
        assert _where(client, self.name) in self.ends
        self.crashing(None)
        assert lifecycle.recover(settings) is False  # nothing left to do
        signature = _signature(client, self.name)
        if signature in self.routine_done:
            return
        self.routine_done.add(signature)
        for label, move in ROUTINE.items():
            after, after_client = self.copy(settings)
            # a refusal (nothing to roll back to…) must leave the registry whole too
            with suppress(RegistryError):
                move(after)
            assert_consistent(after_client, self.name)
            assert state.holder(state.aliases(after_client, self.name), Stage.production), label


@pytest.mark.slow
@pytest.mark.parametrize("scenario", sorted(INTERRUPTED))
def test_every_crash_of_a_move_or_its_recovery_then_every_routine_move_keeps_production(
    base, crashing, scenario, tmp_path, monkeypatch
):
    monkeypatch.setattr(audit, "now", lambda: NOW)
    set_up, interrupted = INTERRUPTED[scenario]
    slug = scenario.replace(" ", "_")
    settings, _ = _set_up(base, crashing, f"harness_{slug}", set_up, sources=(GOOD,) * 4)
    name = settings.model_name
    template, template_client = _copy(settings, tmp_path / "template.db")
    before = _where(template_client, name)
    full, full_client = _copy(template, tmp_path / "full.db")
    made = crashing(None)
    interrupted(full)
    writes = len(made[0].writes)
    after = _where(full_client, name)
    assert after != before
    explorer = Explorer(crashing, tmp_path, name, [before, after])
    for at in range(1, writes + 1):
        crashed, crashed_client = explorer.copy(template)
        crashing(at)
        with pytest.raises(Crash):
            interrupted(crashed)
        explorer.production_held(crashed_client)
        explorer.recoveries(crashed, crashed_client)
    # the harness did what it says: recoveries' writes crashed at, routine moves run
    assert explorer.recover_writes > 0 and explorer.routine_done
    print(
        f"{scenario}: {writes} writes, {len(explorer.explored)} distinct crashed registries, "
        f"{explorer.recover_writes} recovery writes ({explorer.recover_crashes} crashed for "
        f"a registry not seen before), {len(explorer.routine_done)} recovered registries "
        f"× {len(ROUTINE)} routine moves"
    )
