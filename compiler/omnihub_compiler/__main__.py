"""``python -m omnihub_compiler``: same as ``omnihub-compile``."""

import sys

from omnihub_compiler.cli import main

sys.exit(main())
