"""OCI images of the Bento: the base image, `bentoml containerize`, and running the image.

Every engine setting comes from the project's own files in ``deploy/`` (through
CONTAINERS_CONF and CONTAINERS_STORAGE_CONF), never the machine's global configuration;
the storage driver is overlay where the kernel mounts it, vfs elsewhere.
buildah builds and podman runs share that storage, so an image one builds the other runs.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from demand.console import UserError
from demand.settings import REPO_ROOT, get_settings

DEPLOY = REPO_ROOT / "deploy"
CONTAINERS_CONF = DEPLOY / "containers.conf"
STORAGE_CONFS = {"overlay": DEPLOY / "storage.conf", "vfs": DEPLOY / "storage-vfs.conf"}
BASE_CONTAINERFILE = DEPLOY / "Containerfile.base"
BACKENDS = ("docker", "buildah", "podman")
PYTHON = "3.11"  # the Python of the venv the lock was resolved for (pyproject, `make lock`)
DEBIAN_SUITE = "bookworm"  # its python3 is 3.11
DEBIAN_PACKAGES = "python3,python3-venv,python3-pip,ca-certificates"
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
TOOLS_HINT = (
    "install the container tools with `make container-tools` "
    "(apt-get install buildah podman runc debootstrap)"
)
BASE_HINT = "build one with `make base-image` (Debian bookworm's Python 3.11, no registry needed)"


def engine_environ(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every buildah/podman call runs in: the project's engine config."""
    env = dict(os.environ)
    env.update(
        CONTAINERS_CONF=str(CONTAINERS_CONF),
        CONTAINERS_STORAGE_CONF=str(STORAGE_CONFS[storage_driver()]),
    )
    env.update(extra or {})
    return env


@functools.cache
def storage_driver() -> str:
    """DEMAND_CONTAINER_STORAGE_DRIVER, or (auto) overlay where this kernel mounts it."""
    chosen = get_settings().container_storage_driver
    if chosen != "auto":
        return chosen
    return "overlay" if _overlay_mounts() else "vfs"


