"""The client against the emulator over real HTTP: exact typed values of the hand-written fixture."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from pydantic import SecretStr

from streams.marketing_cloud import (
    AuthError,
    DataFolder,
    Email,
    MarketingCloudClient,
    RetrieveError,
    RowFailure,
    Send,
    Subscriber,
)

from .conftest import ClientFactory

CST = timezone(timedelta(hours=-6))


async def test_sends_are_typed(make_client: ClientFactory) -> None:
    async with make_client() as client:
        sends = await client.sends(["607106", 607105, 607105])
    assert sends == [
        Send(
            id=607105,
            email_id=117131,
            created_date=datetime(2020, 9, 4, 8, 35, 29, 920000, tzinfo=CST),
            modified_date=datetime(2020, 9, 7, 9, 0, tzinfo=CST),
            hard_bounces=3,
            soft_bounces=2,
            other_bounces=1,
            email_name="Weekly Newsletter",
            from_address="news@example.com",
            from_name="Example News",
            subject="This week",
            preview_url="https://view.example.com/?qs=abc",
            status="Complete",
            sent_date=datetime(2020, 9, 4, 9, 0, tzinfo=CST),
            number_sent=1000,
            number_delivered=994,
            unique_opens=321,
            unique_clicks=45,
            unsubscribes=4,
            forwarded_emails=0,
        ),
        Send(
            id=607106,
            email_id=117132,
            created_date=datetime(2020, 9, 8, 10, 0, tzinfo=CST),
            modified_date=datetime(2020, 9, 8, 10, 0, tzinfo=CST),
            hard_bounces=0,
            soft_bounces=0,
            other_bounces=0,
            email_name="Test",
            from_address="news@example.com",
            from_name="Example News",
            subject="Test Send: This week",
            preview_url="",
            status="Sending",
            sent_date=None,
            number_sent=0,
            number_delivered=0,
            unique_opens=0,
            unique_clicks=0,
            unsubscribes=0,
            forwarded_emails=0,
        ),
    ]


async def test_subscribers_carry_attributes(make_client: ClientFactory) -> None:
    async with make_client() as client:
        assert await client.subscribers([70257389, 1]) == [
            Subscriber(
                id=70257389,
                email_address=" Jane.Doe@Example.COM ",
                created_date=datetime(2019, 1, 2, 3, 4, 5, 500000, tzinfo=CST),
                attributes={
                    "First Name": "Jane",
                    "Last Name": " Doe ",
                    "Company Name": "",
                    "Industry": "Manufacturing",
                },
            )
        ]


async def test_emails_from_content_builder_then_soap(make_client: ClientFactory, admin: httpx.AsyncClient) -> None:
    async with make_client() as client:
        emails = await client.emails([117132, 117131, 5])
    assert emails == [
        Email(
            id=117131,
            name="Weekly Newsletter",
            subject="This week",
            category_id=4421,
            created_date=datetime(2020, 9, 1, 10, 0, tzinfo=CST),
            modified_date=datetime(2020, 9, 2, 11, 30, 0, 500000, tzinfo=CST),
            content_builder=True,
        ),
        Email(
            id=117132,
            name="Classic email",
            subject="Old school",
            category_id=4422,
            created_date=datetime(2018, 5, 6, 7, 8, 9, tzinfo=CST),
            modified_date=datetime(2018, 5, 6, 7, 8, 9, tzinfo=CST),
            content_builder=False,
        ),
    ]
    counts = (await admin.get("counts")).json()["units"]["ien-client"]
    assert counts["rest:asset-query"] == 1
    assert counts["soap:Email"] == 1


async def test_folders(make_client: ClientFactory) -> None:
    async with make_client() as client:
        folders = await client.folders([4422, 100, 4421])
    assert folders == [
        DataFolder(100, None, "Content Builder"),
        DataFolder(4421, 100, "my emails"),
        DataFolder(4422, 4421, "Newsletters"),
    ]


async def test_click_rows_are_raw_strings_and_ready_only(make_client: ClientFactory) -> None:
    async with make_client() as client:
        pages = [page async for page in client.click_rows(datetime(2020, 1, 1, tzinfo=CST))]
    rows = [row for page in pages for row in page]
    assert [row["ID"] for row in rows] == ["row-1", "row-2", "row-reject"]
    assert rows[0] == {
        "JobID": "607105",
        "SubscriberID": "70257389",
        "EventDate": "9/7/2020 7:31:04 AM",
        "LinkContent": "https://example.com/a?lt.lidack=5f5a1b2c3d4e5f6a7b8c9d0e~ack1",
        "ID": "row-1",
        "IsUnique": "True",
        "ListID": "12",
        "IsBot_v3": "False",
    }


async def test_since_compares_in_server_time(make_client: ClientFactory) -> None:
    # 7:31:04 AM at UTC-6 is 13:31:04 UTC: one second later excludes row-1.
    since = datetime(2020, 9, 7, 13, 31, 4, tzinfo=UTC)
    async with make_client() as client:
        rows = [row async for page in client.click_rows(since) for row in page]
    assert [row["ID"] for row in rows] == ["row-2", "row-reject"]


async def test_mark_processed_with_10006(make_client: ClientFactory, admin: httpx.AsyncClient) -> None:
    async with make_client() as client:
        rows = [row async for page in client.click_rows(datetime(2020, 1, 1, tzinfo=CST)) for row in page]
        failures = await client.mark_processed(rows)
        assert failures == [
            RowFailure(
                {
                    "ID": "row-reject",
                    "JobID": "607106",
                    "SubscriberID": "70257390",
                    "EventDate": "9/8/2020 11:59:59 PM",
                    "IsUnique": "True",
                    "ListID": "12",
                },
                10006,
                "Primary key fields do not match the data extension",
            )
        ]
        left = [row["ID"] async for page in client.click_rows(datetime(2020, 1, 1, tzinfo=CST)) for row in page]
    assert left == ["row-reject"]
    state = {row["ID"]: row for row in (await admin.get("rows", params={"client_id": "ien-client"})).json()}
    assert state["row-1"]["Processed"] == "True" and state["row-1"]["Ready"] == "False"
    assert state["row-2"]["Processed"] == "True"
    assert state["row-reject"]["Processed"] == "False" and state["row-reject"]["Ready"] == "True"
    counts = (await admin.get("counts")).json()["total"]
    assert counts["rest:rowset"] == 2  # refused whole, then resent without the bad row


async def test_business_units_are_separate(make_client: ClientFactory) -> None:
    async with make_client(1) as acme, make_client(0) as ien:
        assert [s.email_name for s in await acme.sends([607105])] == ["Acme send"]
        assert [s.email_name for s in await ien.sends([607105])] == ["Weekly Newsletter"]
        rows = [row["ID"] async for page in acme.click_rows(datetime(2020, 1, 1, tzinfo=CST)) for row in page]
    assert rows == ["acme-row-1"]


async def test_unknown_object_type_raises(make_client: ClientFactory) -> None:
    async with make_client() as client:
        with pytest.raises(RetrieveError, match="Unable to find a handler for object type: Nope"):
            [page async for page in client.retrieve("Nope", ["ID"])]
        with pytest.raises(RetrieveError, match="do not match"):
            [page async for page in client.retrieve("Send", ["Attributes"])]


async def test_bad_secret_never_shows(make_client: ClientFactory) -> None:
    unit = make_client().unit.model_copy(update={"client_secret": SecretStr("wrong-secret")})
    client = MarketingCloudClient(unit)
    with pytest.raises(AuthError) as caught:
        await client.sends([1])
    assert "wrong-secret" not in str(caught.value)
    assert "secret" not in repr(client).lower()
    await client.aclose()
