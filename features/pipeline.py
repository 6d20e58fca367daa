"""The front half of the platform's nightly job: data → features → Feast, online store loaded."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from demand.console import UserError
from demand.settings import Settings
from features import build, generator, publish, raw

Progress = Callable[[str], None]


@dataclass
class StepTimes:
    seconds: dict[str, float] = field(default_factory=dict)

    def run(self, name: str, progress: Progress, fn: Callable[[], object]) -> object:
        progress(f"{name} …")
        started = time.perf_counter()
        result = fn()
        self.seconds[name] = time.perf_counter() - started
        progress(f"{name} done in {self.seconds[name]:.1f}s")
        return result


GENERATED = "generated.json"  # in the raw dir: which retailer, extended by how many days


def generated_state(settings: Settings) -> dict[str, object] | None:
    """What `generate` last wrote into the raw dir (None: nothing, or not generated data)."""
    path = settings.raw_dir / GENERATED
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def generate(
    settings: Settings, progress: Progress = print, append_days: int = 0
) -> dict[str, int]:
    """Write the generated retailer's raw tables; ``append_days`` more days than last time.

    The same scale and seed keep the days earlier runs appended (a rebuild never
    moves the data backwards); another scale or seed starts over.
    """
    state = generated_state(settings)
    same = bool(state) and (state["scale"], state["seed"]) == (settings.scale.value, settings.seed)
    if append_days and not same:
        raise UserError(
            f"--append-days extends the generated retailer in {settings.raw_dir}, and there is "
            f"none of scale {settings.scale.value} and seed {settings.seed}; "
            "run `demand generate` first"
        )
    extra = (int(state["extra_days"]) if same else 0) + append_days
    more = f", {extra} days appended" if extra else ""
    progress(f"generating a {settings.scale.value} retailer (seed {settings.seed}{more})")
    try:
        data = generator.generate(settings.scale, settings.seed, extra_days=extra)
    except ValueError as error:
        raise UserError(str(error)) from None
    rows = raw.write_raw(data.tables(), settings.raw_dir)
    state = {"scale": settings.scale.value, "seed": settings.seed, "extra_days": extra}
    (settings.raw_dir / GENERATED).write_text(json.dumps(state))
    return rows


def build_features(settings: Settings, progress: Progress = print) -> build.BuildReport:
    return build.build(settings.raw_dir, settings.feature_dir, progress=progress)


def run(settings: Settings, progress: Progress = print, regenerate: bool = True) -> StepTimes:
    """generate → validate → build feature tables → feast apply → materialize."""
    steps = StepTimes()
    if regenerate:
        steps.run("generate + validate", progress, lambda: generate(settings, progress))
    else:
        steps.run("validate", progress, lambda: raw.validate_raw(settings.raw_dir))
    steps.run("build features", progress, lambda: build_features(settings, progress))
    _, changes = steps.run("feast apply", progress, lambda: publish.apply(settings))
    progress(f"{len(changes)} Feast objects created or updated")
    steps.run("materialize", progress, lambda: publish.materialize(settings))
    return steps
