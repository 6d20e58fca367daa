"""The docs site as a reader meets it: every quarantine reason the importer gives is explained,
the commands marked runnable run on the tiny retailer, and the strict build renders in a real
browser without errors (screenshots kept under build/screenshots/)."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.browser import render
from tests.servers import drop_database, require_servers

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MKDOCS = Path(sys.executable).parent / "mkdocs"

# ---------------------------------------------------------------- quarantine reasons


def reasons_in_code() -> set[str]:
    """Every reason the importer can give a row, read from its source: the reason of each
    row rule (``rules.append((condition, reason, column))``, either branch of a
    conditional reason) and the reasons written into SQL (``THEN 'reason|…``,
    ``'reason' AS reason``)."""
    found: set[str] = set()
    sources = [
        ROOT / "rawdata" / "importer.py",
        *sorted((ROOT / "rawdata" / "importing").glob("*.py")),
    ]
    for path in sources:
        text = path.read_text()
        found |= set(re.findall(r"THEN '([a-z_]+)\|", text))
        found |= set(re.findall(r"'([a-z_]+)' AS reason", text))
        for node in ast.walk(ast.parse(text)):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "append"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "rules"
                and node.args
                and isinstance(node.args[0], ast.Tuple)
            ):
                continue
            reason = node.args[0].elts[1]
            branches = [reason.body, reason.orelse] if isinstance(reason, ast.IfExp) else [reason]
            found |= {b.value for b in branches if isinstance(b, ast.Constant)}
    return found


def reasons_documented(page: str) -> set[str]:
    """The reasons in the first cell of the how-to's table of checks."""
    table = page.split("| reason | the row |", 1)[1].split("\n\n", 1)[0]
    return {
        name
        for line in table.splitlines()[2:]
        for name in re.findall(r"`([a-z_]+)`", line.split("|")[1])
    }


def test_every_quarantine_reason_is_explained_in_bring_your_own_data():
    in_code = reasons_in_code()
    # the reader of the source sees every kind of place a reason is given
    assert {"null_key", "missing_value", "negative_units", "not_period_start"} <= in_code
    assert {"duplicate_row", "conflicting_duplicate", "revision_out_of_order"} <= in_code
    assert "wrong_field_count" in in_code
    documented = reasons_documented((DOCS / "how-to" / "own-data.md").read_text())
    assert sorted(in_code - documented) == [], "given by the importer, not explained"
    assert sorted(documented - in_code) == [], "explained, but the importer never gives it"


# ---------------------------------------------------------------- benchmarks

BENCHMARK_FACTS = ("Peer", "Command", "Date", "Machine")


def benchmark_entries(page: str) -> dict[str, str]:
    """Each entry (a ``##`` or ``###`` section) of the benchmarks page: heading → its text."""
    parts = re.split(r"^(#{2,3} .+)$", page, flags=re.M)
    return {heading: text for heading, text in zip(parts[1::2], parts[2::2], strict=True)}


def missing_facts(text: str) -> list[str]:
    """What an entry does not state: its peer ("no peer measured" counts), the command, the
    date (YYYY-MM-DD) and the machine, each a ``- **Fact:**`` line of its own."""
    found = dict(re.findall(r"^- \*\*(\w+):\*\* (.+)$", text, flags=re.M))
    missing = [fact for fact in BENCHMARK_FACTS if not found.get(fact, "").strip()]
    if "Date" in found and not re.search(r"\d{4}-\d{2}-\d{2}", found["Date"]):
        missing.append("Date (no YYYY-MM-DD)")
    return missing


def test_every_benchmark_names_its_peer_command_date_and_machine():
    entries = benchmark_entries((DOCS / "benchmarks.md").read_text())
    assert len(entries) >= 15
    assert {h: m for h, text in entries.items() if (m := missing_facts(text))} == {}
    # the check itself: an entry without a peer, or with a date in words, is found
    assert missing_facts("- **Command:** `make x`\n- **Date:** 2026-12-06\n- **Machine:** a") == [
        "Peer"
    ]
    assert missing_facts(
        "- **Peer:** no peer measured\n- **Command:** `x`\n- **Date:** today\n- **Machine:** a"
    ) == ["Date (no YYYY-MM-DD)"]


# ---------------------------------------------------------------- runnable commands

RUNNABLE = re.compile(r"<!-- runnable -->\n```bash\n(.*?)```", re.DOTALL)
PAGES = ["quickstart.md", "how-to/own-data.md", "how-to/nightly.md"]


def runnable(page: str) -> list[str]:
    return RUNNABLE.findall((DOCS / page).read_text())


BLOCKS = [(page, i) for page in PAGES for i in range(len(runnable(page)))]


def test_the_pages_mark_their_commands_runnable():
    assert [page for page in PAGES if not runnable(page)] == []
    assert any("DEMAND_PROFILE=team" in block for block in runnable("quickstart.md"))
    assert any("demand import examples/weekly" in block for block in runnable("how-to/own-data.md"))