def _overlay_mounts() -> bool:
    """Mount an empty overlay and unmount it: what the overlay driver needs of the kernel."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    with tempfile.TemporaryDirectory(prefix="demand-overlay-", dir="/var/tmp") as tmp:
        parts = {name: Path(tmp) / name for name in ("lower", "upper", "work", "merged")}
        for path in parts.values():
            path.mkdir()
        options = f"lowerdir={parts['lower']},upperdir={parts['upper']},workdir={parts['work']}"
        done = subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", options, str(parts["merged"])],
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            return False
        subprocess.run(["umount", str(parts["merged"])], capture_output=True, check=False)
        return True


def require_tool(name: str, hint: str = TOOLS_HINT) -> str:
    found = shutil.which(name)
    if not found:
        raise UserError(f"{name} is not installed; {hint}")
    return found


def require_backend(backend: str) -> None:
    """The build engine is there (and, for Docker, its daemon answers)."""
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "docker":
        docker = require_tool(
            "docker", "install Docker, or use --backend buildah (`make container` does)"
        )
        done = subprocess.run(
            [docker, "info"], capture_output=True, text=True, timeout=30, check=False
        )
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["no answer"])[-1]
            raise UserError(
                f"no Docker daemon answers ({reason}); start it, or build without one: "
                "--backend buildah (`make container` does)"
            )
        return
    require_tool(backend)
    # buildah builds, podman checks the base image and runs: both share the storage
    require_tool("podman")


def runner(backend: str) -> str:
    """The engine that runs images built by ``backend`` (the same image store)."""
    return "docker" if backend == "docker" else "podman"


def engine(tool: str, *args: str, timeout: float | None = 120, check: bool = True, **kw):
    """One buildah/podman/docker command with the project's config; output captured."""
    done = subprocess.run(
        [require_tool(tool), *args],
        env=engine_environ(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kw,
    )
    if check and done.returncode != 0:
        raise UserError(f"`{tool} {' '.join(args[:3])} …` failed: {done.stderr.strip()[-800:]}")
    return done


def image_exists(tool: str, image: str) -> bool:
    return engine(tool, "image", "inspect", image, check=False).returncode == 0


def image_size(tool: str, image: str) -> int:
    return int(engine(tool, "image", "inspect", "--format", "{{.Size}}", image).stdout.strip())


def image_user(tool: str, image: str) -> str:
    return engine(tool, "image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip()


def python_of(tool: str, image: str) -> str | None:
    """The ``major.minor`` of the image's ``python3``, or None when it has none."""
    done = engine(
        tool,
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "python3",
        image,
        "-c",
        "import sys; print('%d.%d' % sys.version_info[:2])",
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def check_base_image(backend: str, image: str) -> None:
    """The base image is in the engine's store and carries the lock's Python."""
    tool = runner(backend)
    if not image_exists(tool, image):
        raise UserError(f"base image {image} is not in {tool}'s image store; {BASE_HINT}")
    found = python_of(tool, image)
    if found != PYTHON:
        has = f"Python {found}" if found else "no python3"
        raise UserError(
            f"base image {image} has {has}; the service's packages are locked for Python "
            f"{PYTHON}: {BASE_HINT}"
        )


# -- pip's index, carried into the image ---------------------------------------------------


@dataclass(frozen=True)
class PipIndex:
    """The package index pip uses on this machine: the image installs from the same one."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    skipped: tuple[str, ...] = field(default=(), compare=False)

    def pip_conf(self) -> str:
        lines = ["[global]"]
        if self.index_url:
            lines.append(f"index-url = {self.index_url}")
        if self.extra_index_urls:
            lines.append(f"extra-index-url = {' '.join(self.extra_index_urls)}")
        if self.trusted_hosts:
            lines.append(f"trusted-host = {' '.join(self.trusted_hosts)}")
        return "\n".join(lines) + "\n"

    def uv_toml(self) -> str:
        lines = []
        if self.index_url:
            lines.append(f'index-url = "{self.index_url}"')
        if self.extra_index_urls:
            lines.append(f"extra-index-url = {list(self.extra_index_urls)!r}".replace("'", '"'))
        if self.trusted_hosts:
            lines.append(f"allow-insecure-host = {list(self.trusted_hosts)!r}".replace("'", '"'))
        return "\n".join(lines) + "\n"


# pip config scopes, weakest first: a later scope overrides an earlier one
_SCOPES = ("global", "user", "site", ":env:")


def pip_index(config_list: str | None = None) -> PipIndex:
    """Index settings from `pip config list` (files and PIP_* variables).

    Only http(s) URLs travel into an image: a ``file://`` index or ``find-links`` names a
    directory of this machine that the build cannot see (they are reported as skipped).
    """
    if config_list is None:
        config_list = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        ).stdout
    found: dict[str, tuple[int, str]] = {}
    for line in config_list.splitlines():
        name, _, value = line.partition("=")
        scope, _, key = name.rpartition(".")
        key = key.replace("_", "-")
        if key not in ("index-url", "extra-index-url", "trusted-host"):
            continue
        rank = _SCOPES.index(scope) if scope in _SCOPES else 0
        if key not in found or rank >= found[key][0]:
            found[key] = (rank, value.strip().strip("'\""))

    def words(key: str) -> list[str]:
        return found[key][1].split() if key in found else []

    urls = words("index-url") + words("extra-index-url")
    skipped = tuple(u for u in urls if not u.startswith(("http://", "https://")))
    index = [u for u in words("index-url") if u not in skipped]
    extra = [u for u in words("extra-index-url") if u not in skipped]
    return PipIndex(
        index[0] if index else None, tuple(extra), tuple(words("trusted-host")), skipped
    )


# -- the base image -------------------------------------------------------------------------


def build_base_image(
    name: str, mirror: str, progress: Callable[[str], None] = print, workdir: Path | None = None
) -> float:
    """debootstrap Debian bookworm, import it, add the CA/pip layer; returns seconds taken."""
    debootstrap = require_tool("debootstrap")
    podman = require_tool("podman")
    if os.geteuid() != 0:
        raise UserError("debootstrap needs root; run `make base-image` as root")
    start = time.monotonic()
    rootfs_image = f"{name.rpartition(':')[0] or name}-rootfs:{DEBIAN_SUITE}"
    with tempfile.TemporaryDirectory(prefix="demand-base-", dir=workdir) as tmp:
        rootfs = Path(tmp) / "rootfs"
        progress(f"debootstrap {DEBIAN_SUITE} (minbase, {DEBIAN_PACKAGES}) from {mirror}")
        done = subprocess.run(
            [
                debootstrap,
                "--variant=minbase",
                f"--include={DEBIAN_PACKAGES}",
                DEBIAN_SUITE,
                str(rootfs),
                mirror,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
            raise UserError(
                f"debootstrap from {mirror} failed (set DEMAND_CONTAINER_DEBIAN_MIRROR to a "
                f"reachable Debian mirror):\n{tail}"
            )
        # the downloaded .debs and package lists: ~100 MB the image never needs
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / cache).glob("*"):
                if path.is_file():
                    path.unlink()
        progress(f"importing the rootfs as {rootfs_image}")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            [podman, "import", "-", rootfs_image],
            stdin=tar.stdout,
            env=engine_environ(),
            capture_output=True,
            text=True,
            check=False,
        )
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise UserError(f"podman import failed: {imported.stderr.strip()[-800:]}")
        shutil.rmtree(rootfs)
        context = Path(tmp) / "context"
        _base_context(context, pip_index(), progress)
        progress(f"building {name} from {BASE_CONTAINERFILE.relative_to(REPO_ROOT)}")
        engine(
            "podman",
            "build",
            "--isolation",
            "chroot",
            "-f",
            str(BASE_CONTAINERFILE),
            "--build-arg",
            f"ROOTFS={rootfs_image}",
            "-t",
            name,
            str(context),
            timeout=900,
        )
    check_base_image("podman", name)
    return time.monotonic() - start


def _base_context(context: Path, index: PipIndex, progress: Callable[[str], None]) -> None:
    certs = context / "ca-certificates"
    certs.mkdir(parents=True)
    extra = sorted(EXTRA_CA_DIR.rglob("*.crt")) if EXTRA_CA_DIR.is_dir() else []
    for cert in extra:
        shutil.copy(cert, certs / cert.name)
    progress(f"extra CA certificates: {', '.join(c.name for c in extra) or 'none'}")
    (context / "pip.conf").write_text(index.pip_conf())
    (context / "uv.toml").write_text(index.uv_toml())
    progress(f"package index: {index.index_url or 'PyPI (pip default)'}")
    if index.skipped:
        progress(f"not carried into the image (local to this machine): {', '.join(index.skipped)}")


# -- the service image ----------------------------------------------------------------------


def containerize(
    bento_tag: str,
    image: str,
    backend: str,
    bentoml_home: Path,
    progress: Callable[[str], None] = print,
) -> float:
    """`bentoml containerize` the Bento into ``image``; its output streams through."""
    bentoml = Path(sys.executable).with_name("bentoml")
    command = [str(bentoml), "containerize", bento_tag, "--backend", backend, "-t", image]
    if backend in ("buildah", "podman"):
        # chroot: these hosts run inside containers, where the default (a user namespace,
        # runc) cannot start; the storage driver comes from CONTAINERS_STORAGE_CONF
        command += ["--opt", "isolation=chroot"]
    progress(" ".join(command[1:]))
    tool = runner(backend)
    previous = _image_id(tool, image)
    start = time.monotonic()
    env = engine_environ({"BENTOML_HOME": str(bentoml_home), "BENTOML_DO_NOT_TRACK": "true"})
    # cwd "/": BentoML refuses a Dockerfile template outside the working directory, and its
    # own copy of the Bento (with our template) lies in a temporary directory (bentoml 1.4.40)
    done = subprocess.run(command, env=env, cwd="/", check=False)
    if done.returncode != 0:
        raise UserError(
            f"`bentoml containerize` failed with code {done.returncode} (its output is above)"
        )
    seconds = time.monotonic() - start
    if previous and previous != _image_id(tool, image):
        # the image this name had is untagged now: gigabytes on vfs after a few builds
        engine(tool, "rmi", previous, check=False)
    return seconds


def _image_id(tool: str, image: str) -> str | None:
    done = engine(tool, "image", "inspect", "--format", "{{.Id}}", image, check=False)
    return done.stdout.strip() or None if done.returncode == 0 else None


@dataclass
class Running:
    """A container started by :func:`run`, answered at ``url``."""

    name: str
    tool: str
    url: str

    def logs(self) -> str:
        done = engine(self.tool, "logs", self.name, check=False)
        return done.stdout + done.stderr

    def stop(self) -> None:
        engine(self.tool, "rm", "--force", "--time", "10", self.name, check=False, timeout=60)


def run(
    image: str,
    name: str,
    port: int,
    env: dict[str, str],
    mounts: Sequence[tuple[Path, str]] = (),
    tool: str = "podman",
) -> Running:
    """Start ``image`` detached on the host network, serving on ``port``; mounts read-only."""
    args = ["run", "--detach", "--name", name, "--network", "host"]
    for key, value in sorted(env.items()):
        args += ["--env", f"{key}={value}"]
    for source, target in mounts:
        args += ["--volume", f"{source}:{target}:ro"]
    args += [image, "--port", str(port)]
    engine(tool, "rm", "--force", name, check=False)  # a leftover of an interrupted run
    engine(tool, *args)
    return Running(name, tool, f"http://127.0.0.1:{port}")
