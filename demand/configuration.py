"""What `demand config` shows, and the docs' settings reference, both from ``Settings``.

The effective value of every setting, secrets hidden, with where it came from; and the
Markdown table (variable, setting, type, default, description) that the docs' settings
page (docs/reference/settings.md, written by cli/reference.py) holds between two markers.
``make docs-config`` rewrites it (``python -m demand.configuration`` rewrites only the
table) and a test keeps the two equal, so the reference cannot drift from the settings.
"""

from __future__ import annotations

import json
import re
import sys
import types
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Annotated, Literal, Union, get_args, get_origin

import annotated_types
from pydantic.fields import FieldInfo

from demand.servers import redact
from demand.settings import REPO_ROOT, Settings, Shown

BEGIN = "<!-- settings: generated from demand/settings.py by `make docs-config`; do not edit -->"
END = "<!-- /settings -->"

# keys of DEMAND_SPARK_CONF whose values are credentials (fs.s3a.secret.key, …)
_SECRET_KEY = re.compile(r"secret|password|token|credential|key", re.IGNORECASE)


def hidden(value: object) -> str:
    """A setting's value as text, with passwords (URLs, ``password=…``, secret keys) as ***."""
    if value is None:
        return "none"
    if isinstance(value, dict):
        return json.dumps({k: "***" if _SECRET_KEY.search(k) else v for k, v in value.items()})
    if isinstance(value, Enum):
        return str(value.value)
    text = str(value)
    try:
        return redact(text)
    except Exception:  # a URL not even SQLAlchemy parses: hide all of it rather than guess
        return "***" if "@" in text or "password" in text else text


def effective(settings: Settings) -> list[tuple[str, str, str]]:
    """(variable, value with secrets hidden, source) for every setting, in declaration order."""
    sources = settings.sources
    return [
        (f"DEMAND_{name.upper()}", hidden(getattr(settings, name)), sources.get(name, "default"))
        for name in Settings.model_fields
    ]


def reference_table() -> str:
    """The settings reference: one row per setting, generated from the fields of ``Settings``."""
    lines = [
        "| variable | setting | type | default | description |",
        "|---|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        cells = [
            f"`DEMAND_{name.upper()}`",
            f"`{name}`",
            type_name(field),
            default_text(field),
            field.description or "",
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def type_name(field: FieldInfo) -> str:
    """The type a user writes: the choices, a number's range, or what a checked text is."""
    annotation, metadata, optional = field.annotation, list(field.metadata), False
    if get_origin(annotation) in (Union, types.UnionType) and type(None) in get_args(annotation):
        optional = True
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) is Annotated:
        metadata += list(annotation.__metadata__)
        annotation = get_args(annotation)[0]
    shown = next((m.type for m in metadata if isinstance(m, Shown)), None)
    if shown is None:
        shown = _plain(annotation)
    bounds = {
        annotated_types.Ge: "≥",
        annotated_types.Gt: ">",
        annotated_types.Le: "≤",
        annotated_types.Lt: "<",
    }
    limits = [
        f"{sign} {getattr(m, attr)}"
        for m in metadata
        for kind, sign in bounds.items()
        if isinstance(m, kind)
        for attr in ("ge", "gt", "le", "lt")
        if hasattr(m, attr)
    ]
    text = shown + (f" {', '.join(limits)}" if limits else "")
    return text + (" (optional)" if optional else "")


def _plain(annotation: object) -> str:
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " | ".join(f"`{m.value}`" for m in annotation)
    if get_origin(annotation) is Literal:
        return " | ".join(f"`{v}`" for v in get_args(annotation))
    if get_origin(annotation) is dict:
        return "JSON object"
    names = {Path: "path", int: "integer", float: "number", bool: "true/false", str: "text"}
    names[date] = "date (YYYY-MM-DD)"
    return names.get(annotation, str(annotation))  # type: ignore[arg-type]


def default_text(field: FieldInfo) -> str:
    extra = field.json_schema_extra
    if isinstance(extra, dict) and "shown_default" in extra:
        return str(extra["shown_default"])  # depends on the machine (its memory)
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "none"
    if isinstance(value, Path) and value.is_relative_to(REPO_ROOT):
        return f"`{value.relative_to(REPO_ROOT)}/` (in the repository)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, dict):
        return f"`{json.dumps(value)}`"
    if isinstance(value, Enum):
        return f"`{value.value}`"
    return f"`{value}`"


def splice(readme: str, table: str) -> str:
    """``readme`` (any page holding the markers) with the text between them replaced."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the page lacks the markers {BEGIN!r} … {END!r}")
    return readme[: start + len(BEGIN)] + "\n" + table + readme[end:]


def main(argv: list[str]) -> int:
    """``python -m demand.configuration [PAGE]``: rewrite the settings table in the docs."""
    path = Path(argv[0] if argv else REPO_ROOT / "docs" / "reference" / "settings.md")
    before = path.read_text()
    after = splice(before, reference_table())
    if after != before:
        path.write_text(after)
    print(f"{path}: configuration reference {'rewritten' if after != before else 'up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
