"""The WSDL the emulator serves at ``{soap}etframework.wsdl``: Retrieve (RetrieveRequest with filters,
Options/BatchSize and ContinueRequest) over the object types in :mod:`.objects`, so zeep works unchanged."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from .objects import BASE, TYPES, Field
from .wire import OPERATORS, PARTNER_NS


def _element(field: Field) -> str:
    occurs = ' maxOccurs="unbounded"' if field.many else ""
    if field.name == "Properties":
        return (
            '<xsd:element name="Properties" minOccurs="0"><xsd:complexType><xsd:sequence>'
            '<xsd:element name="Property" type="tns:APIProperty" minOccurs="0" maxOccurs="unbounded"/>'
            "</xsd:sequence></xsd:complexType></xsd:element>"
        )
    return f'<xsd:element name="{field.name}" type="{field.xsd}" minOccurs="0"{occurs} nillable="true"/>'


def _extension(name: str, base: str, fields: tuple[Field, ...]) -> str:
    inner = "".join(_element(field) for field in fields)
    return (
        f'<xsd:complexType name="{name}"><xsd:complexContent><xsd:extension base="tns:{base}">'
        f"<xsd:sequence>{inner}</xsd:sequence></xsd:extension></xsd:complexContent></xsd:complexType>"
    )


def _enum(name: str, values: list[str]) -> str:
    options = "".join(f'<xsd:enumeration value="{value}"/>' for value in values)
    return (
        f'<xsd:simpleType name="{name}"><xsd:restriction base="xsd:string">{options}</xsd:restriction></xsd:simpleType>'
    )


def _types() -> str:
    objects = []
    for name, fields in TYPES.items():
        if name == "DataExtensionObject":
            objects.append(_extension("ObjectExtension", "APIObject", fields[:2]))
            objects.append(_extension(name, "ObjectExtension", fields[2:]))
        else:
            objects.append(_extension(name, "APIObject", fields))
    base = "".join(_element(field) for field in BASE)
    return f"""
<xsd:complexType name="APIObject" abstract="true"><xsd:sequence>{base}</xsd:sequence></xsd:complexType>
<xsd:complexType name="APIProperty"><xsd:sequence>
  <xsd:element name="Name" type="xsd:string" minOccurs="0"/>
  <xsd:element name="Value" type="xsd:string" minOccurs="0" nillable="true"/>
</xsd:sequence></xsd:complexType>
<xsd:complexType name="Attribute"><xsd:complexContent><xsd:extension base="tns:APIProperty"/></xsd:complexContent>
</xsd:complexType>
{"".join(objects)}
<xsd:complexType name="FilterPart" abstract="true"/>
{_enum("SimpleOperators", sorted(OPERATORS))}
{_enum("LogicalOperators", ["AND", "OR"])}
<xsd:complexType name="SimpleFilterPart"><xsd:complexContent><xsd:extension base="tns:FilterPart"><xsd:sequence>
  <xsd:element name="Property" type="xsd:string"/>
  <xsd:element name="SimpleOperator" type="tns:SimpleOperators"/>
  <xsd:element name="Value" type="xsd:string" minOccurs="0" maxOccurs="unbounded"/>
  <xsd:element name="DateValue" type="xsd:dateTime" minOccurs="0" maxOccurs="unbounded"/>
</xsd:sequence></xsd:extension></xsd:complexContent></xsd:complexType>
<xsd:complexType name="ComplexFilterPart"><xsd:complexContent><xsd:extension base="tns:FilterPart"><xsd:sequence>
  <xsd:element name="LeftOperand" type="tns:FilterPart"/>
  <xsd:element name="LogicalOperator" type="tns:LogicalOperators"/>
  <xsd:element name="RightOperand" type="tns:FilterPart"/>
</xsd:sequence></xsd:extension></xsd:complexContent></xsd:complexType>
<xsd:complexType name="RetrieveOptions"><xsd:sequence>
  <xsd:element name="BatchSize" type="xsd:int" minOccurs="0"/>
</xsd:sequence></xsd:complexType>
<xsd:complexType name="RetrieveRequest"><xsd:sequence>
  <xsd:element name="ObjectType" type="xsd:string" minOccurs="0"/>
  <xsd:element name="Properties" type="xsd:string" minOccurs="0" maxOccurs="unbounded"/>
  <xsd:element name="Filter" type="tns:FilterPart" minOccurs="0"/>
  <xsd:element name="ContinueRequest" type="xsd:string" minOccurs="0"/>
  <xsd:element name="Options" type="tns:RetrieveOptions" minOccurs="0"/>
</xsd:sequence></xsd:complexType>
<xsd:element name="RetrieveRequestMsg"><xsd:complexType><xsd:sequence>
  <xsd:element name="RetrieveRequest" type="tns:RetrieveRequest"/>
</xsd:sequence></xsd:complexType></xsd:element>
<xsd:element name="RetrieveResponseMsg"><xsd:complexType><xsd:sequence>
  <xsd:element name="OverallStatus" type="xsd:string"/>
  <xsd:element name="RequestID" type="xsd:string" minOccurs="0"/>
  <xsd:element name="Results" type="tns:APIObject" minOccurs="0" maxOccurs="unbounded"/>
</xsd:sequence></xsd:complexType></xsd:element>
"""


def wsdl(service_url: str) -> str:
    """The WSDL text with the service address ``service_url`` (``…/Service.asmx``)."""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<wsdl:definitions name="PartnerAPI" targetNamespace="{PARTNER_NS}" xmlns:tns="{PARTNER_NS}"
  xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
  xmlns:xsd="http://www.w3.org/2001/XMLSchema">
<wsdl:types>
<xsd:schema targetNamespace="{PARTNER_NS}" elementFormDefault="qualified">{_types()}</xsd:schema>
</wsdl:types>
<wsdl:message name="RetrieveRequestMsg"><wsdl:part name="parameters" element="tns:RetrieveRequestMsg"/></wsdl:message>
<wsdl:message name="RetrieveResponseMsg"><wsdl:part name="parameters" element="tns:RetrieveResponseMsg"/></wsdl:message>
<wsdl:portType name="Soap"><wsdl:operation name="Retrieve">
  <wsdl:input message="tns:RetrieveRequestMsg"/><wsdl:output message="tns:RetrieveResponseMsg"/>
</wsdl:operation></wsdl:portType>
<wsdl:binding name="SoapBinding" type="tns:Soap">
  <soap:binding transport="http://schemas.xmlsoap.org/soap/http" style="document"/>
  <wsdl:operation name="Retrieve"><soap:operation soapAction="Retrieve" style="document"/>
    <wsdl:input><soap:body use="literal"/></wsdl:input><wsdl:output><soap:body use="literal"/></wsdl:output>
  </wsdl:operation>
</wsdl:binding>
<wsdl:service name="PartnerAPI"><wsdl:port name="Soap" binding="tns:SoapBinding">
  <soap:address location={quoteattr(service_url)}/>
</wsdl:port></wsdl:service>
</wsdl:definitions>
"""
