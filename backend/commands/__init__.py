"""One module per `munet` subcommand.

Each module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``. Modules
must stay cheap to import (no torch, no anny at module level): the CLI imports all of them to build
``--help``; the heavy imports happen inside ``run``.
"""
