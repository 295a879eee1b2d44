"""SPEC 3 link parsing: the accepted forms, the ways links arrive (escaped, encoded, nested, after ``#`` or
``;``, on other hosts) and what is never a parameter; checked by example, against links built from known
parts, and against the end-to-end tests' independent reading (``tests/pipeline/expected.link_parts``)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streams.links import Link, parse_link
from tests.pipeline.expected import link_parts

URL = "5f47e1c107809f52ef34357c"  # "I" in issue 14
ACK_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        # issue 14, part 1: its right values
        (f"https://x.com/p#lt.lidack={URL}~k9", Link(URL, "k9")),
        (f"https://www.leads.limit0.io/click/{URL}?ack=k9", Link(URL, "k9")),
        (f"https://x.com/p?lt.lid={URL}&ack=k9", Link(URL, "k9")),
        (f"https://x.com/p?a=1&amp;lt.lidack={URL}~k9", Link(URL, "k9")),
        (f"https://x.com/p?lt.lidack={URL}%7Ek9", Link(URL, "k9")),
        (f"http://leads.limit0.io/click/{URL}?utm_track=foo", None),
        # the three forms
        (f"https://x.io/a?lt.lidack={URL}~Ab_1-z", Link(URL, "Ab_1-z")),
        (f"https://x.io/a?utm=1&lt.lidack={URL.upper()}~k9&x=2", Link(URL, "k9")),
        (f"https://leads.limit0.io/click/{URL}?ack=q1", Link(URL, "q1")),
        (f"http://LEADS.limit0.io/click/{URL}/?x=1&ack=q2", Link(URL, "q2")),
        (f"https://x.io/?lt.lid={URL}&lt.ack=z-z", Link(URL, "z-z")),
        (f"https://x.io/?lt.ack=z&lt.lid={URL}", Link(URL, "z")),
        # the first form wins over the third when both are present, the second over the third
        (f"https://x.io/?lt.lid={'a' * 24}&lt.ack=b&lt.lidack={URL}~c", Link(URL, "c")),
        (f"https://leads.limit0.io/click/{URL}?lt.lid={'a' * 24}&lt.ack=b", Link(URL, "b")),
        # which ack: legacy prefers ack=, lt.lid prefers lt.ack=; of several, the first valid
        (f"https://leads.limit0.io/click/{URL}?lt.ack=a1&ack=b2", Link(URL, "b2")),
        (f"https://x.com/?ack=a1&lt.lid={URL}&lt.ack=b2", Link(URL, "b2")),
        (f"https://x.com/?lt.lid={URL}&ack=&ack=.x&ack=k9&ack=z", Link(URL, "k9")),
        # an ack value ends at the first character that cannot be in one
        (f"https://x.com/?lt.lidack={URL}~k9.html", Link(URL, "k9")),
    ],
)
def test_link_values(content: str, expected: Link | None) -> None:
    assert parse_link(content) == expected


WRAP = "https://wrap.example/r?id=7&u="


@pytest.mark.parametrize(
    "content",
    [
        # separators: `;`, `#`, at the start
        f"https://x.com/p;lt.lidack={URL}~k9",
        f"https://x.com/p?a=1;lt.lid={URL};lt.ack=k9",
        f"https://x.com/p?utm=1#lt.lid={URL}&lt.ack=k9",
        f"lt.lidack={URL}~k9",
        f"  https://x.com/p?lt.lidack={URL}~k9\n",
        f"https://x.com/?lt.lid={'0' * 25}&lt.lid={URL}&lt.ack=k9",
        # legacy path: lt.ack, subdomains, ports, scheme-relative, no scheme at the start, case
        f"https://leads.limit0.io/click/{URL}?lt.ack=k9",
        f"https://a.b-c.leads.limit0.io:8443/click/{URL}#ack=k9",
        f"//leads.limit0.io/click/{URL}?ack=k9",
        f"leads.limit0.io/click/{URL}?ack=k9",
        f"https://LEADS.Limit0.IO/CLICK/{URL.upper()}?ack=k9",
        # nested in a redirect wrapper, plain or percent-encoded (decoded once)
        WRAP + f"https://x.com/p?lt.lidack={URL}~k9",
        WRAP + quote(f"https://x.com/p?a=1&lt.lidack={URL}~k9", safe=""),
        WRAP + f"https://leads.limit0.io/click/{URL}?ack=k9",
        WRAP + quote(f"https://www.leads.limit0.io/click/{URL}?ack=k9", safe=""),
        WRAP + quote(f"https://x.com/p?lt.lid={URL}&lt.ack=k9", safe=""),
        # HTML-escaped and percent-encoded pieces
        html.escape(f"https://x.com/p?a=1&lt.lid={URL}&lt.ack=k9"),
        f"https://x.com/p?a=1&#38;lt.lidack={URL}&#126;k9",
        f"https://x.com/p?a=1&#x26;lt.lid%3D{URL}%26lt.ack%3dk9",
        f"https://x.com/p?a=1%26lt.lidack={URL}%7ek9",
        # `&lt.` is a parameter, not HTML's `&lt` without its `;` (the generator writes links this way)
        f"https://www.example.com/alpha?utm_source=newsletter&lt.lidack={URL}~k9",
        f"https://x.com/?a=1&notify=1&lt.lid={URL}&lt.ack=k9",
    ],
)
def test_links_as_they_arrive(content: str) -> None:
    """Escaped, encoded, nested, after ``#`` or ``;``, on other host names: all give (URL, k9)."""
    assert parse_link(content) == Link(URL, "k9")


