"""Fixtures: an in-process SFMC emulator over the hand-written ``fixture.json`` and clients for its BUs."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from sfmc_emulator import Emulator, start_emulator
from streams.marketing_cloud import MarketingCloudClient
from streams.settings import BusinessUnit

FIXTURE = Path(__file__).with_name("fixture.json")


@pytest.fixture(scope="session")
def fixture_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text())
    return data


def business_unit(base_url: str, unit: dict[str, Any]) -> BusinessUnit:
    return BusinessUnit(
        tenant=unit["tenant"],
        mid=unit.get("mid"),
        client_id=unit["client_id"],
        client_secret=unit["client_secret"],
        auth_base_url=base_url,
        click_log_key=unit["click_log_key"],
        click_log_object_id=unit["click_log_object_id"],
        skip_job_ids=frozenset(unit.get("skip_job_ids", [])),
    )


@pytest.fixture
async def emulator(fixture_data: dict[str, Any]) -> AsyncIterator[Emulator]:
    running = await start_emulator(copy.deepcopy(fixture_data))
    yield running
    await running.stop()


ClientFactory = Callable[..., MarketingCloudClient]


@pytest.fixture
async def make_client(emulator: Emulator) -> AsyncIterator[ClientFactory]:
    clients: list[MarketingCloudClient] = []

    def make(index: int = 0, **options: Any) -> MarketingCloudClient:
        options.setdefault("backoff_base", 0.01)
        options.setdefault("backoff_cap", 0.05)
        unit = business_unit(emulator.url, emulator.dataset["units"][index])
        client = MarketingCloudClient(unit, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def admin(emulator: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{emulator.url}_emulator/") as http:
        yield http
