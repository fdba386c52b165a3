"""`munet client ping|info|reconstruct`: talk to a running backend (`munet serve`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

HELP = "use a running backend: ping, info, or reconstruct a photo into a GLB/NPZ"

# codes that mean "the backend cannot do it now" (exit code 6, like unreachable/timeout/busy)
_UNAVAILABLE = ("unreachable", "timeout", "busy", "shutting_down")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--endpoint", default="tcp://127.0.0.1:5555", help="backend endpoint (default %(default)s)")
    common.add_argument("--timeout", type=float, default=None, metavar="S",
                        help="give up after S seconds, retries included (default 5 for ping/info, 600 for reconstruct)")
    common.add_argument("--retries", type=int, default=2, help="new attempts after a silent backend (default 2)")
    common.add_argument("--curve-keys", metavar="DIR", help="CURVE keys when the backend uses them (`munet keys`)")
    sub.add_parser("ping", parents=[common], help="check that the backend answers; prints the round trip")
    sub.add_parser("info", parents=[common], help="print what the backend runs (JSON)")
    rec = sub.add_parser("reconstruct", parents=[common], help="reconstruct PHOTO into OUT.glb or OUT.npz")
    rec.add_argument("photo", metavar="PHOTO", help="a JPEG or PNG photo of one person")
    rec.add_argument("-o", "--output", required=True, metavar="OUT", help="OUT.glb (skinned GLB) or OUT.npz (raw arrays)")
    rec.add_argument("--report", metavar="OUT.json", help="also write the reconstruction report")
    rec.add_argument("--body-model", choices=("anny", "smpl"), default="anny")
    rec.add_argument("--skeleton", choices=("smpl24", "full"), default="smpl24")
    rec.add_argument("--method", choices=("network", "fitting"), default=None,
                     help="network (MuNet + refinement) or fitting; default: the protocol's default")
    rec.add_argument("--refine-iterations", type=int, default=40, metavar="N")
    rec.add_argument("--no-clothed", dest="clothed", action="store_false", help="skip the clothed surface")
    rec.add_argument("--no-texture", dest="texture", action="store_false", help="skip the projected texture")


class _ProgressLine:
    """One updating line on a terminal, one line per stage otherwise (stderr)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.stage = ""

    def __call__(self, progress: Any) -> None:
        text = f"{progress.stage}" + (f" (queue position {progress.position})" if progress.position else "")
        if self.tty:
            bar = "#" * int(20 * progress.fraction)
            print(f"\r[{bar:<20}] {100 * progress.fraction:3.0f}% {text:<40}", end="", file=sys.stderr, flush=True)
        elif progress.stage != self.stage:
            print(f"{100 * progress.fraction:3.0f}% {text}", file=sys.stderr, flush=True)
        self.stage = progress.stage

    def done(self) -> None:
        if self.tty and self.stage:
            print(file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from .. import protocol
    from ..client import BackendError, Client, write_report, write_result
    from munet.errors import MunetError

    client = Client(args.endpoint, timeout_s=args.timeout, retries=args.retries, curve_keys=args.curve_keys)
    try:
        if args.action == "ping":
            import time

            start = time.perf_counter()
            pong = client.ping()
            print(f"pong from {pong.worker} in {1000 * (time.perf_counter() - start):.1f} ms: "
                  f"{'ready' if pong.ready else 'loading'}, {pong.running} running, {pong.queued} queued, capacity {pong.capacity}")
            return 0
        if args.action == "info":
            info = client.info()
            print(json.dumps({name: getattr(info, name) for name in protocol.Info.FIELDS}, indent=2))
            return 0

        try:
            with open(args.photo, "rb") as f:
                image = f.read()
        except OSError as e:
            raise MunetError(f"cannot read {args.photo}: {e.strerror}", code="bad_image") from e
        options = protocol.Options(body_model=args.body_model, skeleton=args.skeleton, clothed=args.clothed,
                                   method=args.method or protocol.Options.method,
                                   refine_iterations=args.refine_iterations, texture=args.texture)
        try:
            options.validate()
        except protocol.ProtocolError as e:
            raise MunetError(str(e), code="bad_request") from e
        progress = _ProgressLine()
        try:
            result = client.reconstruct(image, options, progress=progress)
        except KeyboardInterrupt:
            progress.done()
            found = client.cancel_pending()
            print(f"munet client: cancelled{'' if found else ' (the backend did not confirm)'}", file=sys.stderr)
            return 130
        progress.done()
        write_result(result, args.output)
        if args.report:
            write_report(result, args.report)
        body = result.body
        print(f"wrote {args.output}: body {len(body.rest_vertices_m)} vertices, "
              f"{'clothed ' + str(len(result.clothed.rest_vertices_m)) + ' vertices, ' if result.clothed else ''}"
              f"skeleton {result.skeleton.name} ({len(result.skeleton.joint_names)} joints)")
        return 0
    except BackendError as e:
        if e.code in _UNAVAILABLE:
            print(f"munet client: error [{e.code}]: {e}", file=sys.stderr)
            return 6
        raise
    finally:
        client.close()
