"""Paging, large IN filters, retries on 429/500, and token refresh — counted by the emulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from sfmc_emulator import Emulator, Sizes, generate, start_emulator
from streams.marketing_cloud import MarketingCloudClient, RetriesExhausted
from streams.marketing_cloud.values import SERVER_TZ

from .conftest import ClientFactory, business_unit


@pytest.fixture(scope="module")
def generated() -> dict[str, Any]:
    return generate(Sizes(rows=1200, sends=600, subscribers=50, emails=10, categories=6), seed=7)


@pytest.fixture
async def big(generated: dict[str, Any]) -> AsyncIterator[Emulator]:
    running = await start_emulator(generated)
    yield running
    await running.stop()


async def _counts(emulator: Emulator) -> dict[str, int]:
    async with httpx.AsyncClient() as http:
        counts: dict[str, int] = (await http.get(f"{emulator.url}_emulator/counts")).json()["total"]
    return counts


async def _config(emulator: Emulator, **knobs: Any) -> None:
    async with httpx.AsyncClient() as http:
        (await http.post(f"{emulator.url}_emulator/config", json=knobs)).raise_for_status()


def _client(emulator: Emulator, **options: Any) -> MarketingCloudClient:
    unit = business_unit(emulator.url, emulator.dataset["units"][0])
    return MarketingCloudClient(unit, backoff_base=0.01, backoff_cap=0.05, **options)


async def test_paged_click_rows_follow_request_ids(big: Emulator) -> None:
    await _config(big, page_size=100)
    async with _client(big) as client:
        pages = [page async for page in client.click_rows(datetime(2000, 1, 1, tzinfo=SERVER_TZ), page_size=250)]
    rows = [row for page in pages for row in page]
    expected = [row["ID"] for row in big.dataset["units"][0]["rows"]]
    assert [row["ID"] for row in rows] == expected
    assert [len(page) for page in pages[:-1]] == [100] * (len(pages) - 1)
    counts = await _counts(big)
    assert counts["soap:continue"] == len(pages) - 1 >= 11
    assert counts["soap:DataExtensionObject"] == 1


async def test_in_filter_with_hundreds_of_ids(big: Emulator) -> None:
    ids = [int(send["ID"]) for send in big.dataset["units"][0]["sends"]]
    assert len(ids) == 600
    async with _client(big) as client:
        sends = await client.sends([*ids, 1, 2, 3])
    assert [send.id for send in sends] == sorted(ids)
    assert (await _counts(big))["soap:Send"] == 1


async def test_soap_500_is_retried(make_client: ClientFactory, emulator: Emulator) -> None:
    await _config(emulator, fail_next_500=2)
    async with make_client() as client:
        assert [send.id for send in await client.sends([607105])] == [607105]
        assert client.stats["retries"] == 2
    counts = await _counts(emulator)
    assert counts["http500"] == 2 and counts["soap:Send"] == 1


async def test_rest_429_honours_retry_after(make_client: ClientFactory, emulator: Emulator) -> None:
    await _config(emulator, fail_next_429=2, retry_after=0.05)
    async with make_client() as client:
        started = asyncio.get_running_loop().time()
        assert [email.id for email in await client.emails([117131])] == [117131]
        assert asyncio.get_running_loop().time() - started >= 0.1
        assert client.stats["throttled"] == 2 and client.stats["retries"] == 2
    counts = await _counts(emulator)
    assert counts["http429"] == 2 and counts["rest:asset-query"] == 1


async def test_retries_are_bounded(make_client: ClientFactory, emulator: Emulator) -> None:
    await _config(emulator, fail_next_500=10)
    async with make_client(max_attempts=3) as client:
        with pytest.raises(RetriesExhausted, match="3 attempts"):
            await client.sends([607105])
    assert (await _counts(emulator))["http500"] == 3


async def test_connect_errors_are_retried_then_raise(fixture_data: dict[str, Any]) -> None:
    unit = business_unit("http://127.0.0.1:9/", fixture_data["units"][0])
    async with MarketingCloudClient(unit, max_attempts=2, backoff_base=0.001) as client:
        with pytest.raises(RetriesExhausted):
            await client.sends([1])
        assert client.stats["retries"] == 1


async def test_token_refreshed_ahead_of_expiry(make_client: ClientFactory, emulator: Emulator) -> None:
    await _config(emulator, token_lifetime=1)
    async with make_client() as client:
        await client.sends([607105])
        await client.sends([607105])
        assert (await _counts(emulator))["token"] == 1
        await asyncio.sleep(1.0)  # the token's lifetime passes: what the client must notice on its own, unasked
        await client.sends([607105])
        assert client.stats["token_refreshes"] == 2
    assert (await _counts(emulator))["token"] == 2


async def test_expired_token_refreshed_once_soap_and_rest(make_client: ClientFactory, emulator: Emulator) -> None:
    async with make_client() as client, httpx.AsyncClient() as http:
        await client.sends([607105])
        await http.post(f"{emulator.url}_emulator/expire-tokens")
        await client.sends([607105])  # SOAP fault "Token Expired" → refresh, resend
        await http.post(f"{emulator.url}_emulator/expire-tokens")
        await client.emails([117131])  # REST 401 → refresh, resend
        assert client.stats["token_refreshes"] == 3
    counts = await _counts(emulator)
    assert counts["token"] == 3 and counts["soap:Send"] == 2


async def test_concurrent_callers_share_one_token(make_client: ClientFactory, emulator: Emulator) -> None:
    async with make_client(max_concurrency=2) as client:
        results = await asyncio.gather(*(client.sends([607105]) for _ in range(12)))
    assert all(len(sends) == 1 for sends in results)
    assert (await _counts(emulator))["token"] == 1


async def test_mark_processed_in_chunks_of_50(big: Emulator) -> None:
    unit = big.dataset["units"][0]
    async with _client(big) as client:
        rows = [row async for page in client.click_rows(datetime(2000, 1, 1, tzinfo=SERVER_TZ)) for row in page]
        failures = await client.mark_processed(rows[:120])
        rejected = set(unit["reject_row_ids"]) & {row["ID"] for row in rows[:120]}
        assert {failure.keys["ID"] for failure in failures} == rejected
        assert all(failure.code == 10006 for failure in failures)
        left = [row async for page in client.click_rows(datetime(2000, 1, 1, tzinfo=SERVER_TZ)) for row in page]
    assert len(left) == len(rows) - 120 + len(rejected)
