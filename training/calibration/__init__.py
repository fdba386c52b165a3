"""Calibration of the simulated detector on the real MediaPipe (``python -m training.calibrate``; README.md here)."""
