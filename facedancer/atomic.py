"""Write files under a temporary name and rename them when complete: no half-written outputs.

Temporary files are named `.STEM.tmp-PID…SUFFIX` beside their target. They are removed when the block
fails or the process is interrupted (the CLI turns SIGTERM into an exception, so `finally` runs), and a
later write into the same folder sweeps the ones whose process is gone (killed with SIGKILL, power loss).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

from facedancer.errors import FaceDancerError

log = logging.getLogger(__name__)

TEMP_NAME = re.compile(r"^\..+\.tmp-(\d+)(\..*)?$")
_swept: set[Path] = set()


class OutputPathError(FaceDancerError):
    """An output whose folder cannot be created or whose final name is taken by a folder."""


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_temps(folder: str | Path) -> list[Path]:
    """Remove temporary files an interrupted run of any facedancer command left in `folder`."""
    folder = Path(folder)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = TEMP_NAME.match(entry.name)
        if match and entry.is_file(follow_symlinks=False) and not _pid_alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    if removed:
        log.info("removed %d temporary file(s) an interrupted run left in %s", len(removed), folder)
    return removed


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise OutputPathError(
            f"cannot write {path}: {exc.filename or path.parent} is a file, not a folder; choose another output path"
        ) from exc
    except PermissionError as exc:
        raise OutputPathError(
            f"cannot write {path}: no permission to create {exc.filename or path.parent}; choose a writable folder"
        ) from exc
    key = path.parent.resolve()
    if key not in _swept:
        _swept.add(key)
        sweep_stale_temps(key)


def temp_path_for(path: str | Path) -> Path:
    """The temporary name `atomic_path` writes `path` under (same folder, same suffix, hidden)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix); it replaces `path` only if the block succeeds."""
    path = Path(path)
    _make_parent(path)
    if path.is_dir():
        raise OutputPathError(f"cannot write {path}: a folder has that name; remove it or choose another name")
    tmp = temp_path_for(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
