"""`make container-smoke`: the service image, served against the team and the embedded profile.

    python -m deploy.smoke [--base-image NAME] [--image NAME] [--workdir DIR]

1. The team profile on the tiny retailer (`demand demo`: Redis, the Feast SQL registry on
   PostgreSQL, a tracking server, in databases, a Feast project and a port of the smoke's
   own), so the production model lives behind a tracking server; the embedded profile's
   data directory from the same seed (`demand features`).
2. `demand bento containerize --backend buildah` from the team's registry: one image.
3. Per profile: the image under podman (team: its stores through DEMAND_* variables;
   embedded: the data directory mounted read-only) and `bentoml serve` of the same Bento
   outside it. Both must be ready, answer the same forecasts identically, and the
   container's /metadata must name the model version baked in.
4. Bad input: an image without Python refused as a base image; a container whose stores
   are unreachable never serves, and its log says which store.
5. Everything it created is removed (containers, tracking server, databases, Redis keys);
   the image and the data under --workdir stay, for a look at what failed.

Exit 0 when every check passed; 1 with the failed check and the container's log otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from demand.console import UserError
from demand.settings import REPO_ROOT, get_settings
from deploy import container
from ops.processes import free_port, post_json, wait_ready
from ops.processes import stop_group as stop

DEMAND = str(Path(sys.executable).with_name("demand"))
BENTOML = str(Path(sys.executable).with_name("bentoml"))
COLD_START_GOAL_S = 15.0


class SmokeFailed(Exception):
    """A check failed; the message says which and what was seen."""


def say(message: str) -> None:
    print(f"› {message}", flush=True)


def check(ok: bool, message: str) -> None:
    if not ok:
        raise SmokeFailed(message)
    print(f"  ✓ {message}", flush=True)


@dataclass
class Profile:
    """One way to run the service: the host's environment for `bentoml serve`, the
    container's environment and read-only mounts."""

    name: str
    host_env: dict[str, str]
    container_env: dict[str, str]
    mounts: list[tuple[Path, str]] = field(default_factory=list)
    data_dir: Path = Path()


@dataclass
class Stage:
    """What the smoke prepared: the two profiles' data, the Bento and its image."""

    workdir: Path
    image: str
    team: Profile
    embedded: Profile
    databases: list[str]
    bento: str = ""
    bentoml_home: Path = Path()
    version: str = ""
    model_name: str = ""


