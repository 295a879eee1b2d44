"""Worker CPU by pipeline stage, from py-spy's samples of a live worker (``bench.run --stages``).

py-spy (``record --format raw --nonblocking``) samples the worker's on-CPU stacks from the first poll on (it is
started then, so start-up and recovery are not in the shares); each sample is given to one stage, and a stage's
µs per row is the worker's CPU time from the first poll to the last mark (utime + stime from /proc, measured
apart) times the stage's share of the samples, divided by the rows marked. A sample goes to:
- ``faust/Kafka`` when its innermost frame of ours calls into faust, mode or aiokafka (consuming, decoding
  records, producing, acking, committing), or when no frame of ours is on the stack at all;
- otherwise the stage of its outermost frame of ours in a stage's module (the logic that an agent or timer of
  ``streams.topology`` runs; the worker's entry frames are below every stack), so a stage includes the CPU of
  the libraries it calls (pymongo's BSON, httpx, lxml).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("poll + SOAP parse", ("streams/poller.py",)),
    ("ingest", ("streams/ingest.py",)),
    ("resolvers", ("streams/resolvers.py",)),
    ("clicks sink", ("streams/clicks_sink.py",)),
    ("models sink", ("streams/models_sink.py",)),
    ("acker / marking", ("streams/marking.py", "streams/edges/sqs_egress.py")),
)
FAUST = "faust/Kafka"
OTHER = "other (timers, web, metrics)"
MACHINERY = ("/faust/", "/mode/", "/aiokafka/", "/<string>")
"""Files of faust's machinery (``<string>``: the record classes' generated code); paths are py-spy's, relative to
their ``sys.path`` entry (``faust/app/base.py``, ``streams/ingest.py``)."""
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _file(frame: str) -> str:
    match = FRAME.match(frame.strip())
    return match.group("file") if match else ""


def stage_of(frames: list[str]) -> str:
    """The stage of one sampled stack (frames outermost first, py-spy's ``function (file:line)``)."""
    files = [_file(frame) for frame in frames]
    ours = [i for i, file in enumerate(files) if f"/{file}".startswith("/streams/") or "/streams/" in file]
    if not ours:
        return FAUST
    inner = ours[-1]
    if inner + 1 < len(files) and any(part in f"/{files[inner + 1]}" for part in MACHINERY):
        return FAUST
    return next((name for i in ours for name, modules in STAGES if any(files[i].endswith(m) for m in modules)), OTHER)


def stage_samples(raw: str) -> Counter[str]:
    """Samples by stage from py-spy's raw output (``frame;frame;... count`` per line, outermost first)."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[stage_of(stack.split(";"))] += int(count)
    return counts


def stage_table(raw_file: Path, cpu_seconds: float, rows: int) -> dict[str, dict[str, float]]:
    """``{stage: {"share": 0-1, "us_per_row": µs}}`` plus ``total``, for ``rows`` rows marked."""
    counts = stage_samples(raw_file.read_text())
    total = sum(counts.values()) or 1
    per_row = cpu_seconds * 1e6 / max(1, rows)
    names = [name for name, _ in STAGES] + [FAUST, OTHER]
    table = {name: {"share": counts[name] / total, "us_per_row": per_row * counts[name] / total} for name in names}
    table["total"] = {"share": 1.0, "us_per_row": per_row}
    return table
