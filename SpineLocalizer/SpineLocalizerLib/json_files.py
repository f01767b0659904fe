"""Reading the JSON files a user gives (plans, protocols, landmarks, measurements) with messages that name the
file and say what is wrong, and writing JSON that is standard (no NaN or Infinity, which other tools refuse)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def read_json(path: str | Path, what: str = "file") -> Any:
    """The parsed content of `path`; FileNotFoundError / ValueError naming the file and `what` it should be."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} not found")
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; give the {what} itself")
    try:
        return json.loads(path.read_text())
    except UnicodeDecodeError:
        raise ValueError(f"{path}: is not a text file; give the {what} (JSON)") from None
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path}: not valid JSON ({err.msg}, line {err.lineno} column {err.colno}); check the {what}"
        ) from None


def finite_or_none(value: Any) -> Any:
    """`value` with every NaN or infinite float (also inside lists and dicts) replaced by None (JSON null)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def dumps_standard(value: Any, **kwargs) -> str:
    """JSON text without NaN or Infinity (those become null)."""
    return json.dumps(finite_or_none(value), allow_nan=False, **kwargs)
