"""The emulator's wire format read with independent parsers (stdlib ElementTree), and zeep via the WSDL."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import httpx
import pytest

from sfmc_emulator import Emulator, EmulatorThread

ENV = "{http://schemas.xmlsoap.org/soap/envelope/}"
P = "{http://exacttarget.com/wsdl/partnerAPI}"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"


# How clients put the token in the SOAP header: the FuelSDKs qualify it, node-soap-based clients do not.
FUELOAUTH = {
    "default namespace": '<fueloauth xmlns="http://exacttarget.com">{}</fueloauth>',
    "prefixed": '<et:fueloauth xmlns:et="http://exacttarget.com">{}</et:fueloauth>',
    "no namespace": "<fueloauth>{}</fueloauth>",
}


def _envelope(token: str, request: str, header: str = FUELOAUTH["default namespace"]) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<soap:Header>{header.format(token)}</soap:Header>"
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


def _status(reply: httpx.Response) -> str | None:
    return ET.fromstring(reply.content).findtext(f"{ENV}Body/{P}RetrieveResponseMsg/{P}OverallStatus")


def _faultstring(reply: httpx.Response) -> str | None:
    return ET.fromstring(reply.content).findtext(f"{ENV}Body/{ENV}Fault/faultstring")


SEND_BY_ID = (
    "<ObjectType>Send</ObjectType><Properties>ID</Properties><Properties>EmailName</Properties>"
    '<Filter xsi:type="SimpleFilterPart"><Property>ID</Property><SimpleOperator>equals</SimpleOperator>'
    "<Value>607105</Value></Filter>"
)


@pytest.mark.parametrize("form", list(FUELOAUTH))
async def test_fueloauth_is_read_with_or_without_its_namespace(emulator: Emulator, form: str) -> None:
    async with httpx.AsyncClient() as http:
        token = await _token(http, emulator)
        body = _envelope(token["access_token"], SEND_BY_ID, FUELOAUTH[form])
        reply = await _soap(http, token["soap_instance_url"], body)
    assert reply.status_code == 200, _faultstring(reply)
    assert _status(reply) == "OK"
    names = ET.fromstring(reply.content).findall(f"{ENV}Body/{P}RetrieveResponseMsg/{P}Results/{P}EmailName")
    assert [name.text for name in names] == ["Weekly Newsletter"]


@pytest.mark.parametrize(
    "header",
    [
        '<soap:Header><token xmlns="http://exacttarget.com">{}</token></soap:Header>',  # another entry
        "<Header><fueloauth>{}</fueloauth></Header>",  # a Header outside the SOAP namespace
        "<soap:Header><wrap><fueloauth>{}</fueloauth></wrap></soap:Header>",  # not a header entry
        "",  # no header at all
    ],
)
async def test_token_only_counts_as_a_soap_header_entry(emulator: Emulator, header: str) -> None:
    async with httpx.AsyncClient() as http:
        token = await _token(http, emulator)
        body = _envelope(token["access_token"], SEND_BY_ID, "").replace("<soap:Header></soap:Header>", header)
        reply = await _soap(http, token["soap_instance_url"], body)
    assert reply.status_code == 500 and _faultstring(reply) == "Login Failed"


async def test_body_stays_in_the_partner_namespace(emulator: Emulator) -> None:
    """SFMC binds the body by its schema: a RetrieveRequestMsg outside the partner API namespace is refused."""
    async with httpx.AsyncClient() as http:
        token = await _token(http, emulator)
        body = _envelope(token["access_token"], SEND_BY_ID, FUELOAUTH["no namespace"])
        bare = body.replace(' xmlns="http://exacttarget.com/wsdl/partnerAPI"', "")
        reply = await _soap(http, token["soap_instance_url"], bare)
    assert reply.status_code == 500
    assert _faultstring(reply) == "expected Body/RetrieveRequestMsg/RetrieveRequest"


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
    assert _status(reply) == (
        "Error: Unable to find a handler for object type: Bogus. Object types are case-sensitive, check spelling."
    )
    assert _faultstring(expired) == "Login Failed"
    assert stale.status_code == 500
    assert _faultstring(stale) == "Token Expired"
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


@pytest.mark.parametrize("object_type", ["send", "subscriber", "DataExtensionObject[No_Such_DE]"])
async def test_unknown_object_types_are_case_sensitive(emulator: Emulator, object_type: str) -> None:
    request = f"<ObjectType>{object_type}</ObjectType><Properties>ID</Properties>"
    async with httpx.AsyncClient() as http:
        token = await _token(http, emulator)
        reply = await _soap(http, token["soap_instance_url"], _envelope(token["access_token"], request))
    assert reply.status_code == 200
    assert _status(reply) == (
        f"Error: Unable to find a handler for object type: {object_type}. "
        "Object types are case-sensitive, check spelling."
    )


@pytest.mark.parametrize("namespace", ["http://exacttarget.com", None], ids=["qualified", "unqualified"])
def test_zeep_retrieves_from_the_wsdl(fixture_data: dict[str, Any], namespace: str | None) -> None:
    """zeep, knowing only the WSDL, with the token header as the FuelSDKs or as node-soap clients send it."""
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
        header = etree.Element(etree.QName(namespace, "fueloauth"), nsmap={None: namespace} if namespace else None)
        header.text = token["access_token"]
        sent: list[ET.Element] = []
        client.plugins.append(_Recorder(sent))
        simple = client.get_type("ns0:SimpleFilterPart")
        complex_ = client.get_type("ns0:ComplexFilterPart")

        def retrieve(request: dict[str, Any]) -> Any:
            return client.service.Retrieve(RetrieveRequest=request, _soapheaders=[header])

        row_filter = complex_(
            LeftOperand=simple(Property="EventDate", SimpleOperator="greaterThan", DateValue=["2020-01-01T00:00:00"]),
            LogicalOperator="AND",
            RightOperand=simple(Property="Ready", SimpleOperator="equals", Value=["true"]),
        )
        properties = ["JobID", "SubscriberID", "EventDate", "LinkContent", "ID", "IsUnique", "ListID", "IsBot_v3"]
        reply = retrieve({"ObjectType": "DataExtensionObject[Click_Log]", "Properties": properties,
                          "Filter": row_filter})  # fmt: skip
        ids: list[str] = []
        pages = 1
        while True:
            for result in reply.Results:
                values = {p.Name: p.Value for p in result.Properties.Property}
                ids.append(values["ID"])
            if reply.OverallStatus != "MoreDataAvailable":
                break
            reply = retrieve({"ContinueRequest": reply.RequestID})
            pages += 1
        assert reply.OverallStatus == "OK"
        assert ids == ["row-1", "row-2", "row-reject"] and pages == 3

        httpx.post(f"{base}_emulator/config", json={"page_size": 2500}).raise_for_status()
        sends = retrieve({
            "ObjectType": "Send", "Properties": ["ID", "Email.ID", "EmailName", "NumberSent"],
            "Filter": simple(Property="ID", SimpleOperator="IN", Value=["607105", "607106", "1"]),
        })  # fmt: skip
        assert sends.OverallStatus == "OK"
        assert sorted((s.ID, s.Email.ID, s.EmailName, s.NumberSent) for s in sends.Results) == [
            (607105, 117131, "Weekly Newsletter", 1000),
            (607106, 117132, "Test", 0),
        ]

        subscribers = retrieve({
            "ObjectType": "Subscriber", "Properties": ["ID", "EmailAddress"],
            "Filter": simple(Property="ID", SimpleOperator="equals", Value=["70257389"]),
        })  # fmt: skip
        assert subscribers.OverallStatus == "OK"
        (subscriber,) = subscribers.Results
        assert (subscriber.ID, subscriber.EmailAddress) == (70257389, " Jane.Doe@Example.COM ")
        assert {a.Name: a.Value for a in subscriber.Attributes}["First Name"] == "Jane"

    # what zeep put on the wire: the header entry exactly as built, the body qualified by the WSDL
    assert len(sent) == 5
    for envelope in sent:
        (entry,) = envelope.findall(f"{ENV}Header/*")
        assert entry.tag == (f"{{{namespace}}}fueloauth" if namespace else "fueloauth")
        assert envelope.find(f"{ENV}Body/{P}RetrieveRequestMsg/{P}RetrieveRequest") is not None


class _Recorder:
    """A zeep plugin keeping each outgoing envelope (re-read with the stdlib parser)."""

    def __init__(self, sent: list[ET.Element]) -> None:
        self.sent = sent

    def egress(self, envelope: Any, http_headers: Any, operation: Any, binding_options: Any) -> Any:
        from lxml import etree

        self.sent.append(ET.fromstring(etree.tostring(envelope)))
        return envelope, http_headers

    def ingress(self, envelope: Any, http_headers: Any, operation: Any) -> Any:
        return envelope, http_headers
