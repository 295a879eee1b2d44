"""Deterministic SFMC datasets for the emulator (schema in ``README.md`` beside this file).

    python -m sfmc_emulator.generator --rows 2000 --seed 1 --out dataset.json

Same arguments and seed → the same file. ``--end`` sets the newest click time (default a fixed date so
output is reproducible; ``--end now`` for a dataset the click-log lookback will read).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import string
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .wire import SERVER_TZ, format_de_date

DEFAULT_END = datetime(2020, 9, 8, 12, 0, tzinfo=SERVER_TZ)
TENANTS = ("ien", "acme", "cygnus", "pmmi", "smg")
ATTRIBUTES = (
    "First Name", "Last Name", "Title", "Company Name", "Address", "City", "State", "Zip", "Country",
    "Phone Number", "Industry", "Job Function", "NAICS Code",
)  # fmt: skip
ROW_KINDS = (
    "ok", "bot", "duplicate_id", "repeat_click", "skip_job", "no_url_id", "no_ack", "bad_date",
    "unknown_send", "reject_10006", "link_lidack", "link_legacy", "link_lid",
)  # fmt: skip
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "metal",
    "plastic",
    "packaging",
    "robotics",
    "supply",
    "chain",
    "weekly",
    "news",
    "update",
]
ACK_CHARS = string.ascii_letters + string.digits + "_-"


@dataclass(frozen=True)
class Sizes:
    rows: int = 2000
    sends: int = 40
    subscribers: int = 400
    emails: int = 20
    categories: int = 10
    units: int = 1
    days: int = 3


def _iso(value: datetime) -> str:
    return value.replace(tzinfo=None).isoformat(timespec="milliseconds")[:-1]


class _Unit:
    def __init__(self, rng: random.Random, index: int, sizes: Sizes, acks: list[dict[str, Any]], end: datetime):
        self.rng = rng
        self.sizes = sizes
        self.acks = acks
        self.end = end
        self.tenant = TENANTS[index] if index < len(TENANTS) else f"unit{index}"

    def _words(self, n: int) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(n)).title()

    def _date(self, days_back: float) -> datetime:
        return self.end - timedelta(seconds=self.rng.uniform(0, days_back * 86400))

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def folders(self) -> list[dict[str, str]]:
        names = ["Content Builder", "my emails", "Newsletters"]
        folders: list[dict[str, str]] = []
        for i in range(max(3, self.sizes.categories)):
            parent = "0" if i == 0 else folders[i - 1]["ID"] if i < 3 else self.rng.choice(folders)["ID"]
            name = names[i] if i < 3 else self._words(2)
            folders.append({"ID": str(4000 + i), "ParentFolder.ID": parent, "Name": name, "ContentType": "email"})
        return folders

    def emails(self, folders: list[dict[str, str]]) -> list[dict[str, Any]]:
        emails = []
        for i in range(max(2, self.sizes.emails)):
            created = self._date(400)
            emails.append(
                {
                    "ID": str(117000 + i),
                    "Name": self._words(3),
                    "Subject": self._words(5),
                    "CategoryID": self.rng.choice(folders[1:])["ID"],
                    "CreatedDate": _iso(created),
                    "ModifiedDate": _iso(created + timedelta(hours=self.rng.randint(0, 500))),
                    "content_builder": i % 3 != 2,
                    "asset_id": str(300000 + i),
                }
            )
        return emails

    def sends(self, emails: list[dict[str, Any]]) -> list[dict[str, str]]:
        sends = []
        for i in range(max(3, self.sizes.sends)):
            email = self.rng.choice(emails)
            created = self._date(30)
            subject = email["Subject"]
            roll = self.rng.random()
            if roll < 0.08:
                subject = f"Test Send: {subject}"
            elif roll < 0.12:
                subject = f"[TEST]: {subject}"
            status = "Sending" if i % 10 == 5 else "Complete"
            sent = self.rng.randint(100, 50000)
            delivered = sent - self.rng.randint(0, sent // 20)
            sends.append(
                {
                    "ID": str(607000 + i),
                    "Email.ID": email["ID"],
                    "CreatedDate": _iso(created),
                    "ModifiedDate": _iso(created + timedelta(minutes=self.rng.randint(1, 600))),
                    "HardBounces": str(self.rng.randint(0, 50)),
                    "SoftBounces": str(self.rng.randint(0, 50)),
                    "OtherBounces": str(self.rng.randint(0, 10)),
                    "EmailName": email["Name"],
                    "FromAddress": "newsletters@example.com",
                    "FromName": self._words(2),
                    "Subject": subject,
                    "PreviewURL": f"https://view.example.com/?qs={self.rng.getrandbits(64):x}",
                    "Status": status,
                    "SentDate": "" if status == "Sending" else _iso(created + timedelta(minutes=5)),
                    "NumberSent": str(sent),
                    "NumberDelivered": str(delivered),
                    "UniqueOpens": str(self.rng.randint(0, delivered)),
                    "UniqueClicks": str(self.rng.randint(0, delivered // 10)),
                    "Unsubscribes": str(self.rng.randint(0, 30)),
                    "ForwardedEmails": str(self.rng.randint(0, 5)),
                }
            )
        return sends

    def _attribute(self, name: str) -> str:
        roll = self.rng.random()
        if roll < 0.15:
            return ""
        value = str(self.rng.randint(10000, 99999)) if name in ("Zip", "NAICS Code") else self._words(1)
        return f"  {value} " if roll > 0.9 else value

    def subscribers(self) -> list[dict[str, Any]]:
        subscribers = []
        for i in range(max(2, self.sizes.subscribers)):
            local = f"{self.rng.choice(WORDS)}.{self.rng.choice(WORDS)}{i}"
            address = f"{local}@{self.rng.choice(['Example.com', 'example.org', 'ACME.test'])}"
            if self.rng.random() < 0.3:
                address = address.title()
            if self.rng.random() < 0.1:
                address = f" {address}  "
            subscribers.append(
                {
                    "ID": str(70000000 + i),
                    "EmailAddress": address,
                    "CreatedDate": _iso(self._date(800)),
                    "Attributes": {name: self._attribute(name) for name in ATTRIBUTES},
                }
            )
        return subscribers

    def _link(self, kind: str) -> str:
        doc = self.rng.choice(self.acks)
        url_id, ack = self.rng.choice(doc["urlIds"]), doc["shortId"]
        page = f"https://www.example.com/{self.rng.choice(WORDS)}"
        if kind == "link_lidack":
            return f"{page}?utm_source=newsletter&lt.lidack={url_id}~{ack}"
        if kind == "link_legacy":
            return f"https://leads.limit0.io/click/{url_id}?ack={ack}"
        return f"{page}?lt.lid={url_id}&lt.ack={ack}"

    def rows(self, sends: list[dict[str, str]], subscribers: list[dict[str, Any]], skip: list[str]) -> dict[str, Any]:
        rng, n = self.rng, self.sizes.rows
        clicked = [s["ID"] for s in sends if s["ID"] not in skip]
        weights = list(itertools.accumulate(1 / (rank + 1) ** 1.2 for rank in range(len(clicked))))
        jobs = rng.choices(clicked, cum_weights=weights, k=n)
        kinds: dict[str, list[str]] = {kind: [] for kind in ROW_KINDS}
        rows: list[dict[str, str]] = []
        special = ("skip_job", "no_url_id", "no_ack", "bad_date", "unknown_send")
        recent: list[tuple[dict[str, str], datetime]] = []
        for job in jobs:
            roll = rng.random()
            kind = special[int(roll * 50)] if roll < 0.1 else "ok"
            if roll > 0.95 and recent:
                source, when = rng.choice(recent)
                later = when + timedelta(seconds=rng.randint(1, 3600))
                if later.date() == when.date():
                    row = {**source, "ID": self._uuid(), "IsUnique": "False", "EventDate": format_de_date(later)}
                    rows.append(row)
                    kinds["repeat_click"].append(row["ID"])
                    continue
            link_kind = rng.choice(("link_lidack", "link_legacy", "link_lid"))
            row = {
                "ID": self._uuid(),
                "JobID": job,
                "SubscriberID": rng.choice(subscribers)["ID"],
                "EventDate": format_de_date(when := self._date(self.sizes.days)),
                "LinkContent": self._link(link_kind),
                "IsUnique": rng.choice(("True", "False")),
                "ListID": str(rng.randint(1, 40)),
                "IsBot_v3": "True" if rng.random() < 0.1 else "False",
            }
            if kind == "skip_job":
                row["JobID"] = rng.choice(skip)
            elif kind == "no_url_id":
                row["LinkContent"] = rng.choice(("https://www.example.com/page", "https://x.test/?lt.ack=abc"))
            elif kind == "no_ack":
                row["LinkContent"] = f"https://www.example.com/?lt.lid={self.rng.getrandbits(96):024x}"
            elif kind == "bad_date":
                row["EventDate"] = rng.choice(("13/45/2020 25:61:00 XM", "not a date", ""))
            elif kind == "unknown_send":
                row["JobID"] = str(990000 + rng.randint(0, 999))
            if kind in ("ok", "skip_job", "bad_date", "unknown_send"):
                kinds[link_kind].append(row["ID"])
            kinds["bot" if row["IsBot_v3"] == "True" else kind].append(row["ID"])
            rows.append(row)
            if kind == "ok":
                recent = [*recent[-49:], (row, when)]
            if rng.random() < 0.01:
                twin = {**row, "IsUnique": "False" if row["IsUnique"] == "True" else "True"}
                rows.append(twin)
                kinds["duplicate_id"].append(row["ID"])
        reject = [row["ID"] for row in rng.sample(rows, k=max(1, len(rows) // 200))] if rows else []
        kinds["reject_10006"] = reject
        return {"rows": rows, "row_kinds": kinds, "reject_row_ids": reject}

    def build(self, index: int) -> dict[str, Any]:
        folders = self.folders()
        emails = self.emails(folders)
        sends = self.sends(emails)
        subscribers = self.subscribers()
        skip = [sends[-1]["ID"]]
        return {
            "tenant": self.tenant,
            "client_id": f"{self.tenant}-{self.rng.getrandbits(48):012x}",
            "client_secret": f"{self.rng.getrandbits(128):032x}",
            "mid": 100001 + index * 1000,
            "click_log_key": "Click_Log",
            "click_log_object_id": self._uuid(),
            "skip_job_ids": skip,
            **self.rows(sends, subscribers, skip),
            "sends": sends,
            "subscribers": subscribers,
            "emails": emails,
            "folders": folders,
        }


def _acks(rng: random.Random, count: int) -> list[dict[str, Any]]:
    docs = []
    for _ in range(count):
        short = "".join(rng.choice(ACK_CHARS) for _ in range(rng.randint(5, 8)))
        urls = [f"{rng.getrandbits(96):024x}" for _ in range(1 if rng.random() < 0.7 else rng.randint(2, 3))]
        docs.append({"shortId": short, "urlIds": urls})
    return docs


def generate(sizes: Sizes = Sizes(), seed: int = 1, end: datetime = DEFAULT_END) -> dict[str, Any]:
    rng = random.Random(seed)
    acks = _acks(rng, max(5, sizes.sends))
    units = [_Unit(rng, index, sizes, acks, end).build(index) for index in range(max(1, sizes.units))]
    return {"seed": seed, "url_acknowledgments": acks, "units": units}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Sizes()
    for name in ("rows", "sends", "subscribers", "emails", "categories", "units", "days"):
        parser.add_argument(
            f"--{name}", type=int, default=getattr(defaults, name), help=f"default {getattr(defaults, name)}"
        )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--end", default=None, help="newest click time (ISO, server time if naive) or 'now'")
    parser.add_argument("--out", type=Path, default=None, help="output file (default: stdout)")
    args = parser.parse_args(argv)
    sizes = Sizes(**{name: getattr(args, name) for name in Sizes.__dataclass_fields__})
    end = DEFAULT_END
    if args.end == "now":
        end = datetime.now(SERVER_TZ).replace(microsecond=0)
    elif args.end:
        parsed = datetime.fromisoformat(args.end)
        end = parsed.replace(tzinfo=SERVER_TZ) if parsed.tzinfo is None else parsed.astimezone(SERVER_TZ)
    data = generate(sizes, args.seed, end)
    text = json.dumps(data, separators=(",", ":"))
    if args.out is None:
        sys.stdout.write(text + "\n")
    else:
        args.out.write_text(text)
        print(f"wrote {args.out}: {sum(len(u['rows']) for u in data['units'])} rows", file=sys.stderr)


if __name__ == "__main__":
    main()
