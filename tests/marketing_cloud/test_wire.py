"""The emulator's wire format read with independent parsers (stdlib ElementTree), and zeep via the WSDL."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import httpx
import pytest

from streams.marketing_cloud.emulator import Emulator, EmulatorThread

ENV = "{http://schemas.xmlsoap.org/soap/envelope/}"
P = "{http://exacttarget.com/wsdl/partnerAPI}"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"


def _envelope(token: str, request: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f'<soap:Header><fueloauth xmlns="http://exacttarget.com">{token}</fueloauth></soap:Header>'
        '<soap:Body><RetrieveRequestMsg xmlns="http://exacttarget.com/wsdl/partnerAPI">'
        f"<RetrieveRequest>{request}</RetrieveRequest></RetrieveRequestMsg></soap:Body></soap:Envelope>"
    )


async def _token(http: httpx.AsyncClient, emulator: Emulator, index: int = 0) -> dict[str, Any]:
    unit = emulator.dataset["units"][index]
    reply = await http.post(
        f"{emulator.url}v2/token",
        json={"grant_type": "client_credentials", "client_id": unit["client_id"],
              "client_secret": unit["client_secret"], "account_id": unit["mid"]},
    )  # fmt: skip
    reply.raise_for_status()
    token: dict[str, Any] = reply.json()
    return token


async def _soap(http: httpx.AsyncClient, url: str, body: str) -> httpx.Response:
    return await http.post(f"{url}Service.asmx", content=body, headers={"SOAPAction": "Retrieve"})


async def test_token_reply_shape(emulator: Emulator) -> None:
    async with httpx.AsyncClient() as http:
        token = await _token(http, emulator)
        assert token["expires_in"] == 1080 and token["token_type"] == "Bearer"
        assert token["soap_instance_url"].endswith("/") and token["rest_instance_url"].endswith("/")
        bad = await http.post(
            f"{emulator.url}v2/token",
            json={"grant_type": "client_credentials", "client_id": "ien-client", "client_secret": "x"},
        )
        assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"


async def test_retrieve_reply_is_a_soap_11_envelope(emulator: Emulator) -> None:
    request = (
        "<ObjectType>Subscriber</ObjectType><Properties>ID</Properties><Properties>EmailAddress</Properties>"
        '<Filter xsi:type="SimpleFilterPart"><Property>ID</Property><SimpleOperator>IN</SimpleOperator>'
        "<Value>70257389</Value><Value>5</Value></Filter>"
    )
    async with httpx.AsyncClient() as http:
        token = await _token(http, emulator)
        reply = await _soap(http, token["soap_instance_url"], _envelope(token["access_token"], request))
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(reply.content)
    assert root.tag == f"{ENV}Envelope"
    assert [child.tag for child in root] == [f"{ENV}Header", f"{ENV}Body"]
    message = root.find(f"{ENV}Body/{P}RetrieveResponseMsg")
    assert message is not None
    assert message.findtext(f"{P}OverallStatus") == "OK"
    assert message.findtext(f"{P}RequestID")
    (result,) = message.findall(f"{P}Results")
    assert result.get(XSI_TYPE) == "Subscriber"
    assert result.findtext(f"{P}ID") == "70257389"
    attributes = {a.findtext(f"{P}Name"): a.findtext(f"{P}Value") for a in result.findall(f"{P}Attributes")}
    assert attributes["First Name"] == "Jane"


async def test_unknown_object_type_answers_like_sfmc(emulator: Emulator) -> None:
    async with httpx.AsyncClient() as http:
        token = await _token(http, emulator)
        url = token["soap_instance_url"]
        reply = await _soap(
            http, url, _envelope(token["access_token"], "<ObjectType>Bogus</ObjectType><Properties>ID</Properties>")
        )
        expired = await _soap(http, url, _envelope("not-a-token", "<ObjectType>Send</ObjectType>"))
        await http.post(f"{emulator.url}_emulator/expire-tokens")
        stale = await _soap(http, url, _envelope(token["access_token"], "<ObjectType>Send</ObjectType>"))
        rest = await http.post(
            f"{token['rest_instance_url']}asset/v1/content/assets/query",
            json={},
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )
    assert reply.status_code == 200
    status = ET.fromstring(reply.content).findtext(f"{ENV}Body/{P}RetrieveResponseMsg/{P}OverallStatus")
    assert status is not None and status.startswith("Error: Unable to find object type Bogus")
    assert ET.fromstring(expired.content).findtext(f"{ENV}Body/{ENV}Fault/faultstring") == "Login Failed"
    assert stale.status_code == 500
    assert ET.fromstring(stale.content).findtext(f"{ENV}Body/{ENV}Fault/faultstring") == "Token Expired"
    assert rest.status_code == 401


async def test_rowset_by_key_and_10006(emulator: Emulator) -> None:
    row = emulator.dataset["units"][0]["rows"][0]
    keys = {name: row[name] for name in ("ID", "JobID", "SubscriberID", "EventDate", "IsUnique", "ListID")}
    async with httpx.AsyncClient() as http:
        token = await _token(http, emulator)
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        url = f"{token['rest_instance_url']}hub/v1/dataevents/key:Click_Log/rowset"
        partial = await http.post(
            url, json=[{"keys": {"ID": row["ID"]}, "values": {"Processed": True}}], headers=headers
        )
        ok = await http.post(url, json=[{"keys": keys, "values": {"Processed": True}}], headers=headers)
    assert partial.status_code == 400
    body = partial.json()
    assert body["errorcode"] == 10006 and body["additionalErrors"][0]["keys"] == {"ID": row["ID"]}
    assert ok.status_code == 200 and ok.json()[0]["values"]["Ready"] == "False"


def test_zeep_retrieves_paged_click_rows_from_the_wsdl(fixture_data: dict[str, Any]) -> None:
    zeep = pytest.importorskip("zeep")
    from lxml import etree

    with EmulatorThread(fixture_data) as running:
        unit = fixture_data["units"][0]
        base = running.emulator.url
        httpx.post(f"{base}_emulator/config", json={"page_size": 1}).raise_for_status()
        token = httpx.post(
            f"{base}v2/token",
            json={"grant_type": "client_credentials", "client_id": unit["client_id"],
                  "client_secret": unit["client_secret"]},
        ).json()  # fmt: skip
        client = zeep.Client(f"{token['soap_instance_url']}etframework.wsdl")
        header = etree.Element("{http://exacttarget.com}fueloauth", nsmap={None: "http://exacttarget.com"})
        header.text = token["access_token"]
        simple = client.get_type("ns0:SimpleFilterPart")
        complex_ = client.get_type("ns0:ComplexFilterPart")
        row_filter = complex_(
            LeftOperand=simple(Property="EventDate", SimpleOperator="greaterThan", DateValue=["2020-01-01T00:00:00"]),
            LogicalOperator="AND",
            RightOperand=simple(Property="Ready", SimpleOperator="equals", Value=["true"]),
        )
        properties = ["JobID", "SubscriberID", "EventDate", "LinkContent", "ID", "IsUnique", "ListID", "IsBot_v3"]
        reply = client.service.Retrieve(
            RetrieveRequest={"ObjectType": "DataExtensionObject[Click_Log]", "Properties": properties,
                             "Filter": row_filter},
            _soapheaders=[header],
        )  # fmt: skip
        ids = []
        while True:
            for result in reply.Results:
                values = {p.Name: p.Value for p in result.Properties.Property}
                ids.append(values["ID"])
            if reply.OverallStatus != "MoreDataAvailable":
                break
            reply = client.service.Retrieve(RetrieveRequest={"ContinueRequest": reply.RequestID}, _soapheaders=[header])
    assert reply.OverallStatus == "OK"
    assert ids == ["row-1", "row-2", "row-reject"]
