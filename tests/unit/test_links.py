import pytest

from streams.links import Link, parse_link

URL = "5f47e1c107809f52ef34357c"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (f"https://x.io/a?lt.lidack={URL}~Ab_1-z", Link(URL, "Ab_1-z")),
        (f"https://x.io/a?utm=1&lt.lidack={URL.upper()}~k9&x=2", Link(URL, "k9")),
        (f"https://leads.limit0.io/click/{URL}?ack=q1", Link(URL, "q1")),
        (f"http://LEADS.limit0.io/click/{URL}/?x=1&ack=q2", Link(URL, "q2")),
        (f"https://x.io/?lt.lid={URL}&lt.ack=z-z", Link(URL, "z-z")),
        (f"https://x.io/?lt.ack=z&lt.lid={URL}", Link(URL, "z")),
        # the first form wins over the third when both are present
        (f"https://x.io/?lt.lid={'a' * 24}&lt.ack=b&lt.lidack={URL}~c", Link(URL, "c")),
    ],
)
def test_accepted_forms(content: str, expected: Link) -> None:
    assert parse_link(content) == expected


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
    ],
)
def test_rejected_forms(content: str) -> None:
    assert parse_link(content) is None
