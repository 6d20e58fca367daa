"""`demand serve`, `demand bento …` (build, containerize, base-image), the serving part of the demo.

The service always runs under ``bentoml serve`` (a subprocess with the settings
in its environment), the same way a Bento runs it, so there is one way to start it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from demand.console import UserError, console, friendly
from demand.settings import REPO_ROOT, ModelVersion, Settings, get_settings
from deploy.container import BACKENDS
from ops.processes import Children, exit_code, free_port, post_json, stop_group, wait_ready

SERVICE = "serving.service:DemandForecast"

app = typer.Typer(help="Serve forecasts over HTTP with BentoML.", no_args_is_help=True)
bento_app = typer.Typer(help="Package the service and the model as a Bento.", no_args_is_help=True)


def server_env(
    settings: Settings,
    alias: str | None = None,
    version: str | None = None,
    workers: int = 1,
    threads: int = 4,
    access_log: bool = True,
) -> dict[str, str]:
    """The environment a `bentoml serve` of this service reads its configuration from."""
    env = dict(os.environ)
    env.update(
        DEMAND_DATA_DIR=str(settings.data_dir),
        DEMAND_FEATURE_REPO=str(settings.feature_repo),
        # the profile and its stores, spelled out: a team profile set only in a .env the
        # service's working directory lacks must not reach `bentoml serve` as embedded
        DEMAND_PROFILE=settings.profile.value,
        DEMAND_FEAST_PROJECT=settings.feast_project,
        DEMAND_REDIS_URL=settings.redis_url,
        DEMAND_FEAST_REGISTRY_URL=settings.feast_registry_url,
        DEMAND_MODEL_NAME=settings.model_name,
        DEMAND_MLFLOW_TRACKING_URI=settings.tracking_uri,
        DEMAND_SERVE_MAX_ITEMS=str(settings.serve_max_items),
        DEMAND_SERVE_RELOAD_SECONDS=str(settings.serve_reload_seconds),
        DEMAND_SERVE_FEATURE_LOG=str(settings.serve_feature_log).lower(),
        DEMAND_SERVE_FEATURE_LOG_DIR=str(settings.feature_log_dir),
        BENTOML_HOME=str(settings.bentoml_home),
        BENTOML_DO_NOT_TRACK="true",
        BENTOML_CONFIG_OPTIONS=" ".join(
            [
                f"services.demand_forecast.workers={workers}",
                f"services.demand_forecast.threads={threads}",
                f"services.demand_forecast.logging.access.enabled={str(access_log).lower()}",
            ]
        ),
    )
    if version or settings.serve_version:
        env["DEMAND_SERVE_VERSION"] = str(version or settings.serve_version)
    env["DEMAND_SERVE_ALIAS"] = alias or settings.serve_alias
    return env


Backend = StrEnum("Backend", {name: name for name in BACKENDS})


def _version(value: str | None) -> str | None:
    """--version: a registry version number, checked as DEMAND_SERVE_VERSION is."""
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(ModelVersion).validate_python(value)
    except ValidationError as error:
        raise typer.BadParameter(error.errors()[0]["msg"].removeprefix("Value error, ")) from None


VersionOption = Annotated[str | None, typer.Option(callback=_version, help="Package this version")]


def serve_command(host: str, port: int) -> list[str]:
    bentoml = Path(sys.executable).with_name("bentoml")
    return [str(bentoml), "serve", SERVICE, "--host", host, "--port", str(port)]


def start_server(
    settings: Settings,
    port: int,
    log: Path | None = None,
    children: Children | None = None,
    **options,
) -> subprocess.Popen:
    """`bentoml serve` in the background, in its own process group (so stop() ends it all).

    Started through ``children`` when given, so a signal to this process stops it too.
    """
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 (the child owns it)
    args = serve_command("127.0.0.1", port)
    popen = {"cwd": REPO_ROOT, "env": server_env(settings, **options), "stdout": out}
    if children is not None:
        return children.start(args, stderr=subprocess.STDOUT, **popen)
    return subprocess.Popen(args, stderr=subprocess.STDOUT, start_new_session=True, **popen)


def stop(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM the server's process group (BentoML forks workers), then SIGKILL if it hangs."""
    stop_group(process, timeout)