def _clean_environ() -> dict[str, str]:
    """This process's environment without DEMAND_* (the smoke spells out every setting)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DEMAND_")}


def plan(workdir: Path, image: str) -> Stage:
    """The profiles' settings: the team's servers from this machine's settings, in
    databases and a Feast project named for this run."""
    from sqlalchemy.engine import make_url

    here = get_settings()
    run = f"smoke_{uuid.uuid4().hex[:8]}"
    server = make_url(here.feast_registry_url)
    feast_db = server.set(database=f"demand_{run}_feast").render_as_string(hide_password=False)
    mlflow_db = server.set(database=f"demand_{run}_mlflow").render_as_string(hide_password=False)
    port = free_port()
    tracking = f"http://127.0.0.1:{port}"
    stores = {
        "DEMAND_PROFILE": "team",
        "DEMAND_REDIS_URL": here.redis_url,
        "DEMAND_FEAST_REGISTRY_URL": feast_db,
        "DEMAND_FEAST_PROJECT": f"demand_{run}",
        "DEMAND_MLFLOW_TRACKING_URI": tracking,
    }
    tiny = {
        "DEMAND_SCALE": "tiny",
        "DEMAND_SEED": "7",
        # windows where the tiny retailer's model passes the demo's gates (tests/ops/test_team.py)
        "DEMAND_ITERATIONS": "300",
        "DEMAND_ORIGIN_EVERY_DAYS": "3",
        "DEMAND_TEST_DAYS": "28",
        "DEMAND_VALIDATION_DAYS": "21",
    }
    team_dir = workdir / "team"
    team = Profile(
        "team",
        host_env={
            **_clean_environ(),
            **tiny,
            **stores,
            "DEMAND_DATA_DIR": str(team_dir),
            "DEMAND_MLFLOW_BACKEND_STORE_URI": mlflow_db,
            "DEMAND_MLFLOW_SERVER_PORT": str(port),
        },
        container_env=stores,
        data_dir=team_dir,
    )
    embedded_dir = workdir / "embedded"
    embedded = Profile(
        "embedded",
        host_env={**_clean_environ(), **tiny, "DEMAND_DATA_DIR": str(embedded_dir)},
        container_env={"DEMAND_DATA_DIR": "/data"},
        mounts=[(embedded_dir, "/data")],
        data_dir=embedded_dir,
    )
    return Stage(workdir, image, team, embedded, [feast_db, mlflow_db])


def demand(env: dict[str, str], *args: str, log: Path) -> None:
    """A `demand` command, its output in ``log``; its tail in the failure when it fails."""
    started = time.monotonic()
    with log.open("ab") as out:
        done = subprocess.run([DEMAND, *args], env=env, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise SmokeFailed(f"`demand {' '.join(args)}` failed (log {log}):\n{tail}")
    say(f"demand {' '.join(args)}: {time.monotonic() - started:.0f} s")


def prepare(stage: Stage, base_image: str) -> dict[str, float]:
    """Data for both profiles, then the image; returns the seconds of each step."""
    seconds: dict[str, float] = {}
    logs = stage.workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    team, embedded = stage.team, stage.embedded
    started = time.monotonic()
    say("team profile: `demand demo` (tracking server, Redis, Feast registry on PostgreSQL)")
    demand(team.host_env, "demo", log=logs / "team-demo.log")
    seconds["team demo"] = time.monotonic() - started
    started = time.monotonic()
    say("embedded profile: `demand features` on the same retailer")
    demand(embedded.host_env, "features", log=logs / "embedded-features.log")
    seconds["embedded features"] = time.monotonic() - started
    started = time.monotonic()
    say(f"image {stage.image} on {base_image}")
    build_env = {**team.host_env, "DEMAND_CONTAINER_BASE_IMAGE": base_image}
    demand(
        build_env,
        "bento",
        "containerize",
        "--backend",
        "buildah",
        "--tag",
        stage.image,
        log=logs / "containerize.log",
    )
    seconds["image build"] = time.monotonic() - started
    stage.bentoml_home = team.data_dir / "bentoml"
    bentos = stage.bentoml_home / "bentos" / "demand_forecast_service"
    stage.bento = f"demand_forecast_service:{(bentos / 'latest').read_text().strip()}"
    labels = _bento_yaml(stage)["labels"]
    stage.version, stage.model_name = labels["mlflow_version"], labels["mlflow_name"]
    say(f"Bento {stage.bento}: {stage.model_name} v{stage.version}")
    return seconds


def _bento_yaml(stage: Stage) -> dict:
    import yaml

    name, version = stage.bento.split(":")
    return yaml.safe_load(
        (stage.bentoml_home / "bentos" / name / version / "bento.yaml").read_text()
    )


# -- serving both ways --------------------------------------------------------------------------


def start_outside(stage: Stage, profile: Profile, port: int, log: Path) -> subprocess.Popen:
    """`bentoml serve` of the same Bento on this machine, with the profile's settings."""
    env = {
        **profile.host_env,
        "BENTOML_HOME": str(stage.bentoml_home),
        "BENTOML_DO_NOT_TRACK": "true",
        "DEMAND_SERVE_BENTO_MODEL": _bento_yaml(stage)["envs"][0]["value"],
    }
    out = log.open("ab")
    return subprocess.Popen(
        [BENTOML, "serve", stage.bento, "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=stage.workdir,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@contextmanager
def serving(stage: Stage, profile: Profile):
    """The image and `bentoml serve` of the same Bento, both ready: (container, outside url,
    seconds from `podman run` to a ready container)."""
    logs = stage.workdir / "logs"
    outside_port, inside_port = free_port(), free_port()
    name = f"demand-smoke-{profile.name}-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    inside = container.run(stage.image, name, inside_port, profile.container_env, profile.mounts)
    outside = None
    try:
        try:
            wait_ready(inside.url, timeout=120)
        except TimeoutError:
            raise SmokeFailed(
                f"the container ({profile.name}) is not ready after 120 s; its log:\n"
                + _tail(inside.logs())
            ) from None
        # the cold start alone: the outside server starts after, not competing for the CPUs
        cold = time.monotonic() - started
        outside = start_outside(stage, profile, outside_port, logs / f"outside-{profile.name}.log")
        wait_ready(f"http://127.0.0.1:{outside_port}", outside, timeout=180)
        yield inside, f"http://127.0.0.1:{outside_port}", cold
    except SmokeFailed:
        raise
    except Exception as error:
        raise SmokeFailed(
            f"{profile.name}: {type(error).__name__}: {error}\ncontainer log:\n"
            + _tail(inside.logs())
        ) from None
    finally:
        (logs / f"container-{profile.name}.log").write_text(inside.logs())
        inside.stop()
        if outside is not None:
            stop(outside)


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def requests_for(profile: Profile) -> list[list[dict]]:
    """Bodies: single items over the horizon, a batch, and a key the store lacks."""
    import pandas as pd

    daily = pd.read_parquet(
        profile.data_dir / "features" / "store_product_daily.parquet",
        columns=["store_id", "product_id", "event_timestamp"],
    )
    last = daily["event_timestamp"].max()
    keys = daily[daily["event_timestamp"] == last][["store_id", "product_id"]].drop_duplicates()
    keys = list(keys.sample(min(40, len(keys)), random_state=0).itertuples(index=False))
    origin = (last - pd.Timedelta(days=1)).date()

    def item(k: int, store: str, product: str) -> dict:
        return {
            "store_id": store,
            "product_id": product,
            "date": str(origin + pd.Timedelta(days=1 + k % 7)),
        }

    singles = [[item(k, s, p)] for k, (s, p) in enumerate(keys[:10])]
    batch = [item(k, s, p) for k, (s, p) in enumerate(keys)]
    unknown = [item(0, "S_UNKNOWN", "P0000"), item(1, *keys[0])]
    return [*singles, batch, unknown]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def check_profile(stage: Stage, profile: Profile) -> dict[str, float]:
    say(f"{profile.name} profile: the image against `bentoml serve` of the same Bento")
    with serving(stage, profile) as (inside, outside, cold):
        # a figure, not a check: a loaded CI machine must not fail the smoke on it
        say(f"container ready {cold:.1f} s after `podman run` (goal ≤ {COLD_START_GOAL_S:.0f} s)")
        bodies = requests_for(profile)
        answers = []
        for items in bodies:
            status_in, inside_answer = post_json(f"{inside.url}/forecast", {"items": items})
            status_out, outside_answer = post_json(f"{outside}/forecast", {"items": items})
            if (status_in, inside_answer) != (status_out, outside_answer):
                raise SmokeFailed(
                    f"{profile.name}: the container answered {status_in} {inside_answer!r:.600} "
                    f"but bentoml serve {status_out} {outside_answer!r:.600} for {items!r:.300}"
                )
            answers.append((status_in, inside_answer))
        ok = [
            f
            for status, a in answers
            if status == 200
            for f in a["forecasts"]
            if f["status"] == "ok"
        ]
        check(
            all(status == 200 for status, _ in answers) and len(ok) >= 50,
            f"{len(bodies)} requests answered identically inside and outside "
            f"({len(ok)} forecasts ok, the unknown key missing_features in both)",
        )
        meta = get_json(f"{inside.url}/metadata")
        model = meta["model"]
        check(
            (model["name"], model["version"]) == (stage.model_name, stage.version),
            f"/metadata names {model['name']} v{model['version']}, the version baked in",
        )
        uid = container.engine("podman", "exec", inside.name, "id", "-u").stdout.strip()
        check(uid not in ("", "0"), f"the service runs as uid {uid}, not root")
    return {f"cold start {profile.name} s": cold}


# -- bad input ----------------------------------------------------------------------------------


def check_unreachable_stores(stage: Stage) -> None:
    """A container whose Redis does not answer stays up, not ready, and its log says why."""
    say("a container whose stores do not answer")
    env = {**stage.team.container_env, "DEMAND_REDIS_URL": f"127.0.0.1:{free_port()}"}
    name = f"demand-smoke-unreachable-{uuid.uuid4().hex[:6]}"
    running = container.run(stage.image, name, free_port(), env)
    try:
        deadline = time.monotonic() + 90
        state, code = "", None
        while time.monotonic() < deadline:
            state = container.engine(
                "podman", "inspect", "--format", "{{.State.Status}}", name, check=False
            ).stdout.strip()
            code = _status(f"{running.url}/readyz")
            if code == 200:
                raise SmokeFailed("a container with no Redis reports ready")
            if code == 503 or state in ("exited", "stopped"):
                break
            time.sleep(1)
        log = running.logs()
        # the service waits for its stores (serving/service.py): not ready, retrying, never
        # a restart loop; the log names the store and the setting that points at it
        check(
            code == 503 and state == "running",
            f"no Redis: the container runs and answers /readyz 503 (it is "
            f"{state or 'unknown'}, /readyz {code or 'closed'})",
        )
        check(
            "not ready: " in log
            and "cannot reach the redis online store" in log
            and "DEMAND_REDIS_URL" in log,
            "no Redis: the container's log says it is not ready, that it cannot reach Redis "
            "and which setting points at it",
        )
    finally:
        (stage.workdir / "logs" / "container-unreachable.log").write_text(running.logs())
        running.stop()


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0


def check_base_without_python(stage: Stage) -> None:
    """`demand bento containerize` refuses a base image that has no Python 3.11."""
    say("a base image without Python")
    empty = "localhost/demand-smoke-no-python:latest"
    tar = subprocess.Popen(["tar", "-c", "-T", "/dev/null"], stdout=subprocess.PIPE)
    container.engine("podman", "import", "-", empty, stdin=tar.stdout)
    tar.wait()
    try:
        env = {**stage.team.host_env, "DEMAND_CONTAINER_BASE_IMAGE": empty}
        done = subprocess.run(
            [DEMAND, "bento", "containerize", "--backend", "buildah", "--tag", "localhost/never:x"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        check(
            done.returncode == 1
            and "has no python3" in done.stderr
            and "make base-image" in done.stderr,
            f"refused: {(done.stderr.strip().splitlines() or ['(nothing)'])[-1]}",
        )
    finally:
        container.engine("podman", "rmi", "--force", empty, check=False)


# -- cleanup ------------------------------------------------------------------------------------


def cleanup(stage: Stage) -> None:
    """Stop the tracking server; drop the run's databases and its Feast project's Redis keys."""
    import psycopg
    import redis

    from demand.servers import Database

    subprocess.run(
        [DEMAND, "team", "down"], env=stage.team.host_env, capture_output=True, check=False
    )
    for url in stage.databases:
        database = Database(url)
        try:
            with psycopg.connect(database.conninfo("postgres"), autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')
        except psycopg.Error as error:
            print(f"  (could not drop {database.name}: {error})")
    host, _, port = stage.team.container_env["DEMAND_REDIS_URL"].split(",")[0].partition(":")
    project = stage.team.container_env["DEMAND_FEAST_PROJECT"].encode()
    try:
        client = redis.Redis(host=host, port=int(port or 6379))
        keys = [k for k in client.scan_iter(count=5000) if k.endswith(project)]
        if keys:
            client.delete(*keys)
    except redis.RedisError as error:
        print(f"  (could not remove the Redis keys of {project.decode()}: {error})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-image", default="localhost/demand-base:bookworm")
    parser.add_argument("--image", default="localhost/demand-forecast-service:smoke")
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/demand-container-smoke"))
    args = parser.parse_args(argv)
    import shutil

    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    stage = plan(args.workdir, args.image)
    started = time.monotonic()
    try:
        seconds = prepare(stage, args.base_image)
        size = container.image_size("podman", stage.image)
        say(f"image {stage.image}: {size / 1e9:.2f} GB")
        for profile in (stage.team, stage.embedded):
            seconds |= check_profile(stage, profile)
        check_unreachable_stores(stage)
        check_base_without_python(stage)
    except (SmokeFailed, UserError) as error:
        print(f"container smoke FAILED: {error}", file=sys.stderr)
        return 1
    finally:
        cleanup(stage)
    figures = ", ".join(f"{k} {v:.1f}" for k, v in seconds.items())
    took = time.monotonic() - started
    print(f"container smoke passed in {took:.0f} s ({figures}; image {size / 1e9:.2f} GB)")
    return 0


if __name__ == "__main__":
    os.chdir(REPO_ROOT)
    sys.exit(main())
