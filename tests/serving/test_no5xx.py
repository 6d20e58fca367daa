"""No request is a 5xx: property-based tests of POST /forecast through the ASGI app.

Dates anywhere from year 1 to 9999 (and strings that are no date), ids of any unicode
(lone surrogates, control characters, empty, very long), prices and promotions of any
JSON value, unknown fields, too many items: every answer is a 2xx or a 4xx with a
JSON body. A request the schema allows is a 200 or a 422 naming the item's field.

``make test`` runs a fixed derandomized set; ``make fuzz`` fresh seeds (tests/fuzzing.py).
The cases fuzzing found are listed in FOUND and run every time.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

FIRST, LAST = dt.date(1, 1, 1), dt.date(9999, 12, 31)
JSON = {"content-type": "application/json"}

# Found by fuzzing (issue 22): a date pandas can hold (1677-09-22 to 2262-04-11) whose year
# and the next have no US holiday in the holidays library (a few years before 1865, every
# one after 2100) made the target-day calendar view index an empty holiday list:
# IndexError, a 500, whether or not the store knew the key.
FOUND = ["2165-01-01", "1700-06-01", "1677-09-22", "1780-01-01", "2262-04-11", "2101-01-01"]


def post(client, body) -> tuple[int, object]:
    # json.dumps escapes lone surrogates (\ud800), which an encoder to UTF-8 would refuse
    response = client.post("/forecast", content=json.dumps(body).encode(), headers=JSON)
    assert response.headers["content-type"].startswith("application/json"), response.text
    return response.status_code, response.json()


@pytest.mark.parametrize("day", FOUND)
def test_found_dates_of_an_unknown_key_are_missing_features(client, day):
    status, payload = post(client, {"items": [{"date": day, "product_id": "0", "store_id": "0"}]})
    assert status == 200, payload
    assert [f["status"] for f in payload["forecasts"]] == ["missing_features"]


@pytest.mark.parametrize("day", FOUND)
def test_found_dates_of_a_known_key_are_outside_the_horizon(client, known_keys, day):
    (store, product), _ = known_keys[0][0], known_keys[1]
    status, payload = post(
        client, {"items": [{"date": day, "product_id": product, "store_id": store}]}
    )
    assert status == 422 and payload["field"] == "items[0].date", payload
    assert "outside the model's horizon" in payload["error"]


def test_a_found_date_next_to_a_served_item_leaves_it_served(client, known_keys):
    keys, origin = known_keys
    served = {
        "store_id": keys[0][0],
        "product_id": keys[0][1],
        "date": str(origin + dt.timedelta(1)),
    }
    alone = post(client, {"items": [served]})
    unknown = {"store_id": "S_NOPE", "product_id": "0", "date": "2165-01-01"}
    status, payload = post(client, {"items": [served, unknown]})
    assert status == 200, payload
    assert [f["status"] for f in payload["forecasts"]] == ["ok", "missing_features"]
    assert payload["forecasts"][0]["units"] == alone[1]["forecasts"][0]["units"]


# -- strategies ------------------------------------------------------------------------------

SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"])
ANY_CHAR = st.one_of(st.characters(), SURROGATES)
ANY_ID = st.one_of(
    st.text(ANY_CHAR, max_size=70),  # any unicode, empty included, around the 64 limit
    st.text(ANY_CHAR, min_size=1, max_size=64).filter(str.strip),
    st.text(ANY_CHAR, min_size=65, max_size=5_000),  # very long
    st.sampled_from(["", " ", "S000", "S000\n", "\u2028", "\ufeff", "\x00", "a" * 64]),
)
# Uniform over years 1 to 9999, and more often near the ends of the calendars the code
# relies on: Python's (years 1 and 9999), pandas' (1677-09-21, 2262-04-11) and the holiday
# library's (it knows US holidays from 1777, most years from 1865, none after 2100).
EDGES = [FIRST, LAST, dt.date(1677, 9, 21), dt.date(2262, 4, 11), dt.date(1777, 1, 1)]
EDGES += [dt.date(1865, 1, 1), dt.date(2101, 1, 1), dt.date(1970, 1, 1)]
ANY_DATE = st.one_of(
    st.dates(FIRST, LAST),
    st.dates(dt.date(1677, 1, 1), dt.date(2263, 12, 31)),
    st.builds(
        lambda edge, days: dt.date.fromordinal(
            min(LAST.toordinal(), max(FIRST.toordinal(), edge.toordinal() + days))
        ),
        st.sampled_from(EDGES),
        st.integers(-800, 800),
    ),
)
DATE_TEXT = st.one_of(
    ANY_DATE.map(str),
    st.sampled_from([*FOUND, "0000-01-01", "2023-02-30", "10000-01-01", "2023-1-1", ""]),
    st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", fullmatch=True),
)
JSON_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),  # past float and int64
    st.floats(),  # NaN and ±Infinity go out as JSON's non-standard tokens
    st.text(ANY_CHAR, max_size=20),
)
ANY_VALUE = st.recursive(
    JSON_SCALAR,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
PRICE = st.one_of(st.none(), st.floats(min_value=0, allow_infinity=False), st.integers(min_value=0))


def items(ids, dates, prices, promos, extra=False):
    fields = st.fixed_dictionaries(
        {"store_id": ids, "product_id": ids, "date": dates},
        optional={"price": prices, "promo": promos},
    )
    if extra:  # unknown fields, missing fields, values of any type
        fields = st.one_of(
            fields,
            st.dictionaries(
                st.sampled_from(["store_id", "product_id", "date", "price", "promo", "qty"]),
                ANY_VALUE,
            ),
            fields.flatmap(lambda item: st.just({**item, "horizon": 3})),
        )
    return fields


def known_ids(known_keys):
    keys, _ = known_keys
    return st.sampled_from(sorted({s for s, _ in keys[:20]} | {p for _, p in keys[:20]}))


def near(origin: dt.date):
    """Dates around a known key's origin: inside the horizon, just outside, far away."""
    return st.one_of(
        st.integers(-10, 12).map(lambda days: origin + dt.timedelta(days)),
        ANY_DATE,
    )


