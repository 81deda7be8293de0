"""Quantization: calibration (observers, range choice), quantization parameters, and the
fixed-point arithmetic that integer runtimes share (docs/architecture.md, "Quantization schemes")."""
