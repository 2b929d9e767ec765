"""``python -m subpixel``: the command line."""

import sys

from subpixel.cli import main

sys.exit(main())
