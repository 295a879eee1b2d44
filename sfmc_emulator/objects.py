"""The SOAP object types the emulator implements: ordered fields with XSD types (one source for the
replies it writes and for the WSDL it serves)."""

from __future__ import annotations

from dataclasses import dataclass

from .wire import ROW_KEYS

__all__ = ["BASE", "CLICK_LOG_COLUMNS", "ROW_KEYS", "TYPES", "Field", "requestable"]


@dataclass(frozen=True)
class Field:
    name: str
    xsd: str = "xsd:string"
    many: bool = False

    @property
    def nested(self) -> bool:
        return self.xsd.startswith("tns:") and self.xsd != "tns:APIProperty"


BASE = (
    Field("PartnerKey"),
    Field("CreatedDate", "xsd:dateTime"),
    Field("ModifiedDate", "xsd:dateTime"),
    Field("ID", "xsd:int"),
    Field("ObjectID"),
    Field("CustomerKey"),
)

TYPES: dict[str, tuple[Field, ...]] = {
    "DataExtensionObject": (Field("Type"), Field("Properties", "tns:Properties"), Field("Name")),
    "Send": (
        Field("Email", "tns:Email"),
        Field("FromAddress"),
        Field("FromName"),
        Field("HardBounces", "xsd:int"),
        Field("SoftBounces", "xsd:int"),
        Field("OtherBounces", "xsd:int"),
        Field("ForwardedEmails", "xsd:int"),
        Field("UniqueClicks", "xsd:int"),
        Field("UniqueOpens", "xsd:int"),
        Field("NumberSent", "xsd:int"),
        Field("NumberDelivered", "xsd:int"),
        Field("Unsubscribes", "xsd:int"),
        Field("Subject"),
        Field("PreviewURL"),
        Field("SentDate", "xsd:dateTime"),
        Field("EmailName"),
        Field("Status"),
    ),
    "Subscriber": (
        Field("EmailAddress"),
        Field("Attributes", "tns:Attribute", many=True),
        Field("SubscriberKey"),
        Field("Status"),
    ),
    "Email": (Field("Name"), Field("CategoryID", "xsd:int"), Field("Subject"), Field("Status")),
    "DataFolder": (
        Field("ParentFolder", "tns:DataFolder"),
        Field("Name"),
        Field("Description"),
        Field("ContentType"),
        Field("IsActive", "xsd:boolean"),
    ),
}

NOT_REQUESTABLE = frozenset({"Attributes", "Properties", "Type"})


def requestable(object_type: str) -> frozenset[str]:
    """Property names a Retrieve of ``object_type`` may ask for (nested objects as ``Email.ID``)."""
    names = {field.name for field in BASE}
    for field in TYPES[object_type]:
        if field.nested:
            names.update(f"{field.name}.{base.name}" for base in BASE)
        elif field.name not in NOT_REQUESTABLE:
            names.add(field.name)
    return frozenset(names)


CLICK_LOG_COLUMNS = (
    "ID", "JobID", "SubscriberID", "EventDate", "LinkContent", "IsUnique", "ListID", "IsBot_v3",
    "Ready", "Processed",
)  # fmt: skip
