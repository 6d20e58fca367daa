"""What building a Bento needs from BentoML beyond its public API.

Relies on (checked against bentoml 1.4.40): ``bentoml.bentos.build(envs=...)`` accepts
only ``bentoml._internal.bento.build_config.BentoEnvSchema`` entries, which BentoML does
not export. tests/deploy/test_bento.py builds a Bento with one.
"""

from __future__ import annotations


def bento_env(name: str, value: str):
    """An environment variable baked into a Bento (``bentoml.bentos.build(envs=[...])``)."""
    from bentoml._internal.bento.build_config import BentoEnvSchema

    return BentoEnvSchema(name=name, value=value)
