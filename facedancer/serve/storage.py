"""A private folder for uploads and results: random names only, nothing a client names, deleted on expiry."""

from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)


class Storage:
    """Files live in `root` (mode 0700); every name comes from `secrets`, so a client can neither pick nor guess
    a path. `close()` removes the folder when the server made it."""

    def __init__(self, root: Path | None = None):
        self._owned = root is None
        if root is None:
            root = Path(tempfile.mkdtemp(prefix="facedancer-serve-"))
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o700)
        self.root = root

    def new_path(self, suffix: str = "") -> Path:
        return self.root / f"{secrets.token_hex(16)}{suffix}"

    def remove(self, *paths: Path | None) -> None:
        for path in paths:
            if path is not None and path.parent == self.root:
                path.unlink(missing_ok=True)

    def files(self) -> list[Path]:
        return sorted(p for p in self.root.iterdir() if p.is_file())

    def close(self) -> None:
        if self._owned:
            shutil.rmtree(self.root, ignore_errors=True)
