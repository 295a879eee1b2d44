"""LinkContent parsing (SPEC section 3): the tracked URL id and acknowledgement code of a click.

A link is read as it was written in the email: HTML character references ending in ``;`` are decoded
(``&amp;`` → ``&``, ``&#126;`` → ``~``), then percent-encoding is decoded once (``%7E`` → ``~``), then
surrounding whitespace is dropped. Only references ending in ``;`` are decoded because HTML's legacy
forms without one would eat parameters: ``html.unescape("?a=1&lt.lid=…")`` gives ``"?a=1<.lid=…"``.

In the decoded text a parameter counts only where it stands as one: at the start or right after one of
``? & ; #``. So the nested, wrapped and fragment forms are found, and ``utm_track=foo`` or ``xlt.lid=…``
hold no parameter. The legacy path counts where a host name can stand: at the start or right after ``//``.
"""

from __future__ import annotations

import html
import re
from html.entities import html5
from typing import NamedTuple
from urllib.parse import unquote

_HEX24 = r"[0-9a-fA-F]{24}"
_ACK = r"[A-Za-z0-9_-]+"
_END = r"(?![A-Za-z0-9_-])"  # a urlId is the whole value, not the start of a longer token
_PARAM = r"(?:^|(?<=[?&;#]))"  # a parameter starts the text or follows a separator

_CHARACTER_REFERENCE = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
_LIDACK = re.compile(rf"{_PARAM}lt\.lidack=({_HEX24})~({_ACK})")
_LEGACY_PATH = re.compile(
    rf"(?:^|(?<=//))(?:[a-z0-9-]+\.)*leads\.limit0\.io(?::[0-9]+)?/click/({_HEX24}){_END}", re.IGNORECASE | re.ASCII
)
_ACK_PARAM = re.compile(rf"{_PARAM}ack=({_ACK})")
_LT_ACK_PARAM = re.compile(rf"{_PARAM}lt\.ack=({_ACK})")
_LID = re.compile(rf"{_PARAM}lt\.lid=({_HEX24}){_END}")


class Link(NamedTuple):
    """The tracked URL id and acknowledgement code of a click (SPEC 3)."""

    url_id: str  # 24 hex digits, lower case
    ack: str  # [A-Za-z0-9_-]+


def parse_link(content: str) -> Link | None:
    """Return the link's ``(urlId, ack)``, or None unless one accepted form gives both.

    Forms, tried in SPEC order (``I`` = 24 hex digits, any case; ``A`` = ``[A-Za-z0-9_-]+``):

    1. ``lt.lidack=I~A``;
    2. ``[scheme]//[subdomain.]leads.limit0.io[:port]/click/I`` (or that host at the very start) with an
       ``ack=A`` parameter, else an ``lt.ack=A`` one;
    3. ``lt.lid=I`` with an ``lt.ack=A`` parameter, else an ``ack=A`` one.

    Parameters may come in any order and anywhere in the (possibly nested) link; of several, the first
    valid one counts. Url ids are returned in lower case.
    """
    text = decode_link(content)
    if match := _LIDACK.search(text):
        return Link(match[1].lower(), match[2])
    if (path := _LEGACY_PATH.search(text)) and (ack := _ACK_PARAM.search(text) or _LT_ACK_PARAM.search(text)):
        return Link(path[1].lower(), ack[1])
    if (lid := _LID.search(text)) and (ack := _LT_ACK_PARAM.search(text) or _ACK_PARAM.search(text)):
        return Link(lid[1].lower(), ack[1])
    return None


def decode_link(content: str) -> str:
    """The link as parsed: ``;``-terminated HTML character references decoded, then percent-encoding
    decoded once, then surrounding whitespace stripped."""
    return unquote(_CHARACTER_REFERENCE.sub(_decode_reference, content)).strip()


def _decode_reference(match: re.Match[str]) -> str:
    reference = match[0]
    if reference[1] == "#" or reference[1:] in html5:
        return html.unescape(reference)
    return reference  # not a character reference HTML defines: left as written
