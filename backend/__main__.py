"""``python -m munet_backend ...`` (installed) or ``python -m backend ...`` (source tree): the `munet` CLI."""

import sys

from .cli import main

sys.exit(main())
