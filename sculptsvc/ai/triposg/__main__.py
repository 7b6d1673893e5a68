"""``python -m sculptsvc.ai.triposg manifest``: regenerate the committed parameter manifest."""

from __future__ import annotations

import sys

from sculptsvc.ai import manifest_cli
from sculptsvc.ai.triposg.weights import MANIFEST_PATH, write_manifest

if __name__ == "__main__":
    raise SystemExit(
        manifest_cli(sys.argv[1:], "sculptsvc.ai.triposg", write_manifest, MANIFEST_PATH)
    )
