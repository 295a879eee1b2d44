"""Pure functions: value casting, envelope building, result flattening, filter evaluation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from lxml import etree

from streams.marketing_cloud import ComplexFilter, MalformedResponse, SimpleFilter
from streams.marketing_cloud.session import environment_proxy
from streams.marketing_cloud.soap import PARTNER_NS, Fault, RetrieveReply, parse_retrieve, retrieve_envelope
from streams.marketing_cloud.values import format_de_date, parse_bool, parse_de_date, parse_soap_date

CST = timezone(timedelta(hours=-6))


def test_dates_are_fixed_utc_minus_6() -> None:
    assert parse_de_date("9/7/2020 7:31:04 AM") == datetime(2020, 9, 7, 7, 31, 4, tzinfo=CST)
    assert parse_de_date("12/31/2020 12:00:00 AM") == datetime(2020, 12, 31, 0, 0, tzinfo=CST)
    assert parse_de_date("7/1/2021 12:30:00 PM").utcoffset() == timedelta(hours=-6)  # no DST
    assert format_de_date(datetime(2020, 9, 7, 13, 5, 9, tzinfo=CST)) == "9/7/2020 1:05:09 PM"
    assert parse_soap_date("2020-09-04T08:35:29.92") == datetime(2020, 9, 4, 8, 35, 29, 920000, tzinfo=CST)
    with pytest.raises(ValueError):
        parse_de_date("13/45/2020 25:61:00 XM")


@pytest.mark.parametrize(("text", "value"), [("True", True), ("false", False), ("0", False), ("1", True)])
def test_booleans(text: str, value: bool) -> None:
    assert parse_bool(text) is value


def _filter_part(element: etree._Element) -> object:
    """A Filter element read back as nested tuples (whether the emulator evaluates it is tested over HTTP)."""
    def text(tag: str) -> str:
        return (element.findtext(f"{{{PARTNER_NS}}}{tag}") or "").strip()

    left = element.find(f"{{{PARTNER_NS}}}LeftOperand")
    if left is not None:
        right = element.find(f"{{{PARTNER_NS}}}RightOperand")
        assert right is not None
        return (_filter_part(left), text("LogicalOperator"), _filter_part(right))
    values = [value.text for value in element.iterfind(f"{{{PARTNER_NS}}}Value")]
    dates = [parse_soap_date(value.text or "") for value in element.iterfind(f"{{{PARTNER_NS}}}DateValue")]
    return (text("Property"), text("SimpleOperator"), values, dates)


def test_envelope_filters() -> None:
    when = datetime(2020, 9, 7, 13, 0, tzinfo=UTC)
    row_filter = ComplexFilter(SimpleFilter("EventDate", "greaterThan", date_value=when), "AND",
                               SimpleFilter("Ready", "equals", "true"))
    envelope = etree.fromstring(retrieve_envelope("TOKEN", "DataExtensionObject[K]", ["ID"], row_filter, 10))
    found = envelope.find(f".//{{{PARTNER_NS}}}Filter")
    assert found is not None
    assert found.get("{http://www.w3.org/2001/XMLSchema-instance}type", "").endswith("ComplexFilterPart")
    assert _filter_part(found) == (("EventDate", "greaterThan", [], [when]), "AND", ("Ready", "equals", ["true"], []))
    in_filter = etree.fromstring(retrieve_envelope("T", "Send", ["ID"], SimpleFilter("ID", "IN", ["1", "22"])))
    found = in_filter.find(f".//{{{PARTNER_NS}}}Filter")
    assert found is not None
    assert _filter_part(found) == ("ID", "IN", ["1", "22"], [])


def _reply(body: str) -> bytes:
    return (f'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
            f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soap:Body>{body}</soap:Body></soap:Envelope>'
            ).encode()


def test_every_result_is_read_wherever_status_and_request_id_stand() -> None:
    # results are flattened (and emptied) as they are read, the status and request id looked up after
    results = "".join(f'<Results xsi:type="DataFolder"><ID>{i}</ID><Name>f{i}</Name></Results>' for i in range(3))
    expected = RetrieveReply("MoreDataAvailable", "r", [{"ID": str(i), "Name": f"f{i}"} for i in range(3)])
    for message in (f"<OverallStatus>MoreDataAvailable</OverallStatus><RequestID>r</RequestID>{results}",
                    f"{results}<RequestID>r</RequestID><OverallStatus>MoreDataAvailable</OverallStatus>"):
        assert parse_retrieve(_reply(f'<RetrieveResponseMsg xmlns="{PARTNER_NS}">{message}</RetrieveResponseMsg>')
                              ) == expected
    assert parse_retrieve(_reply("<soap:Fault><faultcode>soap:Client</faultcode><faultstring> Token Expired "
                                 "</faultstring></soap:Fault>")) == Fault("soap:Client", "Token Expired")
    with pytest.raises(MalformedResponse, match="no OverallStatus"):
        parse_retrieve(_reply(f'<RetrieveResponseMsg xmlns="{PARTNER_NS}">{results}</RetrieveResponseMsg>'))
    with pytest.raises(MalformedResponse, match="Envelope"):
        parse_retrieve(f'<RetrieveResponseMsg xmlns="{PARTNER_NS}"><Results><ID>1</ID></Results></RetrieveResponseMsg>'
                       .encode())


def test_flatten_nested_and_nil() -> None:
    reply = f"""<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
      xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soap:Body>
      <RetrieveResponseMsg xmlns="{PARTNER_NS}"><OverallStatus>OK</OverallStatus><RequestID>r</RequestID>
      <Results xsi:type="DataFolder"><PartnerKey xsi:nil="true"/><ID>5</ID>
        <ParentFolder><ID>0</ID></ParentFolder><Name/></Results>
      </RetrieveResponseMsg></soap:Body></soap:Envelope>""".encode()
    parsed = parse_retrieve(reply)
    assert isinstance(parsed, RetrieveReply)
    assert parsed.results == [{"ID": "5", "ParentFolder.ID": "0", "Name": ""}]
    with pytest.raises(MalformedResponse):
        parse_retrieve(reply[:-40])


def test_environment_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SFMC client's proxy comes from the environment, per scheme, and NO_PROXY's hosts go direct."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.direct.example")
    environment_proxy.cache_clear()
    assert environment_proxy("https", "mc123.auth.marketingcloudapis.com") == "http://proxy.internal:3128"
    assert environment_proxy("http", "mc123.auth.marketingcloudapis.com") is None
    assert environment_proxy("https", "localhost") is None
    assert environment_proxy("https", "api.direct.example") is None
    environment_proxy.cache_clear()