@pytest.mark.parametrize(
    "content",
    [
        "",
        "https://example.com/",
        f"https://x.io/?lt.lid={URL}",  # no ack
        "https://x.io/?lt.ack=abc",  # no url id
        f"https://x.io/?lt.lid={URL}0&lt.ack=a",  # 25 hex digits
        f"https://other.io/click/{URL}?ack=a",  # legacy path on another host
        f"https://x.io/?lt.lidack={URL}~",  # empty ack
        f"https://x.io/?lt.lidack={URL[:-1]}~a",  # short id
        # a name inside another name, or a value, is no parameter
        f"https://x.com/p?xlt.lid={URL}&lt.ack=k9",
        f"https://x.com/p?lt.lid={URL}&utm_track=foo",
        f"https://leads.limit0.io/click/{URL}?back=k9",
        f"https://x.com/p?q=lt.lidack={URL}~k9",
        f"https://x.com/p?lt.lidackx={URL}~k9",
        f"https://leads.limit0.io/click/{URL}?ref=ack=k9",
        # other hosts that only look like the legacy one; the legacy host in a path or a bare value
        f"https://evilleads.limit0.io/click/{URL}?ack=k9",
        f"https://leads.limit0.io.evil.com/click/{URL}?ack=k9",
        f"https://x.com/leads.limit0.io/click/{URL}?ack=k9",
        f"{WRAP}leads.limit0.io/click/{URL}&ack=k9",
        f"https://leads.limit0.io/click/{URL}0?ack=k9",
        f"https://leads.limit0.io/v2/click/{URL}?ack=k9",
        # percent-encoding is decoded once, not twice
        f"https://x.com/p?lt.lidack={URL}%257Ek9",
        WRAP + quote(f"https://x.com/p?lt.lidack={URL}%7Ek9", safe=""),
        # only references ending in `;` that HTML defines are decoded
        f"https://x.com/p?lt.lidack={URL}&#126k9",
        f"https://x.com/p?lt.lidack={URL}&tilde;k9",
    ],
)
def test_rejected_forms(content: str) -> None:
    assert parse_link(content) is None


# --------------------------------------------------------------------------------------------------
# links built from known parts: the right value is known by construction


@dataclass(frozen=True)
class Part:
    """One parameter as written, and what it is: "lidack", "lid", "ack", "lt.ack", or "noise"."""

    text: str
    kind: str
    url_id: str = ""
    ack: str = ""


url_ids = st.text("0123456789abcdefABCDEF", min_size=24, max_size=24)
acks = st.text(ACK_ALPHABET, min_size=1, max_size=8)
NOISE = [
    "utm_source=newsletter", "utm_track=foo", f"xlt.lid={URL}", "back=k9", f"q=lt.lidack={URL}~k9", "ref=ack=k9",
    f"lt.lidackx={URL}~k9", "lt.acks=1", "a=1", "flag", "", "ack=", "lt.ack=.x", f"lt.lid={URL}0", f"lt.lid={URL[:-1]}",
    f"lt.lidack={URL}~", f"lt.lidack={URL}-k9", f"lt.lidack={URL[:-1]}~k9", f"lid={URL}", "lidack=",
]  # fmt: skip


@st.composite
def parts(draw: st.DrawFn, escapes: bool) -> Part:
    """A parameter; ``escapes``: its ``=`` and ``~`` may be percent-encoded or HTML references."""
    kind = draw(st.sampled_from(["lidack", "lid", "ack", "lt.ack", "noise"]))
    equals = draw(st.sampled_from(["=", "%3D", "%3d"] if escapes else ["="]))
    if kind == "lidack":
        url_id, ack = draw(url_ids), draw(acks)
        tilde = draw(st.sampled_from(["~", "%7E", "%7e", "&#126;", "&#x7E;"] if escapes else ["~"]))
        return Part(f"lt.lidack{equals}{url_id}{tilde}{ack}", kind, url_id=url_id, ack=ack)
    if kind == "lid":
        url_id = draw(url_ids)
        return Part(f"lt.lid{equals}{url_id}", kind, url_id=url_id)
    if kind in ("ack", "lt.ack"):
        ack = draw(acks)
        return Part(f"{kind}{equals}{ack}", kind, ack=ack)
    return Part(draw(st.sampled_from(NOISE)), "noise")


