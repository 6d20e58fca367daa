"""The front half of the platform's nightly job: data → features → Feast, online store loaded."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from demand import swap
from demand.calendar import DESCRIPTION_FILE, RawDescription, Source
from demand.console import UserError
from demand.settings import Engine, Settings
from features import build_duckdb, plan, publish, spark, transforms
from rawdata import raw
from synthetic import generator

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


def imported(settings: Settings) -> bool:
    """Whether the raw dir holds imported data (`demand import`), never overwritten by
    generated data unless asked."""
    return (
        RawDescription.read(settings.raw_dir).source is Source.imported
        and (settings.raw_dir / DESCRIPTION_FILE).exists()
    )


def refuse_over_imported(settings: Settings) -> None:
    if imported(settings):
        raise UserError(
            f"{settings.raw_dir} holds imported data (`demand import`); generated data never "
            "replaces it. Build from it with `demand features --no-regenerate` (or `demand "
            "build-features`), import newer files with `demand import DIR`, or start over with "
            "--replace-imported (deletes the imported raw tables, their quarantine and history)"
        )


def generate(
    settings: Settings,
    progress: Progress = print,
    append_days: int = 0,
    replace_imported: bool = False,
) -> dict[str, int]:
    """Write the generated retailer's raw tables; ``append_days`` more days than last time.

    The same scale and seed keep the days earlier runs appended (a rebuild never
    moves the data backwards); another scale or seed starts over. Imported data is
    never overwritten unless ``replace_imported``.
    """
    if replace_imported and imported(settings):
        progress(f"deleting the imported raw data in {settings.raw_dir}")
        swap.remove(settings.raw_dir)
    refuse_over_imported(settings)
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
        generated = generator.stream(settings.scale, settings.seed, extra_days=extra)
    except ValueError as error:
        raise UserError(str(error)) from None
    # written chunk by chunk (a few stores, or a run of days): no scale is held whole;
    # aside, then swapped in whole (a crash leaves the raw data as it was)
    with swap.replacing(settings.raw_dir, progress) as aside:
        rows = raw.write_stream(
            generated, aside, progress, scale=settings.scale.value, seed=settings.seed
        )
        state = {"scale": settings.scale.value, "seed": settings.seed, "extra_days": extra}
        (aside / GENERATED).write_text(json.dumps(state))
    return rows


def build_features(
    settings: Settings, progress: Progress = print, validated: bool = False
) -> plan.BuildReport:
    """Validate the raw tables (each, and across tables), then build; refuse tables that fail.

    ``validated``: the caller has just validated them (the gate is passed once, not twice).
    """
    if not validated:
        raw.validate_raw(settings.raw_dir)
    return build_with(settings, progress=progress)


def run(
    settings: Settings,
    progress: Progress = print,
    regenerate: bool = True,
    replace_imported: bool = False,
) -> StepTimes:
    """generate → validate → build feature tables → feast apply → materialize.

    Imported raw data is built from as it is (not regenerated) unless ``replace_imported``.
    """
    steps = StepTimes()
    if settings.engine is Engine.spark:
        # no Java, or a master that does not answer: say so before anything is written
        steps.run("start Spark", progress, lambda: spark.session(settings))
    if regenerate and imported(settings) and not replace_imported:
        progress(f"{settings.raw_dir} holds imported data: building from it (not generating)")
        regenerate = False
    if regenerate:
        steps.run(
            "generate + validate",
            progress,
            lambda: generate(settings, progress, replace_imported=replace_imported),
        )
    else:
        steps.run("validate", progress, lambda: raw.validate_raw(settings.raw_dir))
    steps.run(
        "build features", progress, lambda: build_features(settings, progress, validated=True)
    )
    _, changes = steps.run("feast apply", progress, lambda: publish.apply(settings))
    progress(f"{len(changes)} Feast objects created or updated")
    steps.run("materialize", progress, lambda: publish.materialize(settings))
    return steps


def build_with(
    settings: Settings,
    feature_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
    previous: Path | None = None,
) -> plan.BuildReport:
    """:func:`build` from ``settings.raw_dir`` on the engine ``DEMAND_ENGINE`` names.

    ``feature_dir``: where to write (default: ``settings.feature_dir``, built aside and
    swapped in whole, ``demand.swap``); ``previous``: as in :func:`build` (the Spark build
    always builds whole and says so in its mode).
    """
    if feature_dir is None:
        with swap.replacing(settings.feature_dir, progress) as aside:
            return build_with(settings, aside, progress, previous)
    w = windows(settings)
    if settings.engine is Engine.spark:
        from features import build_spark

        return build_spark.build(settings, settings.raw_dir, feature_dir, progress, previous, w)
    return build_duckdb.build(
        settings.raw_dir,
        feature_dir,
        windows=w,
        progress=progress,
        duckdb_config=settings.duckdb_config,
        previous=previous,
    )


def windows(settings: Settings) -> transforms.Windows:
    """The raw data's grain's windows, with the settings' rule of a pair's active life."""
    w = transforms.for_grain(RawDescription.read(settings.raw_dir).grain.value)
    changes = {
        "inactive_after": settings.inactive_after,
        "inactive_gap_multiple": settings.inactive_gap_multiple,
    }
    return dataclasses.replace(w, **{k: v for k, v in changes.items() if v is not None})
