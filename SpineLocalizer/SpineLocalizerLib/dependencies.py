"""The Python packages the networks need beyond what 3D Slicer ships, and which of them are missing.

Slicer's Python has numpy, scipy, SimpleITK and Pillow; PyTorch comes from Slicer's PyTorch extension. The weights
are read with `safetensors` (required); ONNX Runtime (with `onnx`, which torch's exporter needs) runs the fp32
networks about twice as fast as TorchScript and is optional (networks/runtime.py falls back). The module installs
what is missing on the first "Run AI planning", after asking, never at import. The versions are those of
requirements.txt (a test keeps them equal).
"""

from __future__ import annotations

import importlib.util

REQUIRED = {"safetensors": "safetensors==0.8.0"}
OPTIONAL = {"onnxruntime": "onnxruntime==1.31.1", "onnx": "onnx==1.23.2"}


def missing(packages: dict[str, str]) -> list[str]:
    """The pip requirement of each package in `packages` (import name -> requirement) that cannot be imported."""
    return [spec for name, spec in packages.items() if importlib.util.find_spec(name) is None]


def missing_message(required: list[str], optional: list[str]) -> str:
    """What the module asks before installing (empty when nothing is missing)."""
    if not required and not optional:
        return ""
    lines = []
    if required:
        lines.append(f"The AI planning needs {', '.join(required)}.")
    if optional:
        lines.append(f"{', '.join(optional)} would make it about twice as fast on CPUs without bf16.")
    lines.append("Install with pip into Slicer's Python now (a few MB to ~20 MB)?")
    return " ".join(lines)
