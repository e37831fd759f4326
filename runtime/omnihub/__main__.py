"""``python -m omnihub``: the same command line as the ``omnihub`` console script."""

from __future__ import annotations

import sys

from omnihub.cli import main

if __name__ == "__main__":
    sys.exit(main())
