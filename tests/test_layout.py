"""The house as documented: the README's layout tree names every package and module on disk
(and nothing else), and library internals are used only in feastext/."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PINNED = ("feast", "ibis", "redis", "duckdb", "bentoml", "mlflow", "pyspark")


def packages() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [*config["tool"]["importlinter"]["root_packages"], "feature_repo"]


def on_disk() -> set[str]:
    """Every package, sub-package and module of the project, as paths ("features/plan.py")."""
    found = set()
    for package in packages():
        found.add(f"{package}/")
        for path in (ROOT / package).rglob("*.py"):
            relative = path.relative_to(ROOT)
            if "__pycache__" in relative.parts:
                continue
            for depth in range(2, len(relative.parts)):
                found.add("/".join(relative.parts[:depth]) + "/")
            if path.name != "__init__.py":
                found.add(relative.as_posix())
    return found


def documented(readme: str) -> set[str]:
    """The paths the README's layout tree names: an entry per line, two spaces a level."""
    section = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    tree = section.split("```", 2)[1]
    named, parents = set(), []
    for line in tree.splitlines():
        match = re.match(r"^( *)(\S+)", line)
        if not match or not re.fullmatch(r"[\w.]+/|[\w.]+\.py", match.group(2)):
            continue  # a continued description
        level = len(match.group(1)) // 2
        parents = [*parents[:level], match.group(2)]
        named.add("".join(parents))
    return named


def test_the_readme_layout_names_every_package_and_module_and_nothing_else():
    named = documented((ROOT / "README.md").read_text())
    disk = on_disk()
    project = {n for n in named if n.split("/")[0] in packages()}
    assert sorted(disk - project) == [], "on disk, missing from the README's layout"
    assert sorted(project - disk) == [], "in the README's layout, not on disk"


def test_the_layout_check_sees_a_module_missing_from_the_readme():
    readme = (ROOT / "README.md").read_text().replace("  plan.py ", "  planned.py ")
    named = documented(readme)
    assert "features/plan.py" not in named and "features/planned.py" in named


def private_uses(path: Path) -> list[str]:
    """Imports of a pinned library's private names or modules (``_x``, ``_internal``), and
    attributes read with a private name from a library object (``conn._sock``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            library = node.module.split(".")[0].lstrip("_")
            if library.split("_")[0] not in PINNED and library not in PINNED:
                continue
            parts = node.module.split(".")[1:] + [a.name for a in node.names]
            if any(p.startswith("_") for p in parts) or node.module.startswith("_"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} from {node.module}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0].lstrip("_") in PINNED and any(p.startswith("_") for p in parts):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} import {alias.name}")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value in ("_sock", "_reader", "_parser")
        ):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    return found


def test_library_internals_are_used_only_in_feastext():
    outside = [
        use
        for package in packages()
        if package != "feastext"
        for path in sorted((ROOT / package).rglob("*.py"))
        for use in private_uses(path)
    ]
    assert outside == []
    inside = [use for path in (ROOT / "feastext").rglob("*.py") for use in private_uses(path)]
    assert inside, "the check finds nothing even where internals are known to be used"


def test_every_feastext_module_says_what_it_relies_on_and_the_versions_checked():
    for path in sorted((ROOT / "feastext").glob("*.py")):
        if path.name == "__init__.py":
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert "Relies on (checked against" in doc, path.name


def test_the_gate_builds_training_sets_through_the_one_public_module():
    """registry/ reuses training's training-set construction (training/dataset.py) and its
    metrics, by public names only: no private name crosses between them."""
    crossing = []
    for path in sorted((ROOT / "registry").glob("*.py")):
        tree = ast.parse(path.read_text())
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("training"):
                for alias in node.names:
                    aliases[alias.asname or alias.name] = node.module
                    if alias.name.startswith("_") or node.module not in (
                        "training",
                        "training.dataset",
                        "training.metrics",
                    ):
                        crossing.append(f"{path.name}: from {node.module} import {alias.name}")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
            ):
                crossing.append(f"{path.name}: {node.value.id}.{node.attr}")
    assert crossing == []
