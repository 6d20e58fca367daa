"""One real `bentoml serve` process (the `server` fixture): health, Prometheus metrics, a
forecast over TCP."""

from __future__ import annotations

import datetime as dt
import urllib.request

import pytest

from cli import serve as cli

# a real `bentoml serve` process
pytestmark = pytest.mark.slow


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode()


def test_health_forecast_and_metrics(server, known_keys):
    keys, origin = known_keys
    assert get(f"{server}/livez")[0] == 200
    assert get(f"{server}/readyz")[0] == 200
    items = [
        {"store_id": s, "product_id": p, "date": str(origin + dt.timedelta(days=2))}
        for s, p in keys[:5]
    ]
    status, answer = cli.post_json(f"{server}/forecast", {"items": items})
    assert status == 200
    assert [f["status"] for f in answer["forecasts"]] == ["ok"] * 5
    assert [f["stale"] for f in answer["forecasts"]] == [[]] * 5
    assert answer["model"]["alias"] == "production"
    status, error = cli.post_json(f"{server}/forecast", {"items": [{"store_id": "S000"}]})
    assert status == 400 and "validation error" in error["error"]
    status, metrics = get(f"{server}/metrics")
    assert status == 200
    assert "bentoml_service_request_total{" in metrics
    assert 'endpoint="/forecast"' in metrics and 'http_response_code="200"' in metrics
    # the feature age per view, through BentoML's multiprocess collector: in step, 0 s
    assert 'demand_feature_age_seconds{view="store_product_sales"} 0.0' in metrics
