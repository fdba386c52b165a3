"""The synthetic data engine: Anny bodies in photo-like poses wearing procedural clothes, seen by a
simulated MediaPipe front end. See ``training/data/README.md``."""
