"""LinkContent parsing (SPEC section 3): the tracked URL id and acknowledgement code of a click."""

from __future__ import annotations

import re
from typing import NamedTuple

_HEX24 = r"[0-9a-fA-F]{24}"
_ACK = r"[A-Za-z0-9_-]+"
_LIDACK = re.compile(rf"[?&]lt\.lidack=({_HEX24})~({_ACK})")
_LEGACY_PATH = re.compile(rf"^(?:https?://)?leads\.limit0\.io/click/({_HEX24})(?:[/?#]|$)", re.IGNORECASE)
_ACK_QUERY = re.compile(rf"[?&]ack=({_ACK})")
_LID = re.compile(rf"[?&]lt\.lid=({_HEX24})(?:[&#]|$)")
_LT_ACK = re.compile(rf"[?&]lt\.ack=({_ACK})")


class Link(NamedTuple):
    url_id: str
    ack: str


def parse_link(content: str) -> Link | None:
    """Return the link's ``(urlId, ack)``, or None unless one accepted form gives both.

    Forms are tried in SPEC order: ``lt.lidack={urlId}~{ack}``; the legacy ``…/click/{urlId}`` path with
    query ``ack=``; ``lt.lid=`` with ``lt.ack=``. Url ids are returned in lower case.
    """
    content = content.strip()
    if match := _LIDACK.search(content):
        return Link(match[1].lower(), match[2])
    if (path := _LEGACY_PATH.search(content)) and (ack := _ACK_QUERY.search(content)):
        return Link(path[1].lower(), ack[1])
    if (lid := _LID.search(content)) and (ack := _LT_ACK.search(content)):
        return Link(lid[1].lower(), ack[1])
    return None
