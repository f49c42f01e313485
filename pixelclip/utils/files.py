"""File listings shared by the datasets, mask generation and the tools."""
import os
from typing import List, Tuple

from .io import TEMP_MARKER

__all__ = ["IMAGE_EXTENSIONS", "MASK_SUFFIX", "list_files"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
MASK_SUFFIX = ".json"


def list_files(root: str, extensions: Tuple[str, ...]) -> List[str]:
    """Relative POSIX paths of the files under ``root`` (recursive, sorted) whose lower-case name
    ends with one of ``extensions``; hidden entries and temporary files are skipped."""
    found: List[str] = []
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        with os.scandir(os.path.join(root, rel_dir)) as entries:
            for entry in entries:
                if entry.name.startswith(".") or TEMP_MARKER in entry.name:
                    continue
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                if entry.is_dir(follow_symlinks=True):
                    stack.append(rel)
                elif entry.name.lower().endswith(extensions):
                    found.append(rel)
    found.sort()
    return found