@st.composite
def built_links(draw: st.DrawFn) -> tuple[str, Link | None]:
    """``(link, right value)``: a base URL (legacy or not, or none), parameters, and one outer layer."""
    layer = draw(st.sampled_from(["none", "spaces", "html", "wrap", "wrap-encoded"]))
    escapes = layer in ("none", "spaces", "wrap")  # escapes inside an escaped layer would be decoded once only
    base_kind = draw(st.sampled_from(["plain", "legacy", "none"] if layer in ("none", "spaces", "html") else
                                     ["plain", "legacy"]))
    legacy_id = ""
    if base_kind == "legacy":
        legacy_id = draw(url_ids)
        scheme = draw(st.sampled_from(["https://", "http://", "//", ""] if layer in ("none", "spaces", "html") else
                                      ["https://", "//"]))
        host = draw(st.sampled_from(["", "www.", "a.b-c."])) + draw(st.sampled_from(["leads.limit0.io",
                                                                                    "LEADS.Limit0.IO"]))
        port, tail = draw(st.sampled_from(["", ":8443"])), draw(st.sampled_from(["", "/", "/x.html"]))
        base = f"{scheme}{host}{port}/click/{legacy_id}{tail}"
    elif base_kind == "plain":
        host = draw(st.sampled_from(["x.com", "www.example.com", "evilleads.limit0.io", "leads.limit0.io.evil.com",
                                     "leads.limit0.io"]))
        path = draw(st.sampled_from(["", "p", "a/b", f"leads.limit0.io/click/{URL}", f"click/{URL}0",
                                     f"v2/click/{URL}"]))
        base = f"{draw(st.sampled_from(['https://', '']))}{host}/{path}"
    else:
        base = ""
    params = draw(st.lists(parts(escapes), max_size=6))
    separators = ["&", ";", "#", "&amp;", *(["%26", "&#38;", "&#x26;"] if escapes else [])]
    link = base
    for index, part in enumerate(params):
        if index == 0:
            link += draw(st.sampled_from(["?", "#", ";"])) if base else ""
        else:
            link += draw(st.sampled_from(separators))
        link += part.text
    link = {
        "none": link, "spaces": f" \t{link} \n", "html": html.escape(link, quote=False), "wrap": WRAP + link,
        "wrap-encoded": WRAP + quote(link, safe=""),
    }[layer]  # fmt: skip

    def first(kind: str) -> Part | None:
        return next((part for part in params if part.kind == kind), None)

    ack = first("ack") or first("lt.ack")
    lt_ack = first("lt.ack") or first("ack")
    if lidack := first("lidack"):
        return link, Link(lidack.url_id.lower(), lidack.ack)
    if legacy_id and ack:
        return link, Link(legacy_id.lower(), ack.ack)
    if (lid := first("lid")) and lt_ack:
        return link, Link(lid.url_id.lower(), lt_ack.ack)
    return link, None


@settings(max_examples=1500)
@given(built_links())
def test_built_links(case: tuple[str, Link | None]) -> None:
    """parse_link (and the end-to-end expectation) give the value a link was built to carry."""
    link, right = case
    assert parse_link(link) == right
    assert link_parts(link) == (right and tuple(right))


FRAGMENTS = [
    "lt.lidack=", "lt.lid=", "lt.ack=", "ack=", "lid", "x", "~", "%7E", "%7e", "%257E", "&amp;", "&", ";", "#", "?",
    "/", "//", "=", "%3D", "%26", "&#126;", "&#38;", "&#x26;", "&lt;", "&lt", "&notin;", "&#", "leads.limit0.io",
    "LEADS.limit0.IO", "/click/", "click/", "www.", ".", ":", "80", "https:", URL, URL.upper(), URL[:12], "0", "k9",
    "_", "-", " ", "%", "%2", "\u00e9", "\u212a", "\u017f", "\u0130",
]  # fmt: skip
pieces = st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=3))


@st.composite
def soups(draw: st.DrawFn) -> str:
    """Text of link-like pieces: a built link with pieces put in, cut out or put over, or pieces alone."""
    text = draw(built_links())[0] if draw(st.booleans()) else ""
    for _ in range(draw(st.integers(0, 24 if not text else 4))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 3)))
        text = text[:start] + draw(st.sampled_from(["", draw(pieces)])) + text[end:]
    return text


@settings(max_examples=3000)
@given(soups())
@example(f"//leads.limit0.io/cli\u212a/{URL}?ack=k9")
@example(f"https:///click/{URL}?ack=k9")
@example(f"https://leads.limit0.io:/click/{URL}?ack=k9")
def test_agrees_with_the_end_to_end_expectation(content: str) -> None:
    """parse_link and the end-to-end tests' own reading of SPEC 3 (no shared code) agree on any text."""
    link = parse_link(content)
    assert (link and tuple(link)) == link_parts(content)
