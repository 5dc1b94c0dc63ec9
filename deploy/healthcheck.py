"""The container's health check: exit 0 when ``GET /health`` on this container answers 200.

The Dockerfile's ``HEALTHCHECK`` runs it with the image's Python (the slim base has no
curl). The port is ``KAILASH_NB_PORT`` (default 8000), as ``kailash-nb serve`` reads it.
Only the standard library: it must work whatever the virtualenv holds.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    """Ask ``/health`` once; 0 when it answers 200, else 1 with the reason on stderr."""
    port = os.environ.get("KAILASH_NB_PORT", "").strip() or "8000"
    url = f"http://127.0.0.1:{port}/health"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            status = response.status
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: GET {url}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: GET {url} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
