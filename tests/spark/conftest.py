"""One Spark session for the whole pytest process: a local one starts in 10–40 s here."""

from __future__ import annotations

import pytest

from demand.settings import Settings

SPARK = Settings(engine="spark", spark_master="local[2]")


@pytest.fixture(scope="session")
def spark():
    from features import spark as spark_session

    session = spark_session.session(SPARK)
    yield session
    session.stop()
