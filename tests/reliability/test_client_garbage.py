"""Issue 7.5 (SFMC replies): malformed, truncated or wrong-typed replies make ``MarketingCloudClient``
raise a ``MarketingCloudError`` (retried first when the status is 5xx), never anything else; no error
message carries the client secret or the access token. No services: the client's transport is a function that
answers each request with the reply under test."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from streams.marketing_cloud import MarketingCloudClient, MarketingCloudError, RetriesExhausted
from streams.marketing_cloud.session import Reply, Request, Transport
from streams.settings import BusinessUnit

SECRET = "s3cr3t-client-value-9f2c"
TOKEN = "tok-ACCESS-7d1e5b"
BASE = "http://sfmc.test/"
KEYS = {"ID": "r1", "JobID": "1", "SubscriberID": "2", "EventDate": "9/7/2020 7:31:04 AM", "IsUnique": "True",
        "ListID": "3"}

UNIT = BusinessUnit(tenant="ien", client_id="cid", client_secret=SECRET, auth_base_url=BASE,
                    click_log_key="Click_Log", click_log_object_id="obj-1")

# A well-formed Retrieve reply, written here rather than by the emulator (its pieces below are the garbage).
GOOD_SOAP = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soap:Header/><soap:Body>'
    '<RetrieveResponseMsg xmlns="http://exacttarget.com/wsdl/partnerAPI">'
    "<OverallStatus>OK</OverallStatus><RequestID>req-1</RequestID>"
    f'<Results xsi:type="Send"><ID>607000</ID><Email><ID>117000</ID></Email><EmailName>{"é" * 40}</EmailName>'
    "</Results></RetrieveResponseMsg></soap:Body></soap:Envelope>"
).encode()
GOOD_TOKEN = orjson.dumps({"access_token": TOKEN, "expires_in": 1080, "token_type": "Bearer",
                           "rest_instance_url": f"{BASE}rest/", "soap_instance_url": f"{BASE}soap/"})

GARBAGE = [
    b"", b"\x00\xff\xfe garbage", b"<html><body>Service Unavailable</body></html>", b"<?xml version='1.0'?>",
    b"<soap:Envelope xmlns:soap='http://schemas.xmlsoap.org/soap/envelope/'><soap:Body/></soap:Envelope>",
    b'{"not": "soap"}', b"[1, 2", b"null", b'"a string"', b"[]", b"{}", b'{"items": "x", "count": "many"}',
    b'[{"keys": null}]', b'{"errorcode": 10006, "additionalErrors": [{"keys": 5}]}',
    GOOD_SOAP[: len(GOOD_SOAP) // 2], GOOD_SOAP[:-10], GOOD_SOAP.replace(b"RetrieveResponseMsg", b"Other"),
    GOOD_TOKEN[:20],
]


def transport(status: int, body: bytes, *, on_token: bool = False, calls: list[str] | None = None) -> Transport:
    """Token requests get a good token (or the garbage, ``on_token``); every other request the garbage."""
    async def handle(request: Request) -> Reply:
        path = request.url.removeprefix(BASE.rstrip("/"))
        if calls is not None:
            calls.append(path)
        if path == "/v2/token" and not on_token:
            return Reply(200, {"Content-Type": "application/json"}, GOOD_TOKEN)
        return Reply(status, {"Content-Type": "text/xml; charset=utf-8"}, body)
    return handle


async def _rows(client: MarketingCloudClient) -> Any:
    return [page async for page in client.click_rows(datetime(2020, 1, 1, tzinfo=UTC), 100)]


CALLS: dict[str, Callable[[MarketingCloudClient], Awaitable[Any]]] = {
    "click_rows": _rows,
    "sends": lambda c: c.sends([607000, 607001]),
    "subscribers": lambda c: c.subscribers([1]),
    "folders": lambda c: c.folders([4000]),
    "emails": lambda c: c.emails([117000]),
    "mark_processed": lambda c: c.mark_processed([KEYS, {**KEYS, "ID": "r2"}]),
}


async def attempt(call: str, status: int, body: bytes, *, on_token: bool = False,
                  calls: list[str] | None = None) -> BaseException | None:
    client = MarketingCloudClient(UNIT, transport=transport(status, body, on_token=on_token, calls=calls),
                                  max_attempts=3, backoff_base=0.001, backoff_cap=0.002)
    try:
        await CALLS[call](client)
    except Exception as exc:
        return exc
    finally:
        await client.aclose()
    return None


def check(exc: BaseException | None, what: str) -> None:
    if exc is None:
        return  # some garbage is a valid empty answer (e.g. "[]" from the rowset endpoint)
    assert isinstance(exc, MarketingCloudError), f"{what}: {type(exc).__name__}: {exc} escaped"
    text = f"{exc} {exc!r} {exc.args!r}"
    assert SECRET not in text and TOKEN not in text, f"{what}: a secret in the error: {text}"
    assert str(exc).strip(), f"{what}: an error without a message"


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("status", [200, 400, 401, 404, 429, 500, 503])
def test_garbage_replies(call: str, status: int) -> None:
    for body in GARBAGE:
        check(asyncio.run(attempt(call, status, body)), f"{call} HTTP {status} {body[:40]!r}")


@pytest.mark.parametrize("status", [200, 400, 401, 500])
def test_garbage_token_replies(status: int) -> None:
    for body in GARBAGE:
        exc = asyncio.run(attempt("sends", status, body, on_token=True))
        assert exc is not None, f"a token reply {body[:40]!r} was accepted"
        check(exc, f"token HTTP {status} {body[:40]!r}")


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried_then_surface(status: int) -> None:
    calls: list[str] = []
    exc = asyncio.run(attempt("sends", status, b"<html>oops</html>", calls=calls))
    assert isinstance(exc, RetriesExhausted), exc
    assert calls.count("/soap/Service.asmx") == 3, calls  # max_attempts


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=st.sampled_from(sorted(CALLS)), status=st.sampled_from([200, 201, 400, 404, 500]),
       cut=st.integers(0, len(GOOD_SOAP)), noise=st.binary(max_size=64))
@example(call="sends", status=200, cut=len(GOOD_SOAP) - 1, noise=b"")
def test_truncated_and_noisy_replies(call: str, status: int, cut: int, noise: bytes) -> None:
    """A good reply cut anywhere, with random bytes appended: a result or a MarketingCloudError."""
    body = GOOD_SOAP[:cut] + noise
    check(asyncio.run(attempt(call, status, body)), f"{call} HTTP {status} cut {cut} noise {noise!r}")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=st.sampled_from(["emails", "mark_processed"]), status=st.sampled_from([200, 400]),
       reply=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                          lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.sampled_from(["items", "count", "keys", "errorcode", "message",
                                                             "additionalErrors", "data", "ID"]), inner, max_size=4),
                          max_leaves=12))
def test_wrong_typed_json(call: str, status: int, reply: Any) -> None:
    """REST replies of the wrong shape (asset pages, 10006 bodies): a result or a MarketingCloudError."""
    assume(not (call == "emails" and _bad_asset_items(reply)))  # pinned by test_asset_items_of_the_wrong_type
    check(asyncio.run(attempt(call, status, json.dumps(reply).encode())), f"{call} HTTP {status} {reply!r}")


_NESTED = ("legacyData", "data", "views", "category")


def _bad_asset_items(reply: Any) -> bool:
    """An asset page whose items (or their nested objects) are not JSON objects."""
    items = reply.get("items") if isinstance(reply, dict) else None
    if not isinstance(items, list):
        return False
    return any(not isinstance(item, dict) or any(item.get(k) and not isinstance(item.get(k), dict) for k in _NESTED)
               for item in items)


@pytest.mark.parametrize("reply", [{"items": [None]}, {"items": [1], "count": 1}, {"items": ["x"]},
                                   {"items": [{"legacyData": "x"}]}, {"items": [{"data": [1]}]}])
def test_asset_items_of_the_wrong_type(reply: Any) -> None:
    exc = asyncio.run(attempt("emails", 200, json.dumps(reply).encode()))
    assert isinstance(exc, MarketingCloudError), f"{type(exc).__name__}: {exc}"
