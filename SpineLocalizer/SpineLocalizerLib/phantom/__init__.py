"""Procedural lumbar spine phantom with exact ground truth (`spine-phantom`)."""
