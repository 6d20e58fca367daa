"""One typed settings object for the whole platform.

Every value comes from an environment variable prefixed ``DEMAND_`` (or a ``.env``
file in the working directory), e.g. ``DEMAND_DATA_DIR=/mnt/demand``. Nothing is
read at import time: call :func:`get_settings` where the value is needed.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]


class Scale(StrEnum):
    """Sizes of the synthetic retailer; see ``features/generator.py``."""

    tiny = "tiny"
    default = "default"
    large = "large"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DEMAND_", env_file=".env", extra="ignore", validate_default=True
    )

    data_dir: Path = Field(
        default=REPO_ROOT / "data",
        description="Everything the platform writes lives here (raw and feature tables, "
        "Feast registry and online store, MLflow store, Bento store).",
    )
    feature_repo: Path = Field(
        default=REPO_ROOT / "feature_repo", description="The Feast feature repository."
    )
    seed: int = Field(default=7, description="Seed of the synthetic generator.")
    scale: Scale = Field(default=Scale.default, description="Size of the generated data.")
    feature_service: str = Field(
        default="demand_forecast_v1", description="Feast feature service models use."
    )

    @field_validator("data_dir", "feature_repo", mode="after")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        # Feast and MLflow resolve relative paths against their own working
        # directories; absolute paths keep every tool looking at the same files.
        return path.expanduser().resolve()

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def feature_dir(self) -> Path:
        return self.data_dir / "features"

    @property
    def feast_dir(self) -> Path:
        return self.data_dir / "feast"


def get_settings(**overrides: object) -> Settings:
    """Read the settings now (environment, ``.env``), with explicit overrides on top."""
    return Settings(**overrides)  # type: ignore[arg-type]