def demo(settings: Settings, print_: Callable[[str], None] = print, port: int = 0) -> None:
    """Start the service, ask for a few forecasts, print the answers, stop it."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log = settings.data_dir / "serve-demo.log"
    print_(f"starting the service on {url} (log: {log})")
    try:
        # SIGTERM or Ctrl-C while the demo serves stops the service too
        with Children() as children:
            process = start_server(settings, port, log=log, children=children, access_log=False)
            _ask_demo_forecasts(settings, url, process, print_)
    finally:
        print_("service stopped")


def _ask_demo_forecasts(
    settings: Settings, url: str, process: subprocess.Popen, print_: Callable[[str], None]
) -> None:
    import pandas as pd

    wait_ready(url, process)
    with urllib.request.urlopen(f"{url}/metadata", timeout=10) as response:
        meta = json.loads(response.read())
    model = meta["model"]
    print_(f"serving {model['name']} v{model['version']} (@{model['alias']})")
    keys = pd.read_parquet(
        settings.feature_dir / "store_product_daily.parquet", columns=["store_id", "product_id"]
    ).drop_duplicates()
    origin = pd.Timestamp(meta["materialized_at"]).date() - pd.Timedelta(days=1)
    items = [
        {"store_id": s, "product_id": p, "date": str(origin + pd.Timedelta(days=h))}
        for (s, p), h in zip(keys.head(3).itertuples(index=False), (1, 3, 7), strict=False)
    ]
    items.append({"store_id": "S_UNKNOWN", "product_id": "P0000", "date": items[0]["date"]})
    status, answer = post_json(f"{url}/forecast", {"items": items})
    print_(f"POST /forecast → {status}")
    for f in answer.get("forecasts", []):
        units = "—" if f["units"] is None else f"{f['units']:.2f}"
        print_(f"  {f['store_id']} × {f['product_id']} on {f['date']}: {units} ({f['status']})")


@app.command()
@friendly
def serve(
    port: Annotated[
        int | None,
        typer.Option("--port", "-p", min=1, max=65535, help="Default: DEMAND_SERVE_PORT"),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Default: DEMAND_SERVE_HOST")] = None,
    alias: Annotated[str | None, typer.Option(help="Serve this registry alias")] = None,
    version: Annotated[
        str | None, typer.Option(callback=_version, help="Serve this version (no reload)")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="BentoML worker processes")] = 1,
    threads: Annotated[int, typer.Option(min=1, help="Request threads per worker")] = 4,
    access_log: Annotated[bool, typer.Option(help="Log every request")] = True,
) -> None:
    """Start the forecast service (production alias by default) in the foreground."""
    settings = get_settings()
    env = server_env(settings, alias, version, workers, threads, access_log)
    # check before BentoML starts workers: a clear error instead of a worker crash loop
    from serving import model_loader

    model_loader.load(settings, alias=env["DEMAND_SERVE_ALIAS"], version=version)
    command = serve_command(host or settings.serve_host, port or settings.serve_port)
    # a child in its own group, stopped with all its workers on SIGTERM or Ctrl-C
    with Children() as children:
        server = children.start(command, cwd=REPO_ROOT, env=env)
        server.wait()
    raise typer.Exit(exit_code(server))


@bento_app.command("build")
@friendly
def bento_build(
    alias: Annotated[str | None, typer.Option(help="Package this alias's version")] = None,
    version: VersionOption = None,
) -> None:
    """Build a Bento with the service, the model (from the registry) and the feature repo config."""
    from deploy import bento

    built = bento.build(get_settings(), alias=alias, version=version)
    console.print(
        f"built Bento {built.bento} with model {built.model} "
        f"({built.mlflow_name} v{built.mlflow_version}) in {built.bentoml_home}\n"
        f"run it: BENTOML_HOME={built.bentoml_home} bentoml serve {built.bento}"
    )


@bento_app.command("containerize")
@friendly
def bento_containerize(
    backend: Annotated[Backend, typer.Option(help="docker is BentoML's default")] = Backend.docker,
    base_image: Annotated[
        str | None,
        typer.Option(
            help="The Bento's base image (Python 3.11); default: DEMAND_CONTAINER_BASE_IMAGE"
        ),
    ] = None,
    tag: Annotated[
        str | None, typer.Option(help="Image name; default: DEMAND_CONTAINER_IMAGE")
    ] = None,
    alias: Annotated[str | None, typer.Option(help="Package this alias's version")] = None,
    version: VersionOption = None,
) -> None:
    """Build an OCI image of the production Bento with `bentoml containerize`."""
    from deploy import bento, container
    from serving import model_loader

    settings = get_settings()
    base = base_image or settings.container_base_image
    image = tag or settings.container_image
    # what is missing, cheapest first and all before any build: the model, the engine, the base
    model_loader.resolve_version(
        settings, None if version else alias or settings.serve_alias, version
    )
    container.require_backend(backend)
    if base:
        container.check_base_image(backend, base)
    console.print(f"› building the Bento ({base or 'BentoML default base image'})")
    built = bento.build(settings, alias=alias, version=version, base_image=base)
    console.print(f"› built Bento {built.bento} ({built.mlflow_name} v{built.mlflow_version})")
    seconds = container.containerize(
        built.bento, image, backend, settings.bentoml_home, progress=console.print
    )
    engine = container.runner(backend)
    size = container.image_size(engine, image) / 1e9
    console.print(
        f"built image {image} from Bento {built.bento} in {seconds:.0f} s, {size:.2f} GB\n"
        f"run it: {engine} run --rm --network host -e DEMAND_DATA_DIR=/data "
        f"-v $DEMAND_DATA_DIR:/data:ro {image}  (docs/how-to/container.md)"
    )


@bento_app.command("base-image")
@friendly
def bento_base_image(
    name: Annotated[str, typer.Option(help="Image name")] = "localhost/demand-base:bookworm",
    if_missing: Annotated[
        bool, typer.Option(help="Keep an existing image that has Python 3.11")
    ] = False,
) -> None:
    """Build the Bento's base image from Debian bookworm's packages (debootstrap, no registry)."""
    from deploy import container

    settings = get_settings()
    if if_missing:
        try:
            container.check_base_image("podman", name)
            console.print(f"base image {name} is there (Python {container.PYTHON}); kept")
            return
        except UserError:
            pass  # missing or wrong: build it
    seconds = container.build_base_image(
        name, settings.container_debian_mirror, progress=lambda m: console.print(f"› {m}")
    )
    console.print(
        f"built {name} in {seconds:.0f} s; use it: DEMAND_CONTAINER_BASE_IMAGE={name} "
        "demand bento containerize --backend buildah"
    )
