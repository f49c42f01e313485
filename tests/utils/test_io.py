"""pixelclip.utils.io.atomic_write: the destination is the old file or the complete new one."""
import errno
import json
import os

import pytest
import torch

from pixelclip.evaluation import write_summary
from pixelclip.utils.io import TEMP_MARKER, atomic_write


def test_bytes_text_and_writer(tmp_path):
    atomic_write(tmp_path / "a" / "b.bin", b"\x00\x01")  # creates the folder
    atomic_write(tmp_path / "t.txt", "é\n")
    atomic_write(tmp_path / "x.pt", writer=lambda f: torch.save({"w": torch.arange(3)}, f))
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "é\n"
    assert torch.equal(torch.load(tmp_path / "x.pt", weights_only=True)["w"], torch.arange(3))
    with pytest.raises(TypeError):
        atomic_write(tmp_path / "y", b"x", writer=lambda f: None)


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "metrics.json"
    atomic_write(path, '{"old": 1}')

    def half_then_fail(f):
        f.write(b'{"new": ')
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, writer=half_then_fail)
    assert path.read_text() == '{"old": 1}'
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_summary_write_interrupted_by_a_full_disk(tmp_path, monkeypatch):
    """write_summary (the evaluation's summary.json / summary.md) through the shared helper."""
    write_summary({"voc_2012_test_sem_seg": {"mIoU": 90.0, "num_images": 1449}}, str(tmp_path))
    old = {p: (tmp_path / p).read_text() for p in ("summary.json", "summary.md")}
    real_fsync = os.fsync

    def full_disk(fd):  # the bytes were written, the flush to disk fails
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_summary({"ade20k_150_test_sem_seg": {"mIoU": 20.0, "num_images": 2000}}, str(tmp_path))
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert {p: (tmp_path / p).read_text() for p in ("summary.json", "summary.md")} == old
    assert json.loads(old["summary.json"])["voc_2012_test_sem_seg"]["images"] == 1449
    assert not [p for p in os.listdir(tmp_path) if TEMP_MARKER in p]


def _dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporaries_of_a_killed_write_are_removed_and_nothing_else(tmp_path):
    """kill -9 during a save leaves '<target>.tmp-<pid>-<token>' (often 0 bytes): removed when older than this
    process and its writer is gone; a write in progress, other names and subfolders are left alone."""
    from pixelclip.utils.io import remove_stale_temp_files

    old = os.stat(tmp_path).st_mtime - 3600
    dead = _dead_pid()
    stale = tmp_path / f"model_0000999.pth{TEMP_MARKER}{dead}-0123abcd"
    kept = {
        "recent": tmp_path / f"model_0001999.pth{TEMP_MARKER}{dead}-89abcdef",  # written after this process started
        "live": tmp_path / f"model_0002999.pth{TEMP_MARKER}{os.getppid()}-0123abcd",  # its writer still runs
        "other name": tmp_path / f"notes{TEMP_MARKER}{dead}-xyz",
        "user file": tmp_path / "model_final.pth",
        "below": tmp_path / "sub" / f"a.pth{TEMP_MARKER}{dead}-0123abcd",
    }
    kept["below"].parent.mkdir()
    for path in [stale, *kept.values()]:
        path.write_bytes(b"")
        if path != kept["recent"]:
            os.utime(path, (old, old))
    assert remove_stale_temp_files(tmp_path) == [str(stale)]
    assert not stale.exists() and all(path.exists() for path in kept.values())
    assert remove_stale_temp_files(tmp_path / "missing") == []


def test_stale_temporaries_below_a_folder_and_of_owned_targets(tmp_path):
    """recursive: subfolders too, same rule. owned_targets: exactly those targets' temporaries, even of a
    live writer (another machine's pid means nothing here), and no other target's."""
    from pixelclip.utils.io import remove_stale_temp_files

    old = os.stat(tmp_path).st_mtime - 3600
    dead = _dead_pid()
    (tmp_path / "sub" / "deep").mkdir(parents=True)
    deep_stale = tmp_path / "sub" / "deep" / f"a.json{TEMP_MARKER}{dead}-0123abcd"
    deep_live = tmp_path / "sub" / f"b.json{TEMP_MARKER}{os.getppid()}-0123abcd"
    for path in (deep_stale, deep_live):
        path.write_bytes(b"")
        os.utime(path, (old, old))
    assert remove_stale_temp_files(tmp_path) == []  # not below without recursive
    assert remove_stale_temp_files(tmp_path, recursive=True) == [str(deep_stale)]
    assert deep_live.exists()

    mine = tmp_path / "sub" / f"c.json{TEMP_MARKER}{os.getppid()}-89abcdef"  # recent, writer alive: still mine
    mine.write_bytes(b"")
    assert remove_stale_temp_files(tmp_path, recursive=True, owned_targets=[tmp_path / "sub" / "c.json"]) == [str(mine)]
    assert deep_live.exists()  # b.json is not an owned target
    assert remove_stale_temp_files(tmp_path, recursive=True, owned_targets=[str(tmp_path / "sub" / "b.json")]) == [
        str(deep_live)]
