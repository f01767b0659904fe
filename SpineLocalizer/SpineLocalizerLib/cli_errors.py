"""One top-level error handler for every command line tool: a user's mistake or a broken file gives one line
saying what is wrong and what to do, exit status 2, never a traceback (`--debug` shows it)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

from .networks import ModelError

# What a user can cause and fix: their message already says what to do.
USER_ERRORS = (ValueError, FileNotFoundError, KeyError, json.JSONDecodeError, ModelError)
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def one_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return " ".join(text.split())


def run_command(prog: str, func: Callable[[], int], debug: bool = False) -> int:
    """`func()`'s exit status; any exception it raises becomes one line on stderr and exit status 2."""
    try:
        return func()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:
        if debug:
            raise
        print(f"{prog}: {describe(err)}", file=sys.stderr)
        return EXIT_BAD_INPUT


def describe(err: Exception) -> str:
    if isinstance(err, json.JSONDecodeError):
        return f"not valid JSON ({err.msg}, line {err.lineno} column {err.colno}): check the file"
    if isinstance(err, KeyError):
        return f"a required entry is missing: {one_line(err)}; check the file against its format (docs/)"
    if isinstance(err, USER_ERRORS):
        return one_line(err)
    if isinstance(err, MemoryError):
        return "out of memory: the input is far larger than a localizer; crop or downsample it"
    if isinstance(err, OSError):
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        return f"{err.strerror or one_line(err)}{where}: check the path, its permissions and the free disk space"
    return f"unexpected error ({type(err).__name__}: {one_line(err)}); run again with --debug and report the traceback"
