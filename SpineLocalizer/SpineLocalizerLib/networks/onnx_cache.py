"""Exported ONNX graphs kept on disk between processes, keyed by what they are exported from.

Why: exporting a network costs far more than running it once (the exporter alone imports `onnx`, ~0.7 s on
this project's CPU, then traces the module), and a command-line plan is one process per call. The graph
depends only on the weights, the architecture's code, the input layout it was recorded on and the exporter, so a
key over those (the weights' sha256 from their card, the module's class, the example shape, torch's version and
the opset) names it exactly; a changed weight file or a new torch gets a new graph.

Where: `SPINE_PLANNER_CACHE` when set (`none` turns the cache off), else `$XDG_CACHE_HOME/SpinePlanner/onnx`,
else `~/.cache/SpinePlanner/onnx`. A cache that cannot be written (read-only home, a full disk) only costs the
export each time; a damaged graph fails to load and is exported again and replaced.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

CACHE_ENV = "SPINE_PLANNER_CACHE"


def cache_folder() -> Path | None:
    """The folder the graphs are kept in, or None when the cache is off."""
    chosen = os.environ.get(CACHE_ENV, "").strip()
    if chosen.lower() == "none":
        return None
    if chosen:
        return Path(chosen).expanduser() / "onnx"
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "SpinePlanner" / "onnx"


def graph_key(weights_sha256: str, module, example_shape: tuple[int, ...], opset: int) -> str:
    """The name of a graph: every input of the export that changes it."""
    import torch

    parts = [weights_sha256, type(module).__module__, type(module).__qualname__, str(tuple(example_shape))]
    parts += [torch.__version__, str(opset)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def cached_graph(key: str) -> bytes | None:
    """The graph stored under `key`, or None."""
    folder = cache_folder()
    if folder is None:
        return None
    try:
        return (folder / f"{key}.onnx").read_bytes()
    except OSError:
        return None


def store_graph(key: str, graph: bytes) -> None:
    """Keep `graph` under `key`, written whole or not at all (a temporary file renamed: two processes
    exporting at once both leave a complete file). Failures are ignored: the cache only saves time."""
    folder = cache_folder()
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(graph)
            os.replace(tmp, folder / f"{key}.onnx")
        except OSError:
            Path(tmp).unlink(missing_ok=True)
    except OSError:
        pass


def forget_graph(key: str) -> None:
    """Remove a graph that failed to load, so the next export replaces it."""
    folder = cache_folder()
    if folder is not None:
        try:
            (folder / f"{key}.onnx").unlink(missing_ok=True)
        except OSError:
            pass
