"""``python -m lipsdp``: the command line (see :mod:`lipsdp.cli`)."""

import sys

from .cli import main

sys.exit(main())
