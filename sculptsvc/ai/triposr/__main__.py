"""``python -m sculptsvc.ai.triposr manifest``: regenerate the committed parameter manifest."""

from __future__ import annotations

import sys

from sculptsvc.ai import manifest_cli
from sculptsvc.ai.triposr.weights import MANIFEST_PATH, write_manifest

if __name__ == "__main__":
    raise SystemExit(
        manifest_cli(sys.argv[1:], "sculptsvc.ai.triposr", write_manifest, MANIFEST_PATH)
    )
