"""MuNet: one photo of a person in, a rigged body and a clothed surface out (model library).

Knows nothing of ZeroMQ or Blender. Entry points: ``munet.pipeline.reconstruct`` and
``munet.body.load_body_model``.
"""

__version__ = "0.1.0"
