"""The night's monitoring alerts reach each --notify URL as one JSON body."""

from __future__ import annotations

import json
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, HTTPServer

from demand.settings import get_settings
from monitoring import alerts, drift, ledger, monitor
from nightly import cycle


def _receiver():
    bodies: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers["Content-Length"])
            bodies.append(
                {
                    "path": self.path,
                    "type": self.headers["Content-Type"],
                    **json.loads(self.rfile.read(length)),
                }
            )
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, bodies


def _result(fired):
    return monitor.Result(
        update=ledger.LedgerUpdate(last_closed=date(2024, 3, 1)),
        accuracy=None,
        drift=drift.Drift(version="3"),
        skew=None,
        alerts=fired,
    )


def test_alerts_are_posted_to_every_notify_url(monkeypatch, tmp_path):
    fired = [alerts.Alert("drift", "v3: list_price drifted (PSI 2.50 ≥ 0.25)", {"psi": 2.5})]
    monkeypatch.setattr(monitor, "run", lambda settings, progress, skew=None: _result(fired))
    server, bodies = _receiver()
    url = f"http://127.0.0.1:{server.server_port}/hooks/demand"
    report = cycle.NightReport(started_at="now")
    lines = []
    try:
        cycle._monitor(get_settings(data_dir=tmp_path), report, [url], lines.append)
    finally:
        server.shutdown()
    assert report.alerts == ["v3: list_price drifted (PSI 2.50 ≥ 0.25)"]
    assert report.monitoring == "nothing to score yet"
    assert bodies == [
        {
            "path": "/hooks/demand",
            "type": "application/json",
            "model": "demand_forecast",
            "night": "2024-03-01",
            "alerts": [
                {
                    "kind": "drift",
                    "message": "v3: list_price drifted (PSI 2.50 ≥ 0.25)",
                    "figures": {"psi": 2.5},
                }
            ],
        }
    ]
    assert lines == [f"alerts posted to {url} (204)"]


def test_a_quiet_night_posts_nothing(monkeypatch, tmp_path):
    monkeypatch.setattr(monitor, "run", lambda settings, progress, skew=None: _result([]))
    server, bodies = _receiver()
    try:
        cycle._monitor(
            get_settings(data_dir=tmp_path),
            cycle.NightReport(started_at="now"),
            [f"http://127.0.0.1:{server.server_port}/"],
            lambda _: None,
        )
    finally:
        server.shutdown()
    assert bodies == []
