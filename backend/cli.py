"""The `munet` command line: a thin dispatcher over ``backend.commands.*``.

Exit codes are stable (scripts depend on them):

====  =====================================================================
0     success
1     internal error (a bug: please report it with the log)
2     bad command line (argparse)
3     bad input image (not an image, corrupt, zero pixels, too large)
4     no person found in the photo
5     SMPL model files missing
6     backend unreachable, timed out or busy (client commands)
7     bad or missing checkpoint
====  =====================================================================
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from munet.errors import MunetError

# subcommand name -> module under backend.commands
COMMANDS = {
    "setup": "setup",
    "body-demo": "body_demo",
    "reconstruct": "reconstruct",
    "serve": "serve",
    "client": "client",
    "keys": "keys",
}

EXIT_CODES = {
    "bad_image": 3,
    "image_too_large": 3,
    "no_person_found": 4,
    "smpl_files_missing": 5,
    "unreachable": 6,
    "timeout": 6,
    "busy": 6,
    "bad_checkpoint": 7,
    "bad_request": 2,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="munet", description="MuNet: one photo in, a rigged 3D character out.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f".commands.{module_name}", __package__)
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args._run(args) or 0)
    except MunetError as e:
        print(f"munet {args.command}: error [{e.code}]: {e}", file=sys.stderr)
        return EXIT_CODES.get(e.code, 1)
    except KeyboardInterrupt:
        print(f"munet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