# -- properties ------------------------------------------------------------------------------


@pytest.mark.fuzz_weight(4)
def test_any_request_is_a_2xx_or_a_4xx(client, known_keys, fuzzer):
    _, origin = known_keys
    ids = st.one_of(known_ids(known_keys), ANY_ID)
    dates = st.one_of(near(origin).map(str), DATE_TEXT, ANY_VALUE)
    item = items(ids, dates, prices=st.one_of(PRICE, ANY_VALUE), promos=ANY_VALUE, extra=True)
    body = st.one_of(
        st.fixed_dictionaries({"items": st.lists(item, max_size=3)}),
        st.fixed_dictionaries({"items": st.lists(item, max_size=60)}),  # the cap is 50
        st.fixed_dictionaries({"items": ANY_VALUE}),
        st.dictionaries(st.sampled_from(["items", "horizon"]), st.lists(item, max_size=3)),
        ANY_VALUE,
    )

    def check(request):
        status, payload = post(client, request)
        assert 200 <= status < 500, (status, payload)
        if status >= 400:
            assert isinstance(payload, dict) and payload.get("error"), payload

    fuzzer.run("any request", lambda r: r.apply(given(request=body)(check), examples=200)())


@pytest.mark.fuzz_weight(4)
def test_a_valid_request_is_answered_or_refused_naming_an_item(client, known_keys, fuzzer):
    """What the schema allows: a 200 with every item in order, or a 422 naming an item's field.

    A known key's date 1 to horizon days after its origin, without a price or promotion
    (the model uses neither), is always answered ``ok``.
    """
    keys, origin = known_keys
    horizon = client.get("/metadata").json()["horizon"]
    known = st.sampled_from(keys[:20])
    valid_id = st.text(
        st.characters(exclude_categories=["Cc", "Cs", "Zs"]), min_size=1, max_size=64
    )
    unknown = st.tuples(valid_id, valid_id)
    key = st.one_of(known, unknown)
    item = st.builds(
        lambda k, day, price, promo: {
            "store_id": k[0],
            "product_id": k[1],
            "date": str(day),
            **({} if price is None else {"price": price}),
            **({} if promo is None else {"promo": promo}),
        },
        key,
        near(origin),
        st.one_of(st.none(), st.none(), PRICE),
        st.one_of(st.none(), st.none(), st.booleans()),
    )
    known_set = set(keys)

    def check(request):
        status, payload = post(client, request)
        sent = request["items"]
        if status == 422:
            assert payload["field"].startswith("items["), payload
            return
        assert status == 200, (status, payload)
        answers = payload["forecasts"]
        assert [(a["store_id"], a["product_id"], a["date"]) for a in answers] == [
            (i["store_id"], i["product_id"], i["date"]) for i in sent
        ]
        for i, a in zip(sent, answers, strict=True):
            if (i["store_id"], i["product_id"]) in known_set:
                assert a["status"] == "ok" and a["units"] >= 0, (i, a)
            else:
                assert a["status"] == "missing_features" and a["units"] is None, (i, a)

    def check_scored(request):
        status, payload = post(client, request)
        assert status == 200, payload
        assert {a["status"] for a in payload["forecasts"]} == {"ok"}

    body = st.fixed_dictionaries(
        {"items": st.lists(item, min_size=1, max_size=3) | st.lists(item, min_size=1, max_size=50)}
    )
    in_horizon = st.fixed_dictionaries(
        {
            "items": st.lists(
                st.builds(
                    lambda k, days: {
                        "store_id": k[0],
                        "product_id": k[1],
                        "date": str(origin + dt.timedelta(days)),
                    },
                    known,
                    st.integers(1, horizon),
                ),
                min_size=1,
                max_size=50,
            )
        }
    )

    def body_run(r):
        r.apply(given(request=body)(check), examples=150)()
        r.apply(given(request=in_horizon)(check_scored), examples=30)()

    fuzzer.run("valid request", body_run)
