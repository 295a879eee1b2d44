"""SOAP 1.1 envelopes for ``Retrieve`` and parsing of ``RetrieveResponseMsg`` with lxml (pure functions)."""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lxml import etree

from .errors import MalformedResponse
from .filters import ComplexFilter, Filter, SimpleFilter
from .values import format_soap_date

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
PARTNER_NS = "http://exacttarget.com/wsdl/partnerAPI"
FUEL_NS = "http://exacttarget.com"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSI_TYPE = f"{{{XSI}}}type"
XSI_NIL = f"{{{XSI}}}nil"

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)

Result = dict[str, Any]
"""One flattened ``Results`` element: dotted names → text; ``Properties``/``Attributes`` → dict."""


def _p(tag: str) -> str:
    return f"{{{PARTNER_NS}}}{tag}"


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    child = etree.SubElement(parent, _p(tag))
    if text is not None:
        child.text = text
    return child


def _envelope(token: str) -> tuple[etree._Element, etree._Element]:
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"s": SOAP_ENV, "xsi": XSI})
    header = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Header")
    oauth = etree.SubElement(header, f"{{{FUEL_NS}}}fueloauth", nsmap={None: FUEL_NS})
    oauth.text = token
    body = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body")
    message = etree.SubElement(body, _p("RetrieveRequestMsg"), nsmap={None: PARTNER_NS})
    return envelope, etree.SubElement(message, _p("RetrieveRequest"))


def _filter(parent: etree._Element, tag: str, part: Filter) -> None:
    element = _sub(parent, tag)
    if isinstance(part, SimpleFilter):
        element.set(XSI_TYPE, "SimpleFilterPart")
        _sub(element, "Property", part.prop)
        _sub(element, "SimpleOperator", part.operator)
        if part.date_value is not None:
            _sub(element, "DateValue", format_soap_date(part.date_value))
        else:
            for value in part.value_list:
                _sub(element, "Value", value)
    elif isinstance(part, ComplexFilter):
        element.set(XSI_TYPE, "ComplexFilterPart")
        _filter(element, "LeftOperand", part.left)
        _sub(element, "LogicalOperator", part.logical)
        _filter(element, "RightOperand", part.right)


def retrieve_envelope(
    token: str,
    object_type: str,
    properties: Iterable[str],
    filter: Filter | None = None,
    batch_size: int | None = None,
) -> bytes:
    """The UTF-8 envelope of a Retrieve of ``object_type``'s ``properties``, with ``token`` in ``fueloauth``, an
    optional ``Filter`` and an optional ``Options/BatchSize`` (rows a page)."""
    envelope, request = _envelope(token)
    _sub(request, "ObjectType", object_type)
    for prop in properties:
        _sub(request, "Properties", prop)
    if filter is not None:
        _filter(request, "Filter", filter)
    if batch_size is not None:
        _sub(_sub(request, "Options"), "BatchSize", str(batch_size))
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


def continue_envelope(token: str, request_id: str) -> bytes:
    """The UTF-8 envelope asking for the next page of the Retrieve whose latest ``RequestID`` is ``request_id``."""
    envelope, request = _envelope(token)
    _sub(request, "ContinueRequest", request_id)
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


@dataclass(frozen=True)
class Fault:
    """A SOAP ``Fault``: its ``faultcode`` and ``faultstring``, stripped."""

    code: str
    string: str

    @property
    def token_expired(self) -> bool:
        """Whether the fault says the token expired (``Token Expired``, any case): refresh and resend."""
        return "token expired" in self.string.lower()


@dataclass(frozen=True)
class RetrieveReply:
    """A ``RetrieveResponseMsg``: ``OverallStatus``, ``RequestID`` (None when absent) and the page's results."""

    status: str
    request_id: str | None
    results: list[Result]

    @property
    def more(self) -> bool:
        """Whether SFMC holds more pages (``MoreDataAvailable``): continue with ``request_id``."""
        return self.status == "MoreDataAvailable"

    @property
    def error(self) -> bool:
        """Whether the status is ``Error: …``."""
        return self.status.startswith("Error")


