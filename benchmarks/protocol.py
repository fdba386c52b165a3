"""Cost and size of the wire format for a full-size result.

    python -m benchmarks.protocol [--repeat 50] [--vertices 13688] [--texture-bytes 1048576]

The result comes from the synthetic engine (production sizes: a ~14k-vertex body, a clothed surface of
the same size, 24-joint skin with 4 influences, per-corner UVs, a ~1 MB PNG texture). Reported, as
medians over ``--repeat`` runs:

* encode: ``ResultReconstruction.from_reconstruction`` + ``protocol.encode`` (what a worker does);
* decode: ``protocol.decode`` of independent byte frames, with every check (what a client does);
* wire copy: joining the frames into bytes, a stand-in for the copy a socket makes;
* loopback: one reply sent over a real TCP loopback DEALER/ROUTER pair and decoded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time

import zmq

from backend import protocol, transport
from tests.doubles.fake_engine import FakeEngine
from tests.doubles.processes import EXAMPLE_PHOTO


def full_result(vertices: int, texture_bytes: int):
    os.environ["MUNET_FAKE_VERTICES"] = str(vertices)
    os.environ["MUNET_FAKE_TEXTURE_BYTES"] = str(texture_bytes)
    engine = FakeEngine()
    engine.load()
    return engine.reconstruct(EXAMPLE_PHOTO.read_bytes(), protocol.Options(), lambda *a: None, threading.Event())


def median_ms(samples: list[float]) -> float:
    return 1000 * statistics.median(samples)


def loopback_ms(frames: list, repeat: int) -> float:
    ctx = transport.context()
    server, client = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    endpoint = transport.bind(server, "tcp://127.0.0.1:0")
    client.connect(endpoint)
    client.send_multipart([b"", b"hello"])
    identity = server.recv_multipart()[0]
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        server.send_multipart([identity, b"", *frames], copy=False)
        received = client.recv_multipart(copy=False)
        protocol.decode(received[1:], expect="reply")
        samples.append(time.perf_counter() - start)
    server.close(0)
    client.close(0)
    return median_ms(samples)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--vertices", type=int, default=13_688)
    parser.add_argument("--texture-bytes", type=int, default=1 << 20)
    parser.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    args = parser.parse_args(argv)

    rec = full_result(args.vertices, args.texture_bytes)
    encode_s, decode_s, copy_s = [], [], []
    for i in range(args.repeat):
        start = time.perf_counter()
        frames = protocol.encode(protocol.Result(f"r{i}", protocol.ResultReconstruction.from_reconstruction(rec)))
        encode_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        wire = [bytes(f) for f in frames]
        copy_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        protocol.decode(wire, expect="reply")
        decode_s.append(time.perf_counter() - start)
    numbers = {
        "engine": "fake (synthetic full-size result)",
        "body_vertices": int(len(rec.body.rest_vertices_m)), "body_faces": int(len(rec.body.faces)),
        "clothed_vertices": int(len(rec.clothed.rest_vertices_m)), "texture_bytes": len(rec.texture.image_bytes),
        "frames": len(frames), "size_mb": protocol.frames_nbytes(frames) / 1e6,
        "encode_ms": median_ms(encode_s), "decode_ms": median_ms(decode_s),
        "encode_decode_ms": median_ms([a + b for a, b in zip(encode_s, decode_s)]),
        "wire_copy_ms": median_ms(copy_s), "tcp_loopback_send_recv_decode_ms": loopback_ms(frames, args.repeat),
    }
    print(f"full result: body {numbers['body_vertices']} vertices / {numbers['body_faces']} faces, clothed "
          f"{numbers['clothed_vertices']} vertices, texture {numbers['texture_bytes'] / 1e6:.2f} MB "
          f"(synthetic engine)")
    print(f"  size on the wire      {numbers['size_mb']:.2f} MB in {numbers['frames']} frames")
    print(f"  encode                {numbers['encode_ms']:.2f} ms (median of {args.repeat})")
    print(f"  decode (all checks)   {numbers['decode_ms']:.2f} ms")
    print(f"  encode + decode       {numbers['encode_decode_ms']:.2f} ms   (target <= 20 ms)")
    print(f"  copy to bytes         {numbers['wire_copy_ms']:.2f} ms")
    print(f"  TCP loopback + decode {numbers['tcp_loopback_send_recv_decode_ms']:.2f} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(numbers, f, indent=2)
    return numbers


if __name__ == "__main__":
    main()
