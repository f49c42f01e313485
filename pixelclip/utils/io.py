"""Atomic file writes: a file under its final name is either the old one or complete.

The data go to a temporary file in the destination's folder (same file system), which is flushed,
fsync'ed and renamed onto the destination (``os.replace``, atomic on POSIX and Windows); the
folder is fsync'ed too where the platform allows, so the rename survives a crash. On any error
(disk full, a failing serializer, Ctrl-C) the temporary file is removed and the destination is
left as it was.

A process killed while writing (``kill -9``, a node failure) cannot remove its temporary file;
:func:`remove_stale_temp_files` removes such leftovers (the checkpointer when it starts and before
each save, the mask generation and the SA-1B preparation when they start).
"""
import logging
import os
import re
import time
import uuid
from typing import BinaryIO, Callable, Iterable, Iterator, List, Optional, Union

__all__ = ["TEMP_MARKER", "atomic_write", "temp_path_for", "remove_stale_temp_files"]

logger = logging.getLogger(__name__)

# Temporary files are "<target>.tmp-<pid>-<token>" beside the target; listings skip names holding it
# (pixelclip/data/mask_io.py uses the same marker).
TEMP_MARKER = ".tmp-"

PathLike = Union[str, os.PathLike]


def temp_path_for(path: PathLike) -> str:
    """A fresh temporary name beside ``path`` (``<path>.tmp-<pid>-<token>``)."""
    return f"{os.fspath(path)}{TEMP_MARKER}{os.getpid()}-{uuid.uuid4().hex[:8]}"


# the names temp_path_for makes: <target>.tmp-<pid>-<8 hex digits>
_TEMP_NAME = re.compile(r"^.+(?P<suffix>" + re.escape(TEMP_MARKER) + r"(?P<pid>\d+)-[0-9a-f]{8})$")
_STARTED = time.time()  # when this process imported the module: no file of ours is older


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # exists (another user's), or cannot tell: keep its files
        return True
    return True


def remove_stale_temp_files(folder: PathLike, *, recursive: bool = False,
                            owned_targets: Optional[Iterable[PathLike]] = None) -> List[str]:
    """Remove the temporary files of :func:`atomic_write` (``<target>.tmp-<pid>-<token>``) that an
    interrupted write left in ``folder`` (and below it if ``recursive``). Returns the paths removed.

    Without ``owned_targets``, a temporary file is removed when it is older than this process and
    its writing process is not running (on this machine): a write in progress elsewhere in this
    machine is left alone (the checkpointer, the SA-1B preparation).
    With ``owned_targets`` (the files the caller alone writes, e.g. one shard of a mask generation
    whose other shards may run on other machines), exactly the temporary files of those targets
    are removed, whoever wrote them."""
    owned = None if owned_targets is None else {os.path.abspath(t) for t in owned_targets}
    removed = []
    for entry in _walk_files(folder, recursive):
        match = _TEMP_NAME.match(entry.name)
        if not match:
            continue
        try:
            if owned is not None:
                if os.path.abspath(entry.path)[: -len(match.group("suffix"))] not in owned:
                    continue
            else:
                pid = int(match.group("pid"))
                if entry.stat(follow_symlinks=False).st_mtime >= _STARTED or pid == os.getpid() or _pid_alive(pid):
                    continue
            os.remove(entry.path)
        except FileNotFoundError:  # removed meanwhile (another rank, the writer)
            continue
        except OSError as e:
            logger.warning("could not remove the stale temporary file %s: %s", entry.path, e)
            continue
        removed.append(entry.path)
        logger.info("removed %s: a temporary file left by an interrupted write", entry.path)
    return removed


def _walk_files(folder: PathLike, recursive: bool) -> Iterator[os.DirEntry]:
    """The regular files of ``folder`` (and of its subfolders if ``recursive``); none if it does not exist."""
    try:
        entries = list(os.scandir(folder))
    except OSError:  # no folder (yet)
        return
    for entry in entries:
        if entry.is_file(follow_symlinks=False):
            yield entry
        elif recursive and entry.is_dir(follow_symlinks=False):
            yield from _walk_files(entry.path, recursive)


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: folders cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(
    path: PathLike,
    data: Optional[Union[bytes, str]] = None,
    *,
    writer: Optional[Callable[[BinaryIO], None]] = None,
    encoding: str = "utf-8",
    make_dirs: bool = True,
) -> str:
    """Write ``path`` atomically.

    Arguments:
        path: the destination file.
        data: ``bytes``, or ``str`` (encoded with ``encoding``); or None with ``writer``.
        writer: a callable that writes to a binary file object, e.g.
            ``lambda f: torch.save(obj, f)`` or ``lambda f: image.save(f, format="PNG")``.
        make_dirs: create the destination's folder if needed.
    Returns:
        ``path`` as a string.
    Raises:
        whatever writing raises (``OSError`` for a full disk, the serializer's error); the
        destination is then untouched and no temporary file is left.
    """
    if (data is None) == (writer is None):
        raise TypeError("atomic_write: give exactly one of data and writer")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if make_dirs:
        os.makedirs(folder, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        with open(tmp, "wb") as f:
            if writer is not None:
                writer(f)
            else:
                f.write(data.encode(encoding) if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(folder)
    return path
