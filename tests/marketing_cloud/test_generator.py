"""The dataset generator: deterministic for a seed, with every row kind, and loadable by the emulator."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from sfmc_emulator import ROW_KINDS, Sizes, generate
from streams.marketing_cloud.values import parse_de_date

SIZES = Sizes(rows=3000, sends=30, subscribers=100, emails=12, categories=8, units=2)


def test_deterministic_for_a_seed() -> None:
    assert json.dumps(generate(SIZES, seed=5)) == json.dumps(generate(SIZES, seed=5))
    assert json.dumps(generate(SIZES, seed=5)) != json.dumps(generate(SIZES, seed=6))


def test_every_row_kind_and_realistic_content() -> None:
    data = generate(SIZES, seed=5)
    acks = {doc["shortId"]: doc["urlIds"] for doc in data["url_acknowledgments"]}
    assert any(len(urls) > 1 for urls in acks.values())
    assert all(re.fullmatch(r"[0-9a-f]{24}", url) for urls in acks.values() for url in urls)
    first, second = data["units"]
    assert first["client_id"] != second["client_id"] and first["tenant"] != second["tenant"]
    assert {s["ID"] for s in first["sends"]} & {s["ID"] for s in second["sends"]}
    for unit in data["units"]:
        kinds = unit["row_kinds"]
        assert all(kinds[kind] for kind in ROW_KINDS), [k for k in ROW_KINDS if not kinds[k]]
        rows = {row["ID"]: row for row in unit["rows"]}
        send_ids = {send["ID"] for send in unit["sends"]}
        assert all(rows[i]["JobID"] in unit["skip_job_ids"] for i in kinds["skip_job"])
        assert all(rows[i]["JobID"] not in send_ids for i in kinds["unknown_send"])
        assert all("lt.lidack=" in rows[i]["LinkContent"] for i in kinds["link_lidack"])
        assert all("leads.limit0.io/click/" in rows[i]["LinkContent"] for i in kinds["link_legacy"])
        assert all(rows[i]["IsBot_v3"] == "True" for i in kinds["bot"])
        assert set(unit["reject_row_ids"]) == set(kinds["reject_10006"])
        ids = Counter(row["ID"] for row in unit["rows"])
        assert all(ids[i] == 2 for i in kinds["duplicate_id"])
        for row_id in kinds["ok"][:50]:
            parse_de_date(rows[row_id]["EventDate"])
        per_send = Counter(row["JobID"] for row in unit["rows"]).most_common()
        assert per_send[0][1] > 5 * per_send[len(per_send) // 2][1]  # Zipf-like skew
        folders = {f["ID"]: f for f in unit["folders"]}
        assert any(f["Name"] == "my emails" for f in folders.values())
        depth = max(_depth(folders, f["ID"]) for f in folders.values())
        assert depth >= 3
        assert {True, False} <= {e["content_builder"] for e in unit["emails"]}
        assert any(s["Status"] == "Sending" and not s["SentDate"] for s in unit["sends"])
        subjects = [s["Subject"] for s in unit["sends"]]
        assert any(s.startswith(("Test Send: ", "[TEST]: ")) for s in subjects)
        attributes = [sub["Attributes"] for sub in unit["subscribers"]]
        assert any(value == "" for a in attributes for value in a.values())
        assert any(value != value.strip() for a in attributes for value in a.values())


def _depth(folders: dict[str, dict[str, str]], folder_id: str) -> int:
    depth = 0
    while folder_id in folders:
        folder_id, depth = folders[folder_id]["ParentFolder.ID"], depth + 1
    return depth


def test_cli_writes_a_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "data.json"
    # the command `python -m stack up` runs (from the checkout's root, as the tests run)
    argv = [sys.executable, "-m", "sfmc_emulator.generator", "--rows", "50", "--seed", "2", "--out", str(out)]
    subprocess.run(argv, check=True, cwd=Path(__file__).resolve().parents[2], capture_output=True, timeout=120)
    data = json.loads(out.read_text())
    assert len(data["units"]) == 1 and len(data["units"][0]["rows"]) >= 50
