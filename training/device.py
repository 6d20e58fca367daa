"""Choose where CatBoost trains: the GPU when there is one, else the CPU."""

from __future__ import annotations

import os
from enum import StrEnum

from demand.console import UserError


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    gpu = "gpu"


class NoGpu(UserError):
    pass


def gpu_count() -> int:
    from catboost.utils import get_gpu_device_count

    # CatBoost's C++ side prints "Error 35 … ignored" to stderr on machines without
    # a CUDA driver; the answer (0) is all we need, so keep the terminal clean.
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            return int(get_gpu_device_count())
    except Exception:  # a broken CUDA install counts as no GPU, not as a crash
        return 0
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def resolve(requested: Device | str, count: int | None = None) -> str:
    """'CPU' or 'GPU' (CatBoost's task_type). ``gpu`` without one fails before any work."""
    requested = Device(requested)
    count = gpu_count() if count is None else count
    if requested is Device.gpu and count == 0:
        raise NoGpu(
            "--device gpu: CatBoost sees no CUDA GPU on this machine; use --device auto (or cpu)"
        )
    if requested is Device.cpu:
        return "CPU"
    return "GPU" if count > 0 else "CPU"
