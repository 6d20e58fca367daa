"""Malformed requests to a real `bentoml serve`: each a 4xx with a JSON body naming the problem.

Sent with http.client, byte for byte as given (urllib would add a Content-Type of its own).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import urllib.request
from urllib.parse import urlsplit

import pytest

from demand.settings import get_settings
from serving.service import ID_PATTERN

MAX_BODY = get_settings().serve_max_body_bytes  # the server inherits this environment
ITEM = {"store_id": "S000", "product_id": "P0000", "date": "2023-07-30"}
VALID = json.dumps({"items": [ITEM]}).encode()
JSON = "application/json"


def send(
    server: str, body, content_type: str | None = JSON, method: str = "POST", path="/forecast"
):
    """(status, headers, JSON body) of one request; ``body`` may be an iterable of chunks."""
    address = urlsplit(server)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    headers = {"Content-Type": content_type} if content_type is not None else {}
    # the server may answer before it has read everything: its answer is still there
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return response.status, response.getheader("Content-Type"), json.loads(payload)


def names(payload) -> str:
    """Everything an error body says: its message, and each detail's location, type, message."""
    assert isinstance(payload, dict) and isinstance(payload["error"], str), payload
    said = [payload["error"], str(payload.get("field", ""))]
    for detail in payload.get("detail", []):
        said += [*(str(part) for part in detail["loc"]), detail["type"], detail["msg"]]
    return " | ".join(said)


def nested(depth: int) -> bytes:
    return b'{"items": [' + b"[" * depth + b"]" * depth + b"]}"


def chunks(total: int, size: int = 64 * 1024):
    """A body of ``total`` bytes sent chunked, without a Content-Length."""
    while total > 0:
        yield b" " * min(size, total)
        total -= size


def with_item(**fields) -> bytes:
    return json.dumps({"items": [{**ITEM, **fields}]}).encode()


CASES = {
    # name: (body, Content-Type, status, what the answer names)
    "no content type": (VALID, None, 415, "no Content-Type"),
    "text/plain": (VALID, "text/plain", 415, "'text/plain' is not accepted"),
    "multipart without a boundary": (VALID, "multipart/form-data", 415, "'multipart/form-data'"),
    "multipart with a boundary": (
        b'--x\r\nContent-Disposition: form-data; name="items"\r\n\r\n[]\r\n--x--\r\n',
        "multipart/form-data; boundary=x",
        415,
        "'multipart/form-data'",
    ),
    "a form": (b"items=%5B%5D", "application/x-www-form-urlencoded", 415, "not accepted"),
    "pickle": (b"\x80\x05N.", "application/vnd.bentoml+pickle", 415, "not accepted"),
    "latin-1 charset": (VALID, "application/json; charset=latin-1", 415, "'latin-1'"),
    "truncated JSON": (VALID[:-5], JSON, 400, "json_invalid"),
    "not UTF-8": ('{"items": [{"store_id": "Sé"}]}'.encode("latin-1"), JSON, 400, "json_invalid"),
    "a byte-order mark": (b"\xef\xbb\xbf" + VALID, JSON, 400, "json_invalid"),
    "deeply nested": (nested(100_000), JSON, 400, "recursion limit exceeded"),
    "too many errors to list": (
        b'{"items": [' + b",".join([b"{}"] * 600_000) + b"]}",
        JSON,
        400,
        "1800000 errors, more than the 10000 an answer lists",
    ),
    "empty body": (b"", JSON, 400, "items | missing"),
    "not an object": (b"[1, 2]", JSON, 400, "model_type"),
    "null": (b"null", JSON, 400, "model_type"),
    "empty item list": (b'{"items": []}', JSON, 400, "items | too_short"),
    "items not a list": (b'{"items": {"store_id": "S000"}}', JSON, 400, "items | list_type"),
    "unknown top-level field": (b'{"items": [], "horizon": 3}', JSON, 400, "horizon"),
    "unknown item field": (with_item(qty=1), JSON, 400, "qty | extra_forbidden"),
    "id with a trailing newline": (with_item(store_id="S000\n"), JSON, 400, "store_id"),
    "id with a C1 control character": (with_item(store_id="S\u0085000"), JSON, 400, "store_id"),
    "id too long": (with_item(product_id="P" * 65), JSON, 400, "product_id | string_too_long"),
    "date as epoch seconds": (with_item(date="1690675200"), JSON, 400, "date | value_error"),
    "date not a day": (with_item(date="2023-02-30"), JSON, 400, "date"),
    "price infinite": (
        VALID.replace(b'"2023-07-30"}', b'"2023-07-30", "price": 1e999}'),
        JSON,
        400,
        "price",
    ),
    "price negative": (with_item(price=-1.0), JSON, 400, "price | greater_than_equal"),
    "promo a string": (with_item(promo="yes"), JSON, 400, "promo | bool_type"),
    "body over the limit": (b" " * (MAX_BODY + 1), JSON, 413, "DEMAND_SERVE_MAX_BODY_BYTES"),
    "chunked body over the limit": (chunks(MAX_BODY + 1), JSON, 413, "over"),
}


