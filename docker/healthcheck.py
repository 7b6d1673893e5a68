#!/usr/bin/env python3
"""Container probe: exit 0 when GET http://127.0.0.1:$SCULPT_HTTP_PORT<path> answers 2xx.

Standard library only, because slim images carry no curl; used by the image's HEALTHCHECK
(``/health``) and usable as an exec readiness probe (``sculpt-healthcheck /ready``).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_PORT = "8080"
TIMEOUT_S = 4.0


def probe(path: str = "/health", port: str | None = None, host: str = "127.0.0.1") -> int:
    """0 when the endpoint answers 2xx, 1 otherwise (Docker's healthy/unhealthy codes)."""
    port = port or os.environ.get("SCULPT_HTTP_PORT", DEFAULT_PORT)
    url = f"http://{host}:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            ok = 200 <= response.status < 300
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1
    if not ok:
        print(f"{url}: HTTP {response.status}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(probe(sys.argv[1] if len(sys.argv) > 1 else "/health"))
