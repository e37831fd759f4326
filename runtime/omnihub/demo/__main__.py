"""``python -m omnihub.demo``: the offline newcomer tour (same as ``omnihub demo``)."""

from __future__ import annotations

import sys

from omnihub.demo import main

if __name__ == "__main__":
    sys.exit(main())