@pytest.mark.parametrize(("body", "content_type", "status", "says"), CASES.values(), ids=CASES)
def test_malformed_request_is_a_4xx_naming_the_problem(server, body, content_type, status, says):
    answered, media, payload = send(server, body, content_type)
    assert (answered, media) == (status, "application/json"), payload
    assert says in names(payload)


@pytest.mark.parametrize(
    ("method", "path", "status", "says"),
    [
        ("GET", "/forecast", 405, "GET /forecast is not allowed; allowed: POST"),
        ("PUT", "/forecast", 405, "allowed: POST"),
        ("GET", "/forecasts", 404, "no such route: GET /forecasts"),
        ("POST", "/metadata", 405, "Method Not Allowed"),  # FastAPI's own JSON
    ],
)
def test_wrong_route_or_method_is_answered_in_json(server, method, path, status, says):
    answered, media, payload = send(server, None, None, method=method, path=path)
    assert (answered, media) == (status, "application/json")
    assert says in json.dumps(payload)


def test_body_limit_holds_on_every_route(server):
    status, _, payload = send(server, b" " * (MAX_BODY + 1), None, path="/reload")
    assert status == 413 and "DEMAND_SERVE_MAX_BODY_BYTES" in payload["error"]


def test_json_content_type_is_accepted_however_spelled(server, known_keys):
    keys, origin = known_keys
    item = {"store_id": keys[0][0], "product_id": keys[0][1], "date": str(origin + dt.timedelta(1))}
    body = json.dumps({"items": [item]}).encode()
    for spelled in (
        "Application/JSON",
        "application/json; charset=UTF-8",
        'application/json;charset="utf-8"',
    ):
        status, _, payload = send(server, body, spelled)
        assert status == 200, (spelled, payload)
        assert payload["forecasts"][0]["status"] == "ok"


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31"])
def test_the_ends_of_the_calendar_are_outside_the_horizon(server, known_keys, day):
    """Valid dates by the document, far from any origin: 422 naming the date, not an overflow."""
    keys, _ = known_keys
    body = json.dumps({"items": [{"store_id": keys[0][0], "product_id": keys[0][1], "date": day}]})
    status, _, payload = send(server, body.encode())
    assert status == 422 and payload["field"] == "items[0].date", payload


def test_published_document_states_the_limits(server):
    """What /docs.json says a request is: what the table above refuses otherwise."""

    def get(path: str):
        with urllib.request.urlopen(f"{server}{path}", timeout=10) as response:
            return json.loads(response.read())

    document = get("/docs.json")
    body = document["paths"]["/forecast"]["post"]["requestBody"]["content"]
    assert list(body) == ["application/json"]
    request = body["application/json"]["schema"]
    assert request["additionalProperties"] is False and request["required"] == ["items"]
    items = request["properties"]["items"]
    # the cap the serving process runs with, not the default of the process importing it
    assert (items["minItems"], items["maxItems"]) == (1, get("/metadata")["max_items"])
    item = document["components"]["schemas"]["Item"]
    assert item["additionalProperties"] is False
    assert item["required"] == ["store_id", "product_id", "date"]
    for key in ("store_id", "product_id"):
        assert item["properties"][key] | {"title": None} == {
            "type": "string",
            "minLength": 1,
            "maxLength": 64,
            "pattern": ID_PATTERN,
            "title": None,
        }
    assert item["properties"]["date"]["format"] == "date"
    price = item["properties"]["price"]
    assert (price["type"], price["minimum"], price["nullable"]) == ("number", 0, True)
    assert "anyOf" not in price  # OpenAPI 3.0 has no null type
