"""`munet serve`: the reconstruction backend over ZeroMQ (or its broker, or a worker behind one)."""

from __future__ import annotations

import argparse

HELP = "serve reconstructions over ZeroMQ (see PROTOCOL.md)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bind", default=None, metavar="ENDPOINT",
                        help="endpoint to listen on (default tcp://127.0.0.1:5555; port 0 picks a free one)")
    parser.add_argument("--connect", metavar="ENDPOINT",
                        help="run as a worker behind a broker: connect to the broker's worker endpoint instead of binding")
    parser.add_argument("--broker", metavar="ENDPOINT",
                        help="run a broker (no model): clients connect to --bind, workers to this endpoint")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the model runs")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="worker threads, each with its own model (~1 GB each); default 1")
    parser.add_argument("--queue", type=int, default=8, metavar="N",
                        help="requests that may wait beyond the running ones; more get `busy` (default 8)")
    parser.add_argument("--timeout", type=float, default=300.0, metavar="S",
                        help="a request's timeout when its client names none (default 300 s)")
    parser.add_argument("--stall-timeout", type=float, default=30.0, metavar="S",
                        help="drop a client whose unfinished message stops progressing for S seconds (default 30)")
    parser.add_argument("--checkpoint", metavar="PATH", help="checkpoint to serve (default: the shipped one)")
    parser.add_argument("--smpl-dir", metavar="DIR", help="your licensed SMPL model files (or $MUNET_SMPL_DIR)")
    parser.add_argument("--curve-keys", metavar="DIR",
                        help="CURVE key directory made by `munet keys DIR` (required beyond loopback)")
    parser.add_argument("--insecure", action="store_true",
                        help="allow a non-loopback endpoint WITHOUT authentication or encryption")


def run(args: argparse.Namespace) -> int:
    from munet.errors import MunetError

    if args.connect and args.broker:
        raise MunetError("--connect (worker) and --broker (broker) exclude each other", code="bad_request")
    if args.connect and args.bind:
        raise MunetError("--connect runs a worker behind a broker: it does not --bind", code="bad_request")
    if args.workers < 1 or args.queue < 0 or args.timeout <= 0 or args.stall_timeout <= 0:
        raise MunetError("--workers must be >= 1, --queue >= 0, --timeout and --stall-timeout > 0", code="bad_request")
    bind = None if args.connect else (args.bind or "tcp://127.0.0.1:5555")
    if args.checkpoint is not None and not args.broker:
        check_checkpoint(args.checkpoint)

    if args.broker:
        from .. import broker

        broker.run(bind, args.broker, curve_keys=args.curve_keys, insecure=args.insecure,
                   stall_timeout_s=args.stall_timeout)
        return 0

    from .. import server, service

    config = server.ServerConfig(
        bind=bind, connect=args.connect, workers=args.workers, queue_size=args.queue,
        default_timeout_s=args.timeout, curve_keys=args.curve_keys, insecure=args.insecure, device=args.device,
        stall_timeout_s=args.stall_timeout,
    )
    try:
        make_engine = service.engine_factory(args.device, args.checkpoint, args.smpl_dir)
    except ValueError as e:
        raise MunetError(str(e), code="bad_request") from e
    server.run(config, make_engine)
    return 0


def check_checkpoint(path: str) -> None:
    """Refuse a ``--checkpoint`` that is not there before anything starts (the server's workers load it
    fully before the server says it is ready: a corrupt one fails the start too)."""
    import pathlib

    from munet.errors import CheckpointError

    weights = pathlib.Path(path)
    hint = ("give the path of a MuNet checkpoint NAME.safetensors with its NAME.json beside it, "
            "or leave --checkpoint unset to serve the shipped one")
    if not weights.is_file():
        raise CheckpointError(f"--checkpoint {weights}: no such file: {hint}")
    if not weights.with_suffix(".json").is_file():
        raise CheckpointError(f"--checkpoint {weights}: its metadata {weights.with_suffix('.json')} is missing: {hint}")
