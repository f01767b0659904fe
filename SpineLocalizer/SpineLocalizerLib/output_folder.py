"""Output folders that lose nothing: what a command guarantees about the folder it writes into.

- **All or nothing.** A run writes into a staging folder beside the output folder; only a run that finished
  replaces the folder, in one atomic swap (Linux `renameat2(RENAME_EXCHANGE)`; elsewhere two renames, the
  second of which the next run completes if it was interrupted). A failed, killed or interrupted run leaves the
  folder as it was; its staging folder is removed then (SIGTERM and Ctrl-C) or by the next run (SIGKILL).
- **One run at a time.** A run holds a lock on the folder itself (released by the system when a process
  dies; no lock file): a second run into the same folder waits for the first.
- **Only its own files.** Each command keeps a manifest (`.spineplanner-<command>.json` in the folder) of the
  files it wrote, with their sha256. It deletes or replaces only files in its manifest; every other file in the
  folder (other commands' outputs, the user's own files, the inputs) is carried over untouched, and a run that
  would replace one of them is refused.
- **No overwritten edits.** A file of its manifest that a person changed since (a dragged plane saved over a
  markups file) is neither replaced nor deleted unless `force` is given; the refusal names the files.
- **Inputs are never outputs.** A run whose output would replace one of its inputs is refused, `force` or not.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: runs into one folder are not serialised there
    fcntl = None  # type: ignore[assignment]

MANIFEST_PREFIX = ".spineplanner-"
STAGING_MARK = ".partial-"
OLD_MARK = ".replaced-"


class OutputConflict(ValueError):
    """The run would replace or delete something it must not; nothing was written."""


def manifest_name(command: str) -> str:
    return f"{MANIFEST_PREFIX}{command}.json"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(folder: Path, command: str) -> dict[str, str]:
    """name -> sha256 of the files `command` wrote into `folder` last time (empty when it never did)."""
    path = Path(folder) / manifest_name(command)
    if not path.exists():
        return {}
    try:
        files = json.loads(path.read_text()).get("files", {})
    except (OSError, ValueError):
        return {}  # an unreadable manifest protects everything: no file counts as ours
    return {str(k): str(v) for k, v in files.items()}


def finished_run(folder: Path, command: str, record: dict) -> bool:
    """True when `folder` holds a whole earlier run of `command` made from the same `record` (its inputs' sha256
    and settings), every file of it present and unchanged: what `--resume` skips."""
    path = Path(folder) / manifest_name(command)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("record") != record:
        return False
    files = manifest.get("files", {})
    return bool(files) and all(
        (Path(folder) / n).is_file() and sha256_of(Path(folder) / n) == digest for n, digest in files.items()
    )


@contextlib.contextmanager
def output_folder(
    final: str | Path,
    *,
    command: str,
    inputs: Iterable[str | Path] = (),
    force: bool = False,
    record: dict | None = None,
) -> Iterator[Path]:
    """Yield a staging folder to write a run's files into; on success they replace `command`'s previous files in
    `final` at once (module docstring), on any error or signal `final` is unchanged. `record` (JSON: the inputs'
    sha256 and the settings) goes into the manifest, for `finished_run`.

    Subfolders written into the staging folder are owned as a whole (their files are listed in the manifest by
    relative path)."""
    final = Path(final).absolute()
    if final.exists() and not final.is_dir():
        raise OutputConflict(f"{final} is a file, not a folder: give --out a folder (new or existing)")
    final.parent.mkdir(parents=True, exist_ok=True)
    _restore_interrupted_swap(final)
    created = not final.exists()
    committed = False
    with _locked(final), _signals_raise():
        _remove_leftovers(final)
        stage = Path(tempfile.mkdtemp(prefix=f".{final.name}{STAGING_MARK}", dir=final.parent))
        try:
            yield stage
            _commit(stage, final, command, [Path(p) for p in inputs], force, record)
            committed = True
        finally:
            shutil.rmtree(stage, ignore_errors=True)
            if created and not committed:
                with contextlib.suppress(OSError):
                    final.rmdir()  # the folder this failed run made for its lock (only while still empty)


def _commit(stage: Path, final: Path, command: str, inputs: list[Path], force: bool, record: dict | None) -> None:
    written = {str(p.relative_to(stage)): p for p in sorted(stage.rglob("*")) if p.is_file()}
    if manifest_name(command) in written:
        raise OutputConflict(f"{manifest_name(command)} is the manifest's own name; a run cannot write it")
    ours = read_manifest(final, command) if final.exists() else {}
    present = {str(p.relative_to(final)): p for p in sorted(final.rglob("*")) if p.is_file()} if final.exists() else {}
    for src in inputs:
        for name, path in present.items():
            if name in written and src.exists() and path.exists() and os.path.samefile(src, path):
                raise OutputConflict(
                    f"the output {final / name} would replace the input {src}: give another --out folder"
                )
    # Another command's or a person's file is never replaced; one of ours a person changed, only with `force`.
    foreign = [n for n in written if n in present and n not in ours and n != manifest_name(command)]
    if foreign:
        raise OutputConflict(
            f"{final} holds files this command did not write: {', '.join(foreign)}; move them away or give "
            "another --out folder"
        )
    stale = [n for n in ours if n in present and n not in written]
    edited = [n for n in list(written) + stale if n in ours and n in present and sha256_of(present[n]) != ours[n]]
    if edited and not force:
        raise OutputConflict(
            f"{', '.join(str(final / n) for n in edited)} changed since this command wrote them (edited by hand?); "
            "keep them by moving them away or writing elsewhere, or replace them with --force"
        )
    # The new folder: this run's files, the manifest, and every file that is not ours carried over (hard links:
    # no data copied; a copy where the file system has no links).
    for name, path in present.items():
        if name in written or name in ours or name == manifest_name(command):
            continue
        target = stage / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
    manifest: dict = {"command": command, "files": {n: sha256_of(p) for n, p in written.items()}}
    if record is not None:
        manifest["record"] = record
    (stage / manifest_name(command)).write_text(json.dumps(manifest, indent=1))
    for d in sorted(final.rglob("*")) if final.exists() else []:
        if d.is_dir() and not d.is_symlink():  # empty folders of the user are kept too
            (stage / d.relative_to(final)).mkdir(parents=True, exist_ok=True)
    mode = final.stat().st_mode
    os.chmod(stage, mode & 0o7777)  # the staging folder was made private (0700); the folder keeps its own mode
    _swap(stage, final)


def _swap(stage: Path, final: Path) -> None:
    """Put `stage` in the place of `final` at once; the old folder ends up at `stage` and is removed."""
    if _exchange(stage, final):
        shutil.rmtree(stage, ignore_errors=True)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{final.name}{OLD_MARK}", dir=final.parent))
    old.rmdir()
    os.rename(final, old)  # a kill between these two renames is completed by the next run (`_recover`)
    os.rename(stage, final)
    shutil.rmtree(old, ignore_errors=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 with RENAME_EXCHANGE); False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False  # the file system or kernel cannot exchange: fall back to two renames
    raise OSError(err, os.strerror(err), str(b))


def _restore_interrupted_swap(final: Path) -> None:
    """Finish a fallback swap a killed run left half done: the old folder was moved aside, the new one never
    arrived, so the old one is the folder. (Atomic: of two runs racing here, one rename wins.)"""
    if final.exists():
        return
    olds = sorted(final.parent.glob(f".{final.name}{OLD_MARK}*"))
    if olds:
        with contextlib.suppress(OSError):
            os.rename(olds[-1], final)


def _remove_leftovers(final: Path) -> None:
    """Under the lock: staging folders of runs that died, and old folders of finished swaps."""
    parent = final.parent
    for leftover in sorted(parent.glob(f".{final.name}{OLD_MARK}*")) + sorted(
        parent.glob(f".{final.name}{STAGING_MARK}*")
    ):
        shutil.rmtree(leftover, ignore_errors=True)


@contextlib.contextmanager
def _locked(final: Path) -> Iterator[None]:
    """An exclusive lock on the folder itself (made if missing). A run that waited while another swapped the
    folder holds the lock of the replaced one: it locks the new folder instead."""
    final.mkdir(exist_ok=True)
    if fcntl is None:
        yield
        return
    while True:
        fd = os.open(final, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another run writing into {final} ...", file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        locked, now = os.fstat(fd), _stat_or_none(final)
        if now is not None and (locked.st_dev, locked.st_ino) == (now.st_dev, now.st_ino):
            break
        os.close(fd)
        final.mkdir(exist_ok=True)
    try:
        yield
    finally:
        os.close(fd)  # releases the lock


def _stat_or_none(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


class Terminated(SystemExit):
    """SIGTERM during a run: raised so that the staging folder is cleaned up like after Ctrl-C."""


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, _frame):
        raise Terminated(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
