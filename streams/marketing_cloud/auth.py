"""OAuth2 client-credentials token: request body, reply parsing and the refresh margin (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..settings import BusinessUnit
from .errors import MalformedResponse


def refresh_margin(lifetime: float) -> float:
    """Seconds to refresh ahead of expiry: 60 or 10 % of ``lifetime`` (seconds), whichever is smaller."""
    return min(60.0, lifetime * 0.1)


@dataclass(frozen=True)
class Token:
    """A cached access token; ``repr`` never shows it. ``rest_url`` and ``soap_url`` end in ``/``."""

    access_token: str = field(repr=False)
    rest_url: str
    soap_url: str
    lifetime: float
    """Seconds the token is valid for (the reply's ``expires_in``)."""
    refresh_at: float
    """Monotonic time (seconds, ``time.monotonic()``) after which the token is refreshed before use."""

    def fresh(self, now: float) -> bool:
        """Whether the token may still be used at ``now`` (monotonic seconds)."""
        return now < self.refresh_at


def token_request(unit: BusinessUnit) -> dict[str, Any]:
    """The JSON body of ``POST {auth_base}v2/token``: client credentials (the secret in clear: never log it),
    and ``account_id`` when the unit has a MID."""
    body: dict[str, Any] = {
        "grant_type": "client_credentials",
        "client_id": unit.client_id,
        "client_secret": unit.client_secret.get_secret_value(),
    }
    if unit.mid is not None:
        body["account_id"] = unit.mid
    return body


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def parse_token(reply: Any, now: float) -> Token:
    """The token of a token endpoint's JSON reply received at ``now`` (monotonic seconds). Raises
    ``MalformedResponse`` when the access token is missing or empty, or ``expires_in`` (a number of seconds) or
    an instance URL is missing."""
    try:
        access_token = reply["access_token"]
        lifetime = float(reply["expires_in"])
        rest_url = _with_slash(reply["rest_instance_url"])
        soap_url = _with_slash(reply["soap_instance_url"])
    except (KeyError, TypeError, ValueError):
        raise MalformedResponse("token reply lacks access_token/expires_in/instance URLs") from None
    if not isinstance(access_token, str) or not access_token:
        raise MalformedResponse("token reply has an empty access_token")
    return Token(access_token, rest_url, soap_url, lifetime, now + lifetime - refresh_margin(lifetime))
