"""Async Salesforce Marketing Cloud client, usable without faust.

    async with MarketingCloudClient(unit) as client:
        async for page in client.click_rows(since):
            ...
        sends = await client.sends(ids)

The SFMC emulator (``sfmc_emulator``, beside this package) is a separate distribution with its own wire code;
neither imports the other.
"""

from .client import MarketingCloudClient
from .errors import (
    AuthError,
    MalformedResponse,
    MarketingCloudError,
    RestError,
    RetriesExhausted,
    RetrieveError,
    SoapFault,
    TransientError,
)
from .filters import ComplexFilter, Filter, SimpleFilter
from .records import DataFolder, Email, RowFailure, Send, Subscriber
from .values import SERVER_TZ, parse_bool, parse_de_date, parse_soap_date

__all__ = [
    "SERVER_TZ",
    "AuthError",
    "ComplexFilter",
    "DataFolder",
    "Email",
    "Filter",
    "MalformedResponse",
    "MarketingCloudClient",
    "MarketingCloudError",
    "RestError",
    "RetriesExhausted",
    "RetrieveError",
    "RowFailure",
    "Send",
    "SimpleFilter",
    "SoapFault",
    "Subscriber",
    "TransientError",
    "parse_bool",
    "parse_de_date",
    "parse_soap_date",
]
