"""Parsing one Retrieve page of click-log rows: CPU per row and the parse's peak memory.

    .venv/bin/python -m bench.soap_parse [--rows 2500]

The page holds ``--rows`` click-log rows from the emulator's dataset generator (``sfmc_emulator``), parsed by
``streams.marketing_cloud.soap.parse_retrieve`` (incremental: each ``Results`` emptied once flattened) and by a
whole-tree parse of the same bytes (``lxml.etree.fromstring``, then every ``Results`` flattened), alternately,
in one process; the peak memory of each is a fresh subprocess's peak RSS (VmHWM, reset first through
``/proc/self/clear_refs``) over its RSS before the parse.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from xml.sax.saxutils import escape

from lxml import etree

from sfmc_emulator import Sizes, generate
from streams.marketing_cloud import soap

WHOLE = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)
"""The options ``parse_retrieve`` parses with."""


def whole_tree(content: bytes) -> list[soap.Result]:
    """Every ``Results`` of the reply flattened from one whole lxml tree (the way before the incremental parse)."""
    root = etree.fromstring(content, WHOLE)
    return [soap.flatten(element) for element in root.iterfind(f".//{{{soap.PARTNER_NS}}}Results")]


PARSERS = {"incremental": lambda content: soap.parse_retrieve(content).results, "whole tree": whole_tree}


def page(rows: int) -> bytes:
    """A Retrieve reply of ``rows`` generated click-log rows, shaped as SFMC's (SPEC 1.2)."""
    dataset = generate(Sizes(rows=rows, sends=20, subscribers=rows, emails=10, categories=5))
    results = "".join(
        '<Results xsi:type="DataExtensionObject"><PartnerKey xsi:nil="true"/><ObjectID xsi:nil="true"/>'
        "<Type>DataExtensionObject</Type><Properties>"
        + "".join(f"<Property><Name>{name}</Name><Value>{escape(str(value))}</Value></Property>"
                  for name, value in row.items())
        + "</Properties></Results>" for row in dataset["units"][0]["rows"][:rows])
    return (f'<soap:Envelope xmlns:soap="{soap.SOAP_ENV}" xmlns:xsi="{soap.XSI}"><soap:Body>'
            f'<RetrieveResponseMsg xmlns="{soap.PARTNER_NS}"><OverallStatus>MoreDataAvailable</OverallStatus>'
            f"<RequestID>r1</RequestID>{results}</RetrieveResponseMsg></soap:Body></soap:Envelope>").encode()


def _status_kb(field: str) -> int:
    """A field of ``/proc/self/status`` in KiB (``VmRSS``, ``VmHWM``)."""
    status = Path("/proc/self/status").read_text()
    return int(status.split(f"{field}:", 1)[1].split()[0])


def peak_kb(path: Path, parser: str) -> int:
    """Peak RSS growth (KiB) of a fresh process parsing the page at ``path`` with ``parser``."""
    done = subprocess.run([sys.executable, "-m", "bench.soap_parse", "--peak-of", parser, "--page", str(path)],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2500)
    parser.add_argument("--peak-of", choices=sorted(PARSERS), help=argparse.SUPPRESS)
    parser.add_argument("--page", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak_of:
        content = args.page.read_bytes()
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        before = _status_kb("VmRSS")
        PARSERS[args.peak_of](content)
        print(_status_kb("VmHWM") - before)
        return
    content = page(args.rows)
    assert PARSERS["incremental"](content) == whole_tree(content)
    path = Path(".stack/bench/soap-page.xml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    print(f"page: {args.rows} rows, {len(content) / 1e6:.2f} MB")
    seconds = dict.fromkeys(PARSERS, 0.0)
    for _ in range(10):
        for name, parse in PARSERS.items():
            started = time.perf_counter()
            parse(content)
            seconds[name] += time.perf_counter() - started
    for name in PARSERS:
        peak = peak_kb(path, name) / 1024
        print(f"{name}: {seconds[name] / 10 / args.rows * 1e6:.1f} µs/row, peak RSS +{peak:.1f} MiB")
    path.unlink()


if __name__ == "__main__":
    main()
