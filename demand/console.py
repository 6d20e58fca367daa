"""What every `demand` command shares: the consoles, and how errors reach the user.

An error the user can fix is a ``UserError`` (the domain errors of every part
derive from it): one red line that says what was wrong and what to do, exit 1.
A DEMAND_* setting out of range exits 2. Anything else is a bug: one line too,
unless DEMAND_DEBUG=1 asks for the traceback.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from typing import TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

console = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., object])


class UserError(Exception):
    """A problem the user can fix; its message says how."""


def friendly(fn: F) -> F:
    """Run a command; turn expected failures into one red line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        quiet_library_warnings()
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except (UserError, FileNotFoundError) as error:
            err.print(f"[red]error:[/red] {error}")
            raise typer.Exit(1) from None
        except ValidationError as error:  # a DEMAND_* setting out of range
            for problem in error.errors():
                field = ".".join(str(p) for p in problem["loc"])
                err.print(f"[red]error:[/red] setting DEMAND_{field.upper()}: {problem['msg']}")
            raise typer.Exit(2) from None
        except Exception as error:
            if os.environ.get("DEMAND_DEBUG"):
                raise
            err.print(f"[red]error:[/red] {type(error).__name__}: {error}")
            err.print("[dim](set DEMAND_DEBUG=1 for the full traceback)[/dim]")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def quiet_library_warnings() -> None:
    """The libraries' own deprecations are not the user's business.

    Called again after importing Feast, whose modules put "once" filters for
    DeprecationWarning in front of any set before them. ``DEMAND_LIBRARY_WARNINGS=keep``
    leaves the filters as they are: the test run sets it, so that its own filters (which
    turn the pinned libraries' deprecations into errors, pyproject.toml) hold.
    """
    if os.environ.get("DEMAND_LIBRARY_WARNINGS") == "keep":
        return
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)


def step(message: str) -> None:
    """Progress of a long command: one line per step."""
    console.print(f"[cyan]›[/cyan] {message}")
