"""What the registry tests share: fresh registered models, snapshots, consistency, races."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from mlflow import MlflowClient

from registry import audit, state
from registry.gates import NO_WORSE, Rescore, Stage

GOOD, BAD = "1", "2"  # the versions of the `base` fixture's registered model


def fresh(base, name: str, sources=(GOOD, BAD)):
    """A registered model ``name`` whose versions 1, 2… copy the trained ``sources``."""
    client = MlflowClient(base.tracking_uri, base.tracking_uri)
    for source in sources:
        client.copy_model_version(f"models:/{base.model_name}/{source}", name)
    return base.model_copy(update={"model_name": name}), client


def constant_rescore(settings, client, champion, *rest) -> Rescore:
    """Every model forecasts 0.5 units against sales of 1 on ten rows of five series (WAPE
    0.5), the champion too: the paired check passes, and no model is loaded."""
    ones = np.ones(10)
    return Rescore(
        champion,
        10,
        "fake",
        actual=ones,
        challenger=ones / 2,
        champion=None if champion is None else ones / 2,
        series=np.arange(10) % 5,
    )


def snapshot(client, name: str):
    """Everything a move may change: aliases, legacy stages, tags."""
    model = client.get_registered_model(name)
    return (
        dict(model.aliases),
        dict(model.tags),
        [(v.version, v.current_stage, dict(v.tags)) for v in state.versions(client, name)],
    )


def assert_consistent(client, name: str) -> dict[str, Stage]:
    """Aliases, legacy stage and tag agree; one holder per seat; history ends where it is."""
    assert state.journal(client, name) is None  # no change left half-recorded
    assert state.disagreements(client, name) == []
    found = state.versions(client, name)
    held = state.aliases(client, name)
    # one seat per version: read straight from the aliases, not through stage_of, whose
    # preference for production would hide a version holding @staging as well
    assert len(set(held.values())) == len(held), f"a version holds two aliases: {held}"
    stages = {state.number(v): state.stage_of(v, held) for v in found}
    for stage in (Stage.staging, Stage.production):
        assert list(stages.values()).count(stage) <= 1
        legacy = [v for v in found if v.current_stage == state.LEGACY[stage]]
        assert len(legacy) <= 1
    for version in found:
        history = audit.history(version.tags)
        if history:
            assert history[-1].to_stage == stages[state.number(version)]
            # each move starts where the previous one ended
            for earlier, later in itertools.pairwise(history):
                assert later.from_stage == earlier.to_stage
    return stages


# A racer: `demand models promote` in a process of its own that, before taking the registry
# lock, waits until every racer is there, and holds the lock for a while. So the racers
# always ask for the lock together, and a lock that does not exclude them lets their
# moves overlap: the race fails for the mistake it is named after, not only by chance.
RACER = """
import sys, time
from contextlib import contextmanager
from pathlib import Path

from registry import lifecycle
from registry.cli import main

barrier, me, racers = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
take = lifecycle.registry_lock


@contextmanager
def registry_lock(settings, *args, **kwargs):
    (barrier / me).touch()
    deadline = time.monotonic() + 120
    while len(list(barrier.iterdir())) < racers and time.monotonic() < deadline:
        time.sleep(0.02)
    with take(settings, *args, **kwargs):
        time.sleep(2)
        yield


lifecycle.registry_lock = registry_lock
sys.exit(main(sys.argv[4:]))
"""


def promote_in_subprocess(
    base, uri: str, name: str, version: str, barrier: Path, **env
) -> subprocess.Popen:
    environment = {
        **os.environ,
        "DEMAND_DATA_DIR": str(base.data_dir),
        "DEMAND_MLFLOW_TRACKING_URI": uri,
        "DEMAND_MODEL_NAME": name,
        "DEMAND_USER": f"process-{version}",
        **env,
    }
    argv = ["promote", version, "--to", "production", "--force", "--reason", f"race {version}"]
    return subprocess.Popen(
        [sys.executable, "-c", RACER, str(barrier), version, "2", *argv],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def race(base, uris: tuple[str, str], name: str, versions: tuple[str, str], **env) -> None:
    """Two processes promote ``versions`` to production at once (process i through
    ``uris[i]``); check that they end with one production version and one history."""
    barrier = Path(tempfile.mkdtemp(prefix="race-"))
    pairs = zip(uris, versions, strict=True)
    try:
        racers = [promote_in_subprocess(base, uri, name, v, barrier, **env) for uri, v in pairs]
        outputs = [p.communicate(timeout=300)[0] for p in racers]
    finally:
        shutil.rmtree(barrier, ignore_errors=True)
    assert [p.returncode for p in racers] == [0, 0], outputs

    client = MlflowClient(uris[0], uris[0])
    stages = assert_consistent(client, name)
    assert sorted(stages.values()) == [Stage.archived, Stage.production]
    winner = next(v for v, s in stages.items() if s == Stage.production)
    loser = next(v for v, s in stages.items() if s == Stage.archived)
    # serialised: the loser reached production first and was archived by the winner
    assert state.lineage(client, name) == [loser, winner]
    loser_history = audit.history(client.get_model_version(name, loser).tags)
    assert [(m.from_stage, m.to_stage) for m in loser_history][-2:] == [
        ("candidate", "production"),
        ("production", "archived"),
    ]
    assert loser_history[-1].reason.startswith(f"replaced by v{winner}")
    winner_history = audit.history(client.get_model_version(name, winner).tags)
    assert [(m.from_stage, m.to_stage, m.by) for m in winner_history][-1] == (
        "candidate",
        "production",
        f"process-{winner}",
    )
    # the winner saw the loser as the champion it compared itself against
    gates = winner_history[-1].gate_result
    assert any(f"production v{loser}" in c.detail for c in gates.checks if c.name == NO_WORSE)
    # and in one serial order: the loser's two moves come before and after the winner's
    assert loser_history[-2].at <= winner_history[-1].at <= loser_history[-1].at
