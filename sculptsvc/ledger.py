"""The outcome ledger: what became of every order revision, where every instance sees it.

One record per order revision in the artifact store (``records/ledger/{order_id}/r{N}.json``),
so with ``SCULPT_STORE_URL=s3://...`` every host of the group reads the same ledger. A record
holds the input coordinates that produced the outcome and the exact messages published for
it. It is written *before* the Kafka transaction that publishes those messages with the
input offset (write-ahead), which gives the three cases the processor acts on:

- no record: the revision is new, run it;
- a record from the same coordinates: the previous owner crashed between the ledger write
  and the commit (or its commit was fenced): publish the recorded messages, run nothing;
- a record from other coordinates: the same revision arrived again: publish nothing.

Why records in the object store rather than a compacted topic inside the transaction, and
what that costs: ``docs/contracts/ledger.md``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sculptsvc.store import ArtifactStore

LEDGER_PREFIX = "ledger"


def ledger_name(order_id: str, revision: int) -> str:
    return f"{LEDGER_PREFIX}/{order_id}/r{revision}.json"


@dataclass(frozen=True)
class LedgerEntry:
    input: str  # "topic/partition/offset" of the message that produced the outcome
    outcome: str  # completed | rejected | failed
    messages: list[dict[str, Any]]  # Outgoing.to_json() of everything published for it

    def to_bytes(self) -> bytes:
        doc = {"input": self.input, "outcome": self.outcome, "messages": self.messages}
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LedgerEntry:
        doc = json.loads(data)
        return cls(input=doc["input"], outcome=doc["outcome"], messages=doc["messages"])


class Ledger:
    """Blocking calls (the store may be remote): run them off the event loop."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    def read(self, order_id: str, revision: int) -> LedgerEntry | None:
        data = self.store.get_record(ledger_name(order_id, revision))
        return None if data is None else LedgerEntry.from_bytes(data)

    def write(self, order_id: str, revision: int, entry: LedgerEntry) -> None:
        self.store.put_record(ledger_name(order_id, revision), entry.to_bytes())
