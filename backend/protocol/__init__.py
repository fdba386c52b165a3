"""The MuNet wire format: the one source of truth for every message between a client and the backend.

This package moves no bytes: it turns typed messages into ZeroMQ frames and frames back into typed,
checked messages. It imports only the standard library, ``msgpack`` and ``numpy`` (never ``zmq``,
``torch``, ``bpy`` or ``munet``), and its modules import one another only relatively, never the rest
of ``backend``, so the Blender add-on ships a copy of this very package (``build_addon.py`` copies it
as the add-on's sub-package ``protocol``). PROTOCOL.md is the prose guide; this docstring is the
reference. Import the names below from the package (``from backend import protocol``); the modules
are its rooms:

* ``fields``: the decoder's ``Limits``, ``ProtocolError`` and the field checks.
* ``frames``: arrays and blobs in frames of their own (``FrameWriter``, ``FrameReader``).
* ``options``: the reconstruction ``Options`` a client may choose.
* ``results``: the result schema, ``ResultReconstruction`` and its parts.
* ``messages``: one class per message type, the version and the error codes.
* ``codec``: ``encode`` and ``decode``.

Frames
------
A message is a ZeroMQ multipart message::

    [routing envelope ...] [b""] [header] [buffer 1] [buffer 2] ...

* The routing envelope and the empty delimiter frame belong to ZeroMQ's REQ/ROUTER envelope
  convention: a DEALER client sends ``[b"", header, *buffers]``, the server's ROUTER socket prepends
  the client's routing id (a broker prepends its own id too), and replies come back with the same
  envelope. ``encode``/``decode`` handle only the part after the delimiter.
* ``header`` is one msgpack map (at most ``Limits.max_header_bytes``) with at least
  ``{"v": PROTOCOL_VERSION, "type": <message type>, "id": <request id>}``.
* Every array and every blob (photo, texture) travels in its own frame, referenced from the header by
  index (the header is frame 0, buffers are 1, 2, ...): an array as
  ``{"frame": i, "dtype": "float32", "shape": [V, 3]}`` (raw C-order **little-endian** bytes, exactly
  ``prod(shape) * itemsize`` long), a blob as ``{"frame": i, "nbytes": n}``. Each buffer frame is
  referenced exactly once. No other binary data appears inside the header (msgpack ``bin`` and
  ``ext`` types are refused).

Messages (``type``: fields; every field is checked, unknown fields are refused)
-------------------------------------------------------------------------------
Client to server:

* ``ping``: nothing. Answered at once with ``pong``, even while reconstructions run.
* ``info``: nothing. Answered with ``info_reply``.
* ``reconstruct``: ``image`` (blob: JPEG, PNG, WebP, BMP, TIFF or GIF bytes), ``options`` (map, see
  ``Options``), ``timeout_s`` (number or nil: the server gives up after this many seconds),
  ``progress`` (bool: send progress messages). Answered by zero or more ``progress`` messages and then
  exactly one ``result`` or one ``error`` carrying the same ``id``.
* ``cancel``: ``target`` (the id of an earlier ``reconstruct`` of the same client). Answered by
  ``cancel_ack``; the cancelled request itself ends with an ``error`` of code ``cancelled``.

Server to client (``id`` repeats the request's id; it is nil only in an ``error`` about a message
whose id could not be read):

* ``pong``: ``worker`` (str), ``ready`` (bool: the model is loaded), ``running``, ``queued``,
  ``capacity`` (ints), ``stats`` (map str -> int: counters of received, replied, rejected, dropped).
* ``info_reply``: see ``Info``.
* ``progress``: ``stage`` (str), ``fraction`` (0..1 of the whole request), ``position`` (int or nil:
  place in the queue while ``stage == "queued"``). The server repeats the latest progress every
  ``KEEPALIVE_S`` seconds so a client can tell a silent server from a slow one.
* ``result``: ``reconstruction`` (see ``ResultReconstruction``).
* ``error``: ``code`` (one of ``ERROR_CODES``), ``message`` (for people).
* ``cancel_ack``: ``target`` (str), ``found`` (bool: the target was queued or running here).

Conventions of the result (copied from ``munet/reconstruction.py``, which owns them)
-------------------------------------------------------------------------------------
* **World frame = Blender's**: metres, right-handed, Z up, the person faces -Y, feet on z=0 in the
  rest pose; the person's left is +X in the rest pose.
* **Joint frames**: every joint's local frame is axis-aligned with the world in the rest pose (the
  SMPL convention). ``pose_axis_angle[j]`` (radians) is the rotation of joint ``j`` relative to its
  parent, expressed in those world-aligned axes; joint 0 (the root) carries the global orientation.
  Skinning: ``G_j = G_parent(j) @ [R_j | t_j]`` and a vertex moves by ``sum_k w_k G_k (v - J_k)``;
  ``root_translation_m`` is added after posing. A Blender pose bone whose rest orientation (armature
  space) is ``B`` gets the local rotation ``B^T R_j B``.
* **Camera frame = OpenCV's**: x right, y down, z forward. A world point ``X`` maps to
  ``x_cam = R_world_to_cam @ X + t_world_to_cam_m`` and to pixels ``u = fx * x/z + cx,
  v = fy * y/z + cy``, (0, 0) being the top-left corner of the top-left pixel.
* **Skin weights** are sparse: ``K`` influences per vertex, padded with weight 0 and joint 0; each row
  sums to 1. ``joint_indices`` index ``skeleton.joint_names``.
* **UVs** per face corner in [0, 1], v up ((0, 0) is the bottom-left of the texture).

Decoded arrays are read-only views into the received frames (no copy): copy them to modify them.
"""

from __future__ import annotations

from .codec import decode, encode
from .fields import DEFAULT_LIMITS, Limits, ProtocolError, image_format, to_plain
from .frames import frames_nbytes
from .messages import (ERROR_CODES, KEEPALIVE_S, PROTOCOL_VERSION, REPLY_TYPES, REQUEST_TYPES, SUPPORTED_VERSIONS,
                       Cancel, CancelAck, Error, Info, InfoRequest, Message, Ping, Pong, Progress, Reconstruct, Result)
from .options import Options
from .results import (TEXTURE_MIME_TYPES, ResultCamera, ResultReconstruction, ResultSkeleton, ResultSkinWeights,
                      ResultSurface, ResultTexture)

__all__ = [
    "PROTOCOL_VERSION", "SUPPORTED_VERSIONS", "KEEPALIVE_S", "ERROR_CODES", "Limits", "DEFAULT_LIMITS",
    "ProtocolError", "Options", "ResultSkinWeights", "ResultSurface", "ResultSkeleton", "ResultCamera",
    "ResultTexture", "TEXTURE_MIME_TYPES", "ResultReconstruction", "Message", "Ping", "InfoRequest", "Reconstruct",
    "Cancel", "Pong", "Info", "Progress", "Result", "Error", "CancelAck", "REQUEST_TYPES", "REPLY_TYPES", "encode",
    "decode", "image_format", "to_plain", "frames_nbytes",
]
