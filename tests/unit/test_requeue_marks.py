"""What a ``replay-dead-letters`` consumer group commits per partition (``streams.replay.Requeued``): letters
requeued are not due again, letters skipped stay due, and the record fits in a commit's metadata."""

from __future__ import annotations

from streams.replay import METADATA_CHARACTERS, Requeued, Skips


def test_skipped_letters_stay_due_and_requeued_ones_do_not() -> None:
    skips = Skips()
    for offset, skipped in [(3, False), (5, True), (8, True), (9, False), (12, True), (14, False)]:
        skips.note(offset, skipped)
    mark = Requeued(end=20, skipped=tuple(skips.ranges))
    assert mark.skipped == ((5, 8), (12, 12)) and mark.start == 5
    assert [offset for offset in range(25) if mark.due(offset)] == [5, 6, 7, 8, 12, 20, 21, 22, 23, 24]
    assert Requeued.committed(mark.start, mark.metadata()) == mark
    assert Requeued(end=20).start == 20 and Requeued.committed(20, Requeued(end=20).metadata()) == Requeued(end=20)


def test_a_commit_without_metadata_or_without_offset() -> None:
    assert Requeued.committed(17, "") == Requeued(end=17)  # committed before skipped letters were kept
    assert Requeued.committed(-1, "") == Requeued()  # the group never committed: every letter is due
    assert Requeued().due(0)


def test_too_many_ranges_are_merged_never_dropped() -> None:
    """Ranges that would not fit in a commit's metadata are merged where they lie nearest: a letter requeued
    between them is due again (the pipeline's writes are idempotent), no skipped letter stops being due."""
    ranges = tuple((offset, offset) for offset in range(10_000_000, 10_000_000 + 3 * 1000, 3))
    mark = Requeued(end=20_000_000, skipped=ranges)
    metadata = mark.metadata()
    assert len(metadata) <= METADATA_CHARACTERS
    kept = Requeued.committed(mark.start, metadata)
    assert kept.end == mark.end and kept.start == mark.start and len(kept.skipped) < len(ranges)
    assert all(kept.due(first) for first, _ in ranges)
