"""Child process for multi-process tests: fetch the entry given as catalogue JSON in argv[1].

``OMNIHUB_TEST_ALWAYS_PARALLEL=1`` makes every eligible download switch to parallel ranges at
once (as the parallel tests do in-process). Prints one JSON line
``{"path": ..., "sha256": ...}`` on success; on an omnihub error prints
``{"error": <class name>, "message": ...}`` and exits 3.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

from omnihub.catalog import catalog_from_json
from omnihub.errors import OmnihubError
from omnihub.hub import fetch


def main() -> int:
    if os.environ.get("OMNIHUB_TEST_ALWAYS_PARALLEL") == "1":
        from omnihub.download import _parallel

        _parallel.WINDOW_SECONDS = 0.0  # go parallel at the first buffer
        _parallel.PARALLEL_BELOW = 1 << 62
    (model,) = catalog_from_json(sys.argv[1]).models
    try:
        path = fetch(model)
    except OmnihubError as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
        return 3
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(json.dumps({"path": str(path), "sha256": digest}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
