"""What every `demand` command shares: the consoles, and how errors reach the user.

An error the user can fix is a ``UserError`` (the domain errors of every part
derive from it): one red line that says what was wrong and what to do, exit 1.
A bad argument (Typer's own checks) or a DEMAND_* setting that does not pass its
type (``demand.settings.SettingError``) exits 2. Anything else is a bug, a pydantic
``ValidationError`` raised by a library included: one line too, unless DEMAND_DEBUG=1
asks for the traceback. An ``Advice`` warning is one yellow line.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console
from rich.markup import escape

console = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., object])


class UserError(Exception):
    """A problem the user can fix; its message says how."""

    exit_code = 1


class Advice(UserWarning):
    """A warning for the user (a misspelt variable): shown as one line, once."""


def friendly(fn: F) -> F:
    """Run a command; turn expected failures into one red line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        quiet_library_warnings()
        show_advice()
        try:
            return fn(*args, **kwargs)
        except (typer.TyperException, typer.Exit, typer.Abort, KeyboardInterrupt):
            raise  # a usage error (exit 2) or an exit the command chose
        except (UserError, FileNotFoundError) as error:
            for line in str(error).splitlines():  # a SettingError has one line per setting
                err.print(f"[red]error:[/red] {escape(line)}")
            raise typer.Exit(getattr(error, "exit_code", 1)) from None
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


def show_advice() -> None:
    """Print ``Advice`` warnings as ``warning: …`` lines; other warnings as Python does."""
    if getattr(warnings.showwarning, "_demand", False):
        return
    python = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, Advice):
            err.print(f"[yellow]warning:[/yellow] {escape(str(message))}")
        else:
            python(message, category, filename, lineno, file, line)

    show._demand = True  # type: ignore[attr-defined]
    warnings.showwarning = show


def step(message: str) -> None:
    """Progress of a long command: one line per step."""
    console.print(f"[cyan]›[/cyan] {message}")