def _body(content: bytes) -> etree._Element:
    try:
        root = etree.fromstring(content, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise MalformedResponse(f"SOAP reply is not well-formed XML: {exc.msg}") from None
    return _envelope_body(root)


def _envelope_body(root: etree._Element) -> etree._Element:
    body = root.find(f"{{{SOAP_ENV}}}Body")
    if root.tag != f"{{{SOAP_ENV}}}Envelope" or body is None:
        raise MalformedResponse("SOAP reply has no SOAP 1.1 Envelope/Body")
    return body


def parse_fault(content: bytes) -> Fault | None:
    """The ``Fault`` in a SOAP reply, or ``None`` when the reply is not a fault (or not SOAP at all)."""
    try:
        body = _body(content)
    except MalformedResponse:
        return None
    fault = body.find(f"{{{SOAP_ENV}}}Fault")
    if fault is None:
        return None
    return Fault(fault.findtext("faultcode", "").strip(), fault.findtext("faultstring", "").strip())


_MESSAGE, _RESULTS = _p("RetrieveResponseMsg"), _p("Results")


def parse_retrieve(content: bytes) -> RetrieveReply | Fault:
    """A Retrieve reply: its status, request id and flattened ``Results``, or its SOAP fault. Raises
    ``MalformedResponse`` when it is not well-formed XML or not a SOAP 1.1 Retrieve reply.

    The reply is parsed incrementally: each ``Results`` is flattened and emptied once read, so a page of 2,500
    click-log rows never stands whole as an lxml tree (20 MiB for a 1.9 MB page; ``bench.soap_parse``)."""
    results: list[Result] = []
    events = etree.iterparse(io.BytesIO(content), events=("end",), tag=_RESULTS, resolve_entities=False,
                             no_network=True, remove_blank_text=True)
    try:
        for _, element in events:
            parent = element.getparent()
            if parent is not None and parent.tag == _MESSAGE:
                results.append(flatten(element))
                element.clear()  # an empty element stays (removing it costs more than the whole parse)
    except etree.XMLSyntaxError as exc:
        raise MalformedResponse(f"SOAP reply is not well-formed XML: {exc.msg}") from None
    body = _envelope_body(events.root)
    fault = body.find(f"{{{SOAP_ENV}}}Fault")
    if fault is not None:
        return Fault(fault.findtext("faultcode", "").strip(), fault.findtext("faultstring", "").strip())
    message = body.find(_MESSAGE)
    if message is None:
        raise MalformedResponse("SOAP reply has no RetrieveResponseMsg")
    status = message.findtext(_p("OverallStatus"))
    if status is None:
        raise MalformedResponse("RetrieveResponseMsg has no OverallStatus")
    return RetrieveReply(status.strip(), message.findtext(_p("RequestID")), results)


def _is_nil(element: etree._Element) -> bool:
    return element.get(XSI_NIL) == "true"


_NAME, _VALUE = _p("Name"), _p("Value")


def _pairs(elements: Iterable[etree._Element]) -> dict[str, str]:
    """``[Name, Value]`` elements as a dict (one pass over each element's children: the hot path of a
    click-log page, 2,500 rows of 8 properties)."""
    pairs: dict[str, str] = {}
    for element in elements:
        if _is_nil(element):
            continue
        name = value = None
        for child in element:
            if child.tag == _NAME:
                name = child.text
            elif child.tag == _VALUE:
                value = child.text
        pairs[name or ""] = value or ""
    return pairs


def flatten(element: etree._Element, prefix: str = "", into: Result | None = None) -> Result:
    """``Results`` → flat dict: nested objects get dotted names (``Email.ID``), nil elements are left out,
    ``Properties/Property[Name,Value]`` and repeated ``Attributes[Name,Value]`` become dicts."""
    out: Result = {} if into is None else into
    attributes: list[etree._Element] = []
    for child in element:
        tag = child.tag
        if not isinstance(tag, str) or _is_nil(child):
            continue
        name = tag.rpartition("}")[2]  # the local name, at a seventh of etree.QName's cost
        if name == "Attributes" and not prefix:
            attributes.append(child)
        elif name == "Properties" and not prefix:
            out["Properties"] = _pairs(child.iterfind(_p("Property")))
        elif len(child):
            flatten(child, f"{prefix}{name}.", out)
        else:
            out[f"{prefix}{name}"] = child.text or ""
    if attributes:
        out["Attributes"] = _pairs(attributes)
    return out
