"""The audit trail: every move of a version, as tags on that version.

Tags (not a local file) so the trail travels with the registry: whoever looks at
the same tracking server, in the MLflow UI or with ``demand models show``, sees
the same history. Each move writes

- ``demand.moved.{from,to,at,by,reason,forced,gates}``: the latest move, readable in the UI;
- ``demand.history.NNNN``: one JSON line per move, numbered, which ``show`` prints.
"""

from __future__ import annotations

import getpass
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from demand.settings import Settings
from registry.gates import GateResult

MOVED = "demand.moved."
HISTORY = "demand.history."


@dataclass(frozen=True)
class Move:
    version: str
    from_stage: str
    to_stage: str
    at: str  # ISO 8601, UTC
    by: str
    reason: str
    forced: bool = False
    gates: str = ""  # GateResult.to_json(), empty when no gate applied (rollback, archive)

    @property
    def gate_result(self) -> GateResult | None:
        return GateResult.from_json(self.gates) if self.gates else None


def who(settings: Settings) -> str:
    """The person the trail names: the configured user, else the OS account."""
    if settings.user:
        return settings.user
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # containers without a passwd entry for the uid
        return "unknown"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_move(
    settings: Settings,
    version: str,
    from_stage: str,
    to_stage: str,
    reason: str,
    gates: GateResult | None = None,
    forced: bool = False,
) -> Move:
    return Move(
        version=version,
        from_stage=from_stage,
        to_stage=to_stage,
        at=now(),
        by=who(settings),
        reason=reason,
        forced=forced,
        gates=gates.to_json() if gates else "",
    )


def history(tags: dict[str, str]) -> list[Move]:
    """The moves recorded on a version, oldest first."""
    keys = sorted(k for k in tags if k.startswith(HISTORY))
    return [Move(**json.loads(tags[k])) for k in keys]


def record(client, name: str, move: Move, tags: dict[str, str]) -> None:
    """Write ``move`` onto version ``move.version`` of ``name``; ``tags`` are its current tags.

    Callers hold the registry lock, so the next history number is not taken by
    another process between reading and writing it.
    """
    number = len([k for k in tags if k.startswith(HISTORY)]) + 1
    latest = {
        "from": move.from_stage,
        "to": move.to_stage,
        "at": move.at,
        "by": move.by,
        "reason": move.reason,
        "forced": str(move.forced).lower(),
        "gates": move.gates,
    }
    for key, value in latest.items():
        client.set_model_version_tag(name, move.version, MOVED + key, value)
    client.set_model_version_tag(
        name, move.version, f"{HISTORY}{number:04d}", json.dumps(asdict(move), sort_keys=True)
    )
