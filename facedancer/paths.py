"""Guards that keep a command from touching its inputs: outputs are compared with inputs as resolved paths.

`./x`, `x/`, `a/../x`, symlinks and case-only differences on case-insensitive file systems all name the
same file, so every comparison is between `Path.resolve()` results (and inode identity when both exist).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from facedancer.errors import FaceDancerError


class OutputError(FaceDancerError):
    """An output path that would overwrite or swallow an input, or that cannot be written."""


def resolved(path: str | Path) -> Path:
    return Path(os.path.expanduser(str(path))).resolve()


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when a and b name one file or folder (resolved paths, or the same inode when both exist)."""
    ra, rb = resolved(a), resolved(b)
    if ra == rb:
        return True
    try:
        return os.path.samefile(ra, rb)
    except OSError:
        return False


def inside(child: str | Path, parent: str | Path) -> bool:
    """True when child is parent or lies below it (resolved)."""
    rc, rp = resolved(child), resolved(parent)
    return rc == rp or rc.is_relative_to(rp) or same_file(rc, rp)


def refuse_output_over_inputs(
    output: str | Path,
    inputs: Iterable[tuple[str, str | Path | None]],
    output_flag: str = "--output",
    allow_inside: bool = False,
    hint: str = "",
) -> None:
    """Raise OutputError when `output` is an input, or contains one (or, unless allow_inside, lies in one).

    `inputs`: (flag, path) pairs; None paths are ignored. The message names both flags and the fix.
    """
    for flag, path in inputs:
        if path is None:
            continue
        fix = hint or f"choose another {output_flag}"
        if same_file(output, path):
            raise OutputError(f"{output_flag} {output} is the input {flag} {path}; {fix}")
        if inside(path, output):
            raise OutputError(f"{output_flag} {output} contains the input {flag} {path}; {fix}")
        if not allow_inside and Path(path).is_dir() and inside(output, path):
            raise OutputError(f"{output_flag} {output} lies inside the input {flag} {path}; {fix}")


def check_output_file(path: str | Path, flag: str = "--output") -> None:
    """An output file must not be an existing folder and its folder must be creatable and writable."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{flag} {path} is an existing folder; give a file name (e.g. {path / 'out'}{path.suffix})")
    check_output_folder(path.parent, flag, of=path)


def check_output_folder(folder: str | Path, flag: str = "--output", of: Path | None = None) -> None:
    """The folder (or its nearest existing ancestor) must be a writable folder, not a file."""
    folder = Path(folder) if str(folder) else Path(".")
    what = f"{flag} {of if of is not None else folder}"
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise OutputError(f"{what}: {probe} is a file, not a folder; choose another {flag}")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"{what}: folder {probe} is not writable; choose a writable {flag}")
