"""`demand models …`: list, show, promote, rollback, archive, recover and check versions.

Mounted into the `demand` CLI; runnable alone as ``python -m registry.cli``.
Errors the user can fix print one red line and exit 1, never a traceback.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from demand.console import console, friendly
from registry.gates import GateResult, Stage

app = typer.Typer(
    name="models",
    help="The model registry: versions, their stages, promotions, rollback.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Target(StrEnum):
    """Where `promote --to` may move a version (typer lists these on a bad value, exit 2)."""

    staging = Stage.staging.value
    production = Stage.production.value


def _settings():
    from demand.settings import get_settings

    return get_settings()


def _when(millis: int | None) -> str:
    if not millis:
        return ""
    return datetime.fromtimestamp(millis / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _best(backtest) -> str:
    """The best baseline's WAPE and name (``0.479 moving_average_28d``), or "-"."""
    best = backtest.best_baseline
    return f"{_number(best[1])} {best[0]}" if best else "-"


def _number(value: float) -> str:
    return "" if value != value else f"{value:.3f}"  # NaN → blank


@app.command("list")
@friendly
def list_versions() -> None:
    """Every version: stage, backtest WAPE against the baselines, feature service, last move."""
    from registry import state

    settings = _settings()
    client = state.connect(settings)
    held = state.aliases(client, settings.model_name)
    table = Table(title=f"{settings.model_name} · {settings.tracking_uri}")
    table.add_column("v", justify="right")
    table.add_column("stage", no_wrap=True, min_width=10)
    table.add_column("WAPE", justify="right")
    table.add_column("best baseline", justify="right")
    table.add_column("feature service", overflow="fold")
    table.add_column("created")
    table.add_column("last moved", overflow="fold")
    for version in state.versions(client, settings.model_name):
        facts = state.run_facts(client, version)
        tags = version.tags
        moved = (
            f"{tags.get('demand.moved.at', '')[:16]} by {tags.get('demand.moved.by', '?')}: "
            f"{tags.get('demand.moved.reason', '')}"
            if "demand.moved.to" in tags
            else ""
        )
        table.add_row(
            state.number(version),
            state.stage_of(version, held).value,
            _number(facts.backtest.wape),
            _best(facts.backtest),
            tags.get("feast.feature_service", ""),
            _when(version.creation_timestamp),
            moved,
        )
    console.print(table)
    pending = state.journal(client, settings.model_name)
    if pending:
        console.print(
            f"[yellow]{state.interrupted(pending)}[/yellow]; the next move finishes it, or run "
            "`demand models recover`"
        )


@app.command()
@friendly
def show(version: Annotated[str, typer.Argument(help="Version number.")]) -> None:
    """One version: stage, lineage, metrics, contract, and its history of moves."""
    from registry import audit, state

    settings = _settings()
    client = state.connect(settings)
    found = state.model_version(client, settings.model_name, version)
    held = state.aliases(client, settings.model_name)
    facts = state.run_facts(client, found)
    info = Table(title=f"{settings.model_name} v{state.number(found)}", show_header=False)
    rows = {
        "stage": state.stage_of(found, held).value,
        "MLflow stage field": found.current_stage,
        "aliases": ", ".join(f"@{a}" for a, v in held.items() if v == state.number(found)) or "-",
        "run": f"{found.run_id} ({facts.status})",
        "created": _when(found.creation_timestamp),
        "backtest WAPE": _number(facts.backtest.wape),
        **{f"{n} WAPE": _number(w) for n, w in facts.backtest.baselines.items()},
        "feature service": found.tags.get("feast.feature_service", "-"),
        "backtest window": _window(found.tags),
        "description": found.description or "",
    }
    if "demand.copied_from" in found.tags:
        rows["copied from"] = found.tags["demand.copied_from"]
    for key, value in rows.items():
        info.add_row(key, str(value))
    console.print(info)
    history = audit.history(found.tags)
    console.rule("history")
    if not history:
        console.print("[dim]no moves yet: a candidate[/dim]")
    for move in history:
        # one line per move, its gate checks indented below: too wide for table cells
        forced = " [yellow](forced)[/yellow]" if move.forced else ""
        console.print(
            f"{move.at}  {move.from_stage or '-'} → [bold]{move.to_stage}[/bold]{forced}  "
            f"by {move.by}: {move.reason}",
            markup=True,
        )
        if move.gate_result is not None:
            console.print(_gates(move.gate_result, indent="    "), markup=False)