def _tiny_env(tmp_path: Path) -> dict[str, str]:
    """The tiny retailer in a data dir of its own, ``demand`` this checkout's CLI."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "demand").write_text(
        f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -m cli.main "$@"\n'
    )
    (bin_dir / "demand").chmod(0o755)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("DEMAND_")},
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "DEMAND_DATA_DIR": str(tmp_path / "data"),
        "DEMAND_SCALE": "tiny",
        # windows where the tiny retailer's model beats the baselines by a margin, so the
        # gates pass and the demo goes on to serve (tests/ops/test_team.py)
        "DEMAND_ITERATIONS": "300",
        "DEMAND_ORIGIN_EVERY_DAYS": "3",
        "DEMAND_TEST_DAYS": "28",
        "DEMAND_VALIDATION_DAYS": "21",
    }


def _team(env: dict[str, str], suffix: str) -> dict[str, str]:
    from cli.serve import free_port

    base = f"postgresql+psycopg://postgres@127.0.0.1:5432/demand_docs_{suffix}"
    return {
        **env,
        "DEMAND_FEAST_PROJECT": f"demand_docs_{suffix}",
        "DEMAND_FEAST_REGISTRY_URL": f"{base}_feast",
        "DEMAND_MLFLOW_BACKEND_STORE_URI": f"{base}_mlflow",
        "DEMAND_MLFLOW_SERVER_PORT": str(free_port()),
    }


def _forget_team(env: dict[str, str]) -> None:
    """Stop the block's tracking server, drop its databases and its Redis keys."""
    import redis

    subprocess.run(["demand", "team", "down"], env=env, capture_output=True, check=False)
    for name in ("FEAST_REGISTRY_URL", "MLFLOW_BACKEND_STORE_URI"):
        drop_database(env[f"DEMAND_{name}"])
    client = redis.Redis(host="127.0.0.1", port=6379)
    project = env["DEMAND_FEAST_PROJECT"].encode()
    keys = [k for k in client.scan_iter(count=5000) if k.endswith(project)]
    if keys:
        client.delete(*keys)


@pytest.mark.slow
@pytest.mark.parametrize(("page", "index"), BLOCKS)
def test_a_runnable_block_runs_on_the_tiny_retailer(page, index, tmp_path):
    block = runnable(page)[index]
    env = _tiny_env(tmp_path)
    team = "DEMAND_PROFILE=team" in block
    if team:
        require_servers()
        env = _team(env, uuid.uuid4().hex[:10])
    work = tmp_path / "work"
    work.mkdir()
    (work / "examples").symlink_to(ROOT / "examples")  # the pages name examples/ relatively
    try:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
    finally:
        if team:
            _forget_team({**env, "DEMAND_PROFILE": "team"})
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{page}, block {index + 1}:\n{block}\n{output[-4000:]}"
    assert "Traceback" not in output


# ---------------------------------------------------------------- the site in a browser


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(MKDOCS), "build", "--strict", "-f", str(config), "-d", str(site)],
        cwd=config.parent,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.slow
def test_a_broken_link_fails_the_strict_build(tmp_path):
    shutil.copytree(DOCS, tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    page = tmp_path / "docs" / "quickstart.md"
    page.write_text(page.read_text() + "\nSee [the monitor](how-to/monitoring.md).\n")
    done = _build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0
    assert "how-to/monitoring.md" in done.stdout + done.stderr


@pytest.mark.slow
def test_the_site_builds_strict_and_its_pages_render_without_errors():
    site = ROOT / "build" / "site"
    done = _build(ROOT / "mkdocs.yml", site)
    assert done.returncode == 0, done.stdout + done.stderr
    screenshots = ROOT / "build" / "screenshots"
    pages = {
        "index.html": "demand",
        "quickstart/index.html": "Quickstart",
        "reference/settings/index.html": "Settings",
    }
    for page, title in pages.items():
        name = page.replace("/index.html", "").replace(".html", "").replace("/", "-")
        rendered = render(site / page, screenshots / f"{name}.png")
        assert rendered.problems == [], page
        assert rendered.title.startswith(title), rendered.title
        assert rendered.screenshot.stat().st_size > 0
    # the architecture diagram is an image the home page loads (a broken one is a failed
    # request above); the settings page has a row per setting
    assert 'src="images/architecture.svg"' in (site / "index.html").read_text()
    assert (site / "reference" / "settings" / "index.html").read_text().count("<tr>") > 50


def test_the_readme_links_into_the_docs_and_every_link_resolves():
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if not t.startswith(("http://", "https://"))]
    assert "docs/quickstart.md" in local and "docs/images/architecture.svg" in local
    assert [t for t in local if not (ROOT / t).exists()] == []
    assert len(readme.splitlines()) <= 200
