"""OAuth2 client-credentials token: request body, reply parsing and the refresh margin (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..settings import BusinessUnit
from .errors import MalformedResponse


def refresh_margin(lifetime: float) -> float:
    """Refresh ahead of expiry by 60 s or 10 % of the lifetime, whichever is smaller."""
    return min(60.0, lifetime * 0.1)


@dataclass(frozen=True)
class Token:
    """A cached access token; ``repr`` never shows it."""

    access_token: str = field(repr=False)
    rest_url: str
    soap_url: str
    lifetime: float
    refresh_at: float
    """Monotonic time after which the token is refreshed before use."""

    def fresh(self, now: float) -> bool:
        return now < self.refresh_at


def token_request(unit: BusinessUnit) -> dict[str, Any]:
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
