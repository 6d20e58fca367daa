"""The front half of the platform's nightly job: data → features → Feast, online store loaded."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from demand.settings import Settings
from features import build, feature_store, generator, raw

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


def generate(settings: Settings, progress: Progress = print) -> dict[str, int]:
    progress(f"generating a {settings.scale.value} retailer (seed {settings.seed})")
    data = generator.generate(settings.scale, settings.seed)
    return raw.write_raw(data.tables(), settings.raw_dir)


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
    _, changes = steps.run("feast apply", progress, lambda: feature_store.apply(settings))
    progress(f"{len(changes)} Feast objects created or updated")
    steps.run("materialize", progress, lambda: feature_store.materialize(settings))
    return steps
