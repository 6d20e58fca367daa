"""A process dying between any two registry writes of a promotion or a rollback.

The client below raises at its n-th write, for every n a full move makes; after
each crash production still has a holder (the old one until the alias switch, the
new one from then on), the journal says what was under way, and the next move
(here ``recover``) finishes the records or puts them back, writing nothing twice.
Scoring is replaced by a constant and the gates are forced: what is under test is
the order of the writes.
"""

from __future__ import annotations

import pytest

from cli.main import main
from registry import audit, lifecycle, state
from registry.gates import Rescore, Stage
from tests.registry.helpers import GOOD, assert_consistent, fresh, snapshot

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

    def __init__(self, client, crash_at: int | None):
        self._client = client
        self.crash_at = crash_at
        self.writes: list[tuple[str, tuple]] = []

    def __getattr__(self, attr: str):
        method = getattr(self._client, attr)
        if attr not in WRITES:
            return method

        def write(*args, **kwargs):
            if len(self.writes) + 1 == self.crash_at:
                raise Crash(f"crashed at write {self.crash_at}: {attr}{args}")
            self.writes.append((attr, args))
            return method(*args, **kwargs)

        return write


@pytest.fixture
def crashing(monkeypatch):
    """``crashing(n)``: the next lifecycle call's client dies at its n-th write; the client."""
    real_connect = lifecycle.connect
    made: list[CrashingClient] = []
    plan = {"at": None}

    def connect(settings):
        client = CrashingClient(real_connect(settings), plan["at"])
        made.append(client)
        return client

    monkeypatch.setattr(lifecycle, "connect", connect)
    # constant scores: the gates pass, and no model is loaded
    monkeypatch.setattr(lifecycle.scoring, "backtest_rows", lambda *a, **k: object())
    monkeypatch.setattr(lifecycle.scoring, "wape", lambda *a, **k: 0.5)
    monkeypatch.setattr(
        lifecycle,
        "_rescore",
        lambda client, name, champion, *rest: Rescore(0.5, 0.5, champion, 10, "fake"),
    )

    def arm(at: int | None) -> list[CrashingClient]:
        plan["at"] = at
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


def _set_up(base, crashing, name: str, moves) -> tuple:
    settings, client = fresh(base, name, sources=(GOOD, GOOD))
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
