"""`munet body-demo -o OUT.glb`: a posed Anny body with its smpl24 skin, as a skinned GLB."""

from __future__ import annotations

import argparse

HELP = "write a posed Anny body rigged to the smpl24 (or full) skeleton as a skinned GLB"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", required=True, help="output .glb path")
    parser.add_argument("--skeleton", choices=("smpl24", "full"), default="smpl24")
    parser.add_argument("--seed", type=int, default=3, help="seed of the random plausible pose")


def run(args: argparse.Namespace) -> int:
    from munet.body.demo import posed_body_reconstruction
    from munet.export import write_glb

    reconstruction = posed_body_reconstruction(skeleton=args.skeleton, seed=args.seed)
    write_glb(reconstruction, args.output)
    print(f"wrote {args.output}: {reconstruction.skeleton.num_joints} joints, "
          f"{len(reconstruction.body.rest_vertices_m)} vertices")
    return 0
