"""The master URL is read before Spark starts: a wrong one is a sentence, not a hang."""

from __future__ import annotations

import pytest

from features.spark import SparkUnavailable, master_addresses

pytestmark = pytest.mark.spark


def test_master_addresses_of_each_kind_of_url():
    assert master_addresses("spark://h1:7077,h2:7078") == [("h1", 7077), ("h2", 7078)]
    assert master_addresses("spark://h1") == [("h1", 7077)]
    assert master_addresses("k8s://https://api:6443") == [("api", 6443)]
    assert master_addresses("local[2]") == [] and master_addresses("yarn") == []


@pytest.mark.parametrize("master", ["spark://host:port", "spark://:7077", "spark://h1:7077,"])
def test_a_malformed_standalone_url_is_refused_with_the_form_to_write(master):
    with pytest.raises(SparkUnavailable, match="spark://host:port"):
        master_addresses(master)