def _window(tags: dict[str, str]) -> str:
    extra = json.loads(tags.get("demand.contract.extra", "{}"))
    return f"origins {extra.get('backtest_start', '?')} .. {extra.get('backtest_end', '?')}"


def _gates(result: GateResult, indent: str = "") -> str:
    return "\n".join(
        f"{indent}{'✓' if c.passed else '✗'} {c.name}: {c.detail}" for c in result.checks
    )


@app.command()
@friendly
def promote(
    version: Annotated[str, typer.Argument(help="Version number.")],
    to: Annotated[Target, typer.Option("--to", help="The stage to move it to.")],
    force: Annotated[bool, typer.Option(help="Promote although a gate fails.")] = False,
    reason: Annotated[
        str | None, typer.Option(help="Why (recorded; required with --force).")
    ] = None,
    to_model: Annotated[
        str | None, typer.Option(help="Copy the version into this registered model first.")
    ] = None,
    to_tracking_uri: Annotated[
        str | None, typer.Option(help="Copy the version into this tracking server first.")
    ] = None,
) -> None:
    """Move a version to staging or production through its gates (copying it first if asked)."""
    from registry import lifecycle, transfer

    settings = _settings()
    if to_model or to_tracking_uri:
        settings, version = transfer.copy_version(settings, version, to_model, to_tracking_uri)
        console.print(
            f"copied to [bold]{settings.model_name}[/bold] v{version} ({settings.tracking_uri})"
        )
    step = lambda m: console.print(f"[cyan]›[/cyan] {m}")  # noqa: E731
    outcome = lifecycle.promote(
        settings, version, Stage(to), force=force, reason=reason, progress=step
    )
    if outcome.gates is not None:
        console.print(_gates(outcome.gates), markup=False)
    for move in outcome.moves:
        console.print(f"v{move.version}: {move.from_stage} → [bold]{move.to_stage}[/bold]")
    if force and outcome.gates is not None and not outcome.gates.passed:
        console.print(f"[yellow]forced past failed gates[/yellow]; reason recorded: {reason}")


@app.command()
@friendly
def rollback(
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit trail).")],
) -> None:
    """Put the previous production version back in production and archive the current one."""
    from registry import lifecycle

    step = lambda m: console.print(f"[cyan]›[/cyan] {m}")  # noqa: E731
    outcome = lifecycle.rollback(_settings(), reason, step)
    for move in outcome.moves:
        console.print(f"v{move.version}: {move.from_stage} → [bold]{move.to_stage}[/bold]")


@app.command()
@friendly
def recover() -> None:
    """Finish a move that a crashed process left half-recorded (the next move does it too)."""
    from registry import lifecycle

    step = lambda m: console.print(f"[cyan]›[/cyan] {m}")  # noqa: E731
    if not lifecycle.recover(_settings(), step):
        console.print("nothing to recover: no move was interrupted")


@app.command()
@friendly
def check() -> None:
    """Report every disagreement between the aliases, the stage records and the journal.

    Exit 0 when the registry is whole, 1 when anything disagrees.
    """
    from registry import lifecycle, state

    settings = _settings()
    name = settings.model_name
    client = state.connect(settings)
    # under the lock: a move being written now journals itself too, and is not a leftover
    with lifecycle.registry_lock(settings):
        problems = state.disagreements(client, name)
        count = len(state.versions(client, name))
    if not problems:
        console.print(
            f"{name}: consistent ({count} versions): no version holds two aliases, every "
            "stage tag and legacy stage field agrees with the aliases, no move was interrupted"
        )
        return
    for problem in problems:
        console.print(f"✗ {problem}", markup=False, highlight=False, soft_wrap=True)
    plural = "s" if len(problems) > 1 else ""
    raise state.RegistryError(
        f"{len(problems)} disagreement{plural} in {name} (the aliases are the truth); "
        "`demand models recover` finishes an interrupted move and removes a stale second alias"
    )


@app.command()
@friendly
def archive(
    version: Annotated[str, typer.Argument(help="Version number.")],
    reason: Annotated[str | None, typer.Option(help="Why (recorded).")] = None,
) -> None:
    """Archive a candidate or staging version."""
    from registry import lifecycle

    outcome = lifecycle.archive(_settings(), version, reason)
    for move in outcome.moves:
        console.print(f"v{move.version}: {move.from_stage} → [bold]{move.to_stage}[/bold]")


def main(argv: list[str] | None = None) -> int:
    """Run with ``argv``; the exit code (what tests call)."""
    try:
        code = app(args=argv, standalone_mode=False)
    except typer.TyperException as error:
        error.show()
        return error.exit_code
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
