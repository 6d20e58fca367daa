"""`demand bento build`: a Bento holding the service, the served model and the feature repo config.

The model is imported from the registry into the Bento model store with
``bentoml.mlflow`` (labelled with its MLflow name and version, the feature
contract in its metadata), so the Bento needs no MLflow registry at run time:
only the online store, found through DEMAND_DATA_DIR on the machine it runs on.
BENTOML_HOME is the settings' ``bentoml_home`` (inside the data directory).
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from pathlib import Path

from demand.settings import REPO_ROOT, Settings
from deploy.container import PYTHON, PipIndex, pip_index
from feastext.bentoml_build import bento_env
from serving import model_loader

BENTO_NAME = "demand_forecast_service"
SERVICE = "serving/service.py"
# the Feast repo's declarations and profiles: read by Feast at run time, not imported
FEATURE_REPO = [
    "feature_repo/*.py",
    "feature_repo/feature_store.yaml",
    "feature_repo/feature_store.team.yaml",
]
REQUIREMENTS = "deploy/requirements.txt"  # see deploy/requirements.py
DOCKERFILE_TEMPLATE = "deploy/Dockerfile.template"


def sources(root: Path = REPO_ROOT, entry: str = SERVICE) -> list[str]:
    """What the Bento carries: the service module, every project module it imports
    (directly or through another, imports inside functions included) with their packages'
    ``__init__.py``, and the Feast repo. Computed, so the image carries only the service."""
    first_party = {p.parent.name for p in root.glob("*/__init__.py")}
    seen: set[Path] = set()
    todo = [root / entry]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in _imported_modules(path, first_party):
            parts = module.split(".")
            for depth in range(1, len(parts) + 1):
                base = root.joinpath(*parts[:depth])
                for candidate in (base / "__init__.py", base.with_suffix(".py")):
                    if candidate.is_file() and candidate not in seen:
                        todo.append(candidate)
    return sorted(p.relative_to(root).as_posix() for p in seen) + FEATURE_REPO


def _imported_modules(path: Path, first_party: set[str]) -> set[str]:
    """The project modules ``path`` imports: ``import a.b``, ``from a.b import c`` (and
    ``a.b.c``, in case ``c`` is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {m for m in found if m.split(".")[0] in first_party}


@dataclass(frozen=True)
class Built:
    bento: str
    base_image: str | None
    model: str
    mlflow_name: str
    mlflow_version: str
    bentoml_home: str


def use_bentoml_home(settings: Settings) -> None:
    """Point BentoML at DATA_DIR/bentoml; before bentoml is imported, as it reads this once."""
    settings.bentoml_home.mkdir(parents=True, exist_ok=True)
    os.environ["BENTOML_HOME"] = str(settings.bentoml_home)


def python_options(index: PipIndex) -> dict[str, object]:
    """Serving's own requirements (no test or training tools), from pip's index of this machine."""
    options: dict[str, object] = {
        "requirements_txt": REQUIREMENTS,
        "lock_packages": False,  # the file is pinned already, from requirements.lock
        # the file is the whole closure; --no-deps keeps what it leaves out out
        "pip_args": "--no-deps",
    }
    if index.index_url:
        options["index_url"] = index.index_url
    if index.extra_index_urls:
        options["extra_index_url"] = list(index.extra_index_urls)
    if index.trusted_hosts:
        options["trusted_host"] = list(index.trusted_hosts)
    return options


def docker_options(base_image: str | None) -> dict[str, object]:
    """None: BentoML's default base image (Python from Docker Hub's python image)."""
    options: dict[str, object] = {"dockerfile_template": DOCKERFILE_TEMPLATE}
    if base_image:
        options["base_image"] = base_image
    else:
        options["python_version"] = PYTHON
    return options


def build(
    settings: Settings,
    alias: str | None = None,
    version: str | None = None,
    base_image: str | None = None,
    index: PipIndex | None = None,
) -> Built:
    """A Bento of the model ``version`` (default: the alias's); ``base_image`` default:
    the settings' ``container_base_image``; ``index``: pip's on this machine."""
    use_bentoml_home(settings)
    import bentoml

    found = model_loader.resolve_version(
        settings, None if version else alias or settings.serve_alias, version
    )
    # refuse to package a model the online store cannot serve, as the service would
    contract = model_loader.load(settings, alias=alias, version=str(found.version)).contract
    labels = {
        model_loader.LABEL_NAME: found.name,
        model_loader.LABEL_VERSION: str(found.version),
        "mlflow_run_id": found.run_id or "",
    }
    if alias and not version:
        labels["mlflow_alias"] = alias
    model = bentoml.mlflow.import_model(
        found.name,
        f"models:/{found.name}/{found.version}",
        labels=labels,
        metadata={model_loader.CONTRACT_METADATA: contract.to_json()},
    )
    bento = bentoml.bentos.build(
        "serving.service:DemandForecast",
        name=BENTO_NAME,
        labels=labels,
        include=sources(),  # paths relative to build_ctx, as BentoML requires
        models=[str(model.tag)],
        python=python_options(index or pip_index()),
        docker=docker_options(base_image or settings.container_base_image),
        envs=[bento_env("DEMAND_SERVE_BENTO_MODEL", str(model.tag))],
        build_ctx=str(REPO_ROOT),
    )
    return Built(
        str(bento.tag),
        base_image or settings.container_base_image,
        str(model.tag),
        found.name,
        str(found.version),
        str(settings.bentoml_home),
    )
