"""Pure functions: value casting, envelope building, result flattening, filter evaluation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from lxml import etree

from streams.marketing_cloud import ComplexFilter, MalformedResponse, SimpleFilter
from streams.marketing_cloud.emulator.filters import compile_filter
from streams.marketing_cloud.soap import PARTNER_NS, RetrieveReply, parse_retrieve, retrieve_envelope
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


def test_envelope_filters_and_flattening() -> None:
    row_filter = ComplexFilter(
        SimpleFilter("EventDate", "greaterThan", date_value=datetime(2020, 9, 7, 13, 0, tzinfo=UTC)),
        "AND",
        SimpleFilter("Ready", "equals", "true"),
    )
    envelope = etree.fromstring(retrieve_envelope("TOKEN", "DataExtensionObject[K]", ["ID"], row_filter, 10))
    predicate = compile_filter(envelope.find(f".//{{{PARTNER_NS}}}Filter"))
    assert predicate({"EventDate": "9/7/2020 7:00:01 AM", "Ready": "True"})
    assert not predicate({"EventDate": "9/7/2020 7:00:00 AM", "Ready": "True"})
    assert not predicate({"EventDate": "9/7/2020 7:00:01 AM", "Ready": "False"})
    in_filter = etree.fromstring(retrieve_envelope("T", "Send", ["ID"], SimpleFilter("ID", "IN", ["1", "22"])))
    assert compile_filter(in_filter.find(f".//{{{PARTNER_NS}}}Filter"))({"ID": "22"})


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
