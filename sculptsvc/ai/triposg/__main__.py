"""``python -m sculptsvc.ai.triposg manifest``: regenerate the committed parameter manifest."""

from __future__ import annotations

import sys

from sculptsvc.ai.triposg.weights import MANIFEST_PATH, write_manifest


def main(argv: list[str]) -> int:
    if argv != ["manifest"]:
        print("usage: python -m sculptsvc.ai.triposg manifest", file=sys.stderr)
        return 2
    write_manifest()
    print(f"wrote {MANIFEST_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
