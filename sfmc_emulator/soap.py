"""The emulator's SOAP wire format: reading Retrieve requests and writing SFMC-style replies."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from lxml import etree

from .filters import Predicate, compile_filter
from .objects import BASE, TYPES, Field
from .wire import PARTNER_NS, SOAP_ENV, XSD, XSI, XSI_NIL, XSI_TYPE

WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)


class BadRequest(ValueError):
    """The request is not a SOAP Retrieve the emulator understands (answered as a Client fault)."""


@dataclass(frozen=True)
class RetrieveCall:
    token: str | None
    object_type: str | None
    properties: list[str]
    predicate: Predicate | None
    batch_size: int | None
    continue_id: str | None


def _p(tag: str) -> str:
    return f"{{{PARTNER_NS}}}{tag}"


def _header_text(root: etree._Element, name: str) -> str | None:
    """The text of the first SOAP header entry whose local name is ``name``, whatever its namespace.

    SFMC takes ``<fueloauth>`` bare (as node-soap-based clients send it) as well as in the
    ``http://exacttarget.com`` namespace (as the FuelSDKs send it), so header entries are matched by
    local name. The envelope, ``Header`` and ``Body`` stay strict SOAP 1.1, and the body content stays
    qualified in the partner API namespace, which SFMC binds by its schema.
    """
    header = root.find(f"{{{SOAP_ENV}}}Header")
    if header is None:
        return None
    for entry in header.iterchildren(tag=etree.Element):
        if etree.QName(entry).localname == name:
            text: str | None = entry.text
            return text
    return None


def read_request(content: bytes) -> RetrieveCall:
    try:
        root = etree.fromstring(content, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise BadRequest(f"not well-formed XML: {exc.msg}") from None
    request = root.find(f"{{{SOAP_ENV}}}Body/{_p('RetrieveRequestMsg')}/{_p('RetrieveRequest')}")
    if request is None:
        raise BadRequest("expected Body/RetrieveRequestMsg/RetrieveRequest")
    token = _header_text(root, "fueloauth")
    filter_element = request.find(_p("Filter"))
    batch = request.findtext(f"{_p('Options')}/{_p('BatchSize')}")
    try:
        predicate = compile_filter(filter_element) if filter_element is not None else None
        batch_size = int(batch) if batch and batch.strip() else None
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return RetrieveCall(
        token=token.strip() if token else None,
        object_type=(request.findtext(_p("ObjectType")) or "").strip() or None,
        properties=[(p.text or "").strip() for p in request.iterfind(_p("Properties"))],
        predicate=predicate,
        batch_size=batch_size,
        continue_id=(request.findtext(_p("ContinueRequest")) or "").strip() or None,
    )


def _envelope(action: str) -> tuple[etree._Element, etree._Element]:
    envelope = etree.Element(
        f"{{{SOAP_ENV}}}Envelope",
        nsmap={"soap": SOAP_ENV, "xsi": XSI, "xsd": XSD, "wsa": WSA,
               "wsse": WSSE, "wsu": WSU},
    )  # fmt: skip
    header = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Header")
    now = datetime.now(UTC)
    for tag, text in (
        ("Action", action),
        ("MessageID", f"urn:uuid:{uuid.uuid4()}"),
        ("RelatesTo", f"urn:uuid:{uuid.uuid4()}"),
        ("To", "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"),
    ):
        etree.SubElement(header, f"{{{WSA}}}{tag}").text = text
    security = etree.SubElement(header, f"{{{WSSE}}}Security")
    stamp = etree.SubElement(security, f"{{{WSU}}}Timestamp", {f"{{{WSU}}}Id": f"Timestamp-{uuid.uuid4()}"})
    etree.SubElement(stamp, f"{{{WSU}}}Created").text = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    expires = now + timedelta(minutes=5)
    etree.SubElement(stamp, f"{{{WSU}}}Expires").text = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    return envelope, etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body")


def _bytes(envelope: etree._Element) -> bytes:
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


def fault(code: str, string: str, actor: str = "") -> bytes:
    envelope, body = _envelope("http://schemas.xmlsoap.org/ws/2004/08/addressing/fault")
    element = etree.SubElement(body, f"{{{SOAP_ENV}}}Fault")
    etree.SubElement(element, "faultcode", nsmap={"q0": SOAP_ENV}).text = f"q0:{code}"
    etree.SubElement(element, "faultstring").text = string
    etree.SubElement(element, "faultactor").text = actor
    return _bytes(envelope)


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    child = etree.SubElement(parent, _p(tag))
    if text is not None:
        child.text = text
    return child


def _write_field(parent: etree._Element, field: Field, record: Mapping[str, Any], wanted: set[str]) -> None:
    if field.nested:
        prefix = f"{field.name}."
        parts = [(b, record.get(prefix + b.name)) for b in BASE if prefix + b.name in wanted]
        parts = [(b, v) for b, v in parts if v not in (None, "")]
        if parts:
            nested = _sub(parent, field.name)
            for base, value in parts:
                _sub(nested, base.name, str(value))
        return
    if field.name not in wanted:
        return
    value = record.get(field.name)
    if value is None or (value == "" and field.xsd != "xsd:string"):
        return
    _sub(parent, field.name, str(value))


def _write_result(parent: etree._Element, object_type: str, record: Mapping[str, Any], props: list[str]) -> None:
    result = _sub(parent, "Results")
    result.set(XSI_TYPE, object_type.split("[", 1)[0])
    if object_type.startswith("DataExtensionObject"):
        _sub(result, "PartnerKey").set(XSI_NIL, "true")
        _sub(result, "ObjectID").set(XSI_NIL, "true")
        _sub(result, "Type", "DataExtensionObject")
        properties = _sub(result, "Properties")
        for name in props:
            prop = _sub(properties, "Property")
            _sub(prop, "Name", name)
            _sub(prop, "Value", str(record.get(name, "")))
        return
    wanted = set(props)
    for field in (*BASE, *TYPES[object_type]):
        if field.name == "Attributes":
            for name, value in (record.get("Attributes") or {}).items():
                attribute = _sub(result, "Attributes")
                _sub(attribute, "Name", name)
                _sub(attribute, "Value", value)
        else:
            _write_field(result, field, record, wanted)


def retrieve_reply(
    status: str, request_id: str, object_type: str, records: Iterable[Mapping[str, Any]], props: Sequence[str]
) -> bytes:
    envelope, body = _envelope("RetrieveResponse")
    message = etree.SubElement(body, _p("RetrieveResponseMsg"), nsmap={None: PARTNER_NS})
    _sub(message, "OverallStatus", status)
    _sub(message, "RequestID", request_id)
    for record in records:
        _write_result(message, object_type, record, list(props))
    return _bytes(envelope)
