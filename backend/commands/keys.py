"""`munet keys DIR`: make the CURVE key pairs that secure a backend beyond loopback."""

from __future__ import annotations

import argparse

HELP = "make CURVE keys for `munet serve --curve-keys DIR` and its clients"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", metavar="DIR", help="where to write the keys (created if missing)")
    parser.add_argument("--force", action="store_true", help="replace keys already there")


def run(args: argparse.Namespace) -> int:
    from .. import transport

    written = transport.make_keys(args.directory, force=args.force)
    for path in written:
        print(path)
    print(f"server: munet serve --bind tcp://0.0.0.0:5555 --curve-keys {args.directory}\n"
          f"client: copy {args.directory} WITHOUT server.key_secret, then "
          f"munet client ping --endpoint tcp://SERVER:5555 --curve-keys DIR\n"
          f"more clients: put their public .key files in {args.directory}/authorized_clients/ "
          f"(a running server applies changes there within a second)")
    return 0
