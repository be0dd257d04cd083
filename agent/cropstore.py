"""The folder of kept crops (``crop.save_dir``), held under a quota: at most ``save_max_files``
JPEGs and ``save_max_mb`` in all; the oldest go first. Only ``*.jpg`` files in it are counted or
deleted. Cameras may share the folder: when the quota is reached it is scanned again, so what
every camera wrote counts."""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)


class CropStore:
    def __init__(self, folder: Path, *, max_files: int, max_mb: float) -> None:
        self.folder = folder
        self._max_files = max_files
        self._max_bytes = int(max_mb * 1_000_000)
        self._files = -1  # what this folder holds, as far as we know; -1: not scanned yet
        self._bytes = 0
        self.deleted = 0

    def save(self, name: str, jpeg: bytes) -> None:
        """Delete the oldest crops beyond the quota, then write ``name`` (a ``.jpg``); raises OSError."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._files < 0:
            self._prune(0)
        if self._files + 1 > self._max_files or self._bytes + len(jpeg) > self._max_bytes:
            self._prune(len(jpeg))
        (self.folder / name).write_bytes(jpeg)
        self._files += 1
        self._bytes += len(jpeg)

    def _prune(self, incoming: int) -> None:
        """Scan the folder; delete the oldest crops until one of ``incoming`` bytes fits."""
        crops = []
        with os.scandir(self.folder) as it:
            for e in it:
                if e.name.endswith(".jpg") and e.is_file(follow_symlinks=False):
                    st = e.stat(follow_symlinks=False)
                    crops.append((st.st_mtime, e.name, st.st_size))
        crops.sort()
        files, size = len(crops), sum(c[2] for c in crops)
        gone = 0
        for _, name, nbytes in crops:
            if files + 1 <= self._max_files and size + incoming <= self._max_bytes:
                break
            try:
                (self.folder / name).unlink()
            except FileNotFoundError:  # another camera's pipeline took it first
                pass
            files, size, gone = files - 1, size - nbytes, gone + 1
        if gone:
            self.deleted += gone
            logger.debug("crop quota: deleted the %d oldest dir=%s", gone, self.folder)
        self._files, self._bytes = files, size


__all__ = ["CropStore"]
