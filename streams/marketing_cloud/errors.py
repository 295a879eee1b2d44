"""One exception hierarchy for the SFMC client; messages never carry secrets or tokens."""

from __future__ import annotations


class MarketingCloudError(Exception):
    """Base class of every error the client raises."""


class AuthError(MarketingCloudError):
    """The token endpoint refused the credentials, or a fresh token was refused again."""


class SoapFault(MarketingCloudError):
    """SFMC answered a SOAP ``Fault`` that is neither an expired token nor a transient server error."""

    def __init__(self, faultcode: str, faultstring: str) -> None:
        super().__init__(f"SOAP fault {faultcode}: {faultstring}")
        self.faultcode = faultcode
        self.faultstring = faultstring


class RetrieveError(MarketingCloudError):
    """A Retrieve answered ``OverallStatus`` ``Error: …`` (for example an unknown object type)."""

    def __init__(self, object_type: str, status: str) -> None:
        super().__init__(f"Retrieve {object_type} failed: {status}")
        self.object_type = object_type
        self.status = status


class RestError(MarketingCloudError):
    """A REST call answered an error status that is not retried."""

    def __init__(self, status_code: int, errorcode: int | None, message: str) -> None:
        super().__init__(f"HTTP {status_code} (errorcode {errorcode}): {message}")
        self.status_code = status_code
        self.errorcode = errorcode
        self.message = message


class TransientError(MarketingCloudError):
    """A retryable failure: throttling (429), a 5xx answer, a connect error or a timeout. The client retries
    these itself and raises one only as ``RetriesExhausted``, once its attempts are spent."""


class RetriesExhausted(TransientError):
    """Every attempt failed transiently; ``last`` describes the final failure."""

    def __init__(self, attempts: int, last: str) -> None:
        super().__init__(f"gave up after {attempts} attempts: {last}")
        self.attempts = attempts
        self.last = last


class MalformedResponse(MarketingCloudError):
    """A reply could not be parsed: truncated or invalid XML/JSON, or missing required parts."""
