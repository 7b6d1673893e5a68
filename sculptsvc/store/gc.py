"""``sculpt store gc``: delete blobs nothing recent refers to.

Why not only a lifecycle rule on ``blobs/``: a blob is written once and then reused (the same
bytes are never uploaded twice), so its age says when it was *first* made, not when an event
last pointed at it. A QA replay or a repeated order from today can reference a blob from last
year; expiring blobs by age alone would break that event's claim check.

So a blob goes only when both hold:
- it is older than the cut-off, and
- no ledger record newer than the cut-off names its sha256 (records are rewritten by every
  outcome, replays included, so their age is the age of the last reference).

Ledger records themselves are small; expire them with a lifecycle rule on ``records/ledger/``
(longer than the order topic's retention, see docs/operations.md) or keep them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sculptsvc.ledger import LEDGER_PREFIX, LedgerEntry
from sculptsvc.store.base import BLOB_DIR, RECORD_DIR, ArtifactStore


@dataclass
class GcReport:
    cutoff: datetime
    records_read: int = 0
    referenced: set[str] = field(default_factory=set)
    blobs_seen: int = 0
    deleted: list[str] = field(default_factory=list)
    bytes_freed: int = 0

    def summary(self) -> dict[str, object]:
        return {
            "cutoff": self.cutoff.isoformat(),
            "ledger_records_read": self.records_read,
            "blobs_referenced": len(self.referenced),
            "blobs_seen": self.blobs_seen,
            "blobs_deleted": len(self.deleted),
            "bytes_freed": self.bytes_freed,
        }


def _shas_in(doc: Any) -> Iterator[str]:
    """Every ``sha256`` of an object that also has a ``uri`` (a claim check), anywhere."""
    if isinstance(doc, dict):
        if "uri" in doc and isinstance(doc.get("sha256"), str):
            yield doc["sha256"]
        for value in doc.values():
            yield from _shas_in(value)
    elif isinstance(doc, list):
        for value in doc:
            yield from _shas_in(value)


def referenced_blobs(entry: LedgerEntry) -> set[str]:
    """The sha256 of every artifact the messages of one ledger record point at."""
    shas: set[str] = set()
    for message in entry.messages:
        try:
            shas.update(_shas_in(json.loads(base64.b64decode(message["value"]))))
        except (KeyError, ValueError):
            continue  # not an event of ours: it references nothing
    return shas


def collect(
    store: ArtifactStore, older_than: timedelta, now: datetime, *, dry_run: bool = False
) -> GcReport:
    report = GcReport(cutoff=now - older_than)
    for obj in store.list_objects(f"{RECORD_DIR}/{LEDGER_PREFIX}/"):
        if obj.modified < report.cutoff:
            continue  # an old outcome keeps nothing alive
        data = store.get_record(obj.key.removeprefix(f"{RECORD_DIR}/"))
        if data is not None:
            report.records_read += 1
            report.referenced |= referenced_blobs(LedgerEntry.from_bytes(data))
    doomed = []
    for obj in store.list_objects(f"{BLOB_DIR}/"):
        report.blobs_seen += 1
        sha = obj.key.rsplit("/", 1)[-1]
        if obj.modified < report.cutoff and sha not in report.referenced:
            doomed.append(obj.key)
            report.bytes_freed += obj.size_bytes
    report.deleted = doomed
    if doomed and not dry_run:
        store.delete(doomed)
    return report
