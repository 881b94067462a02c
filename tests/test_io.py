"""``xpnet.io.atomic_write`` on real files: what the target holds after a clean exit and after
every kind of failure, that no temp file survives, and the permissions under different umasks.

Umask cases run in a subprocess, so this process's umask is never changed under pytest's feet.
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import tempfile
import threading

import numpy as np
import pytest

from xpnet import io as xio
from xpnet.io import atomic_write, write_bytes_atomic, write_text_atomic


def listing(directory) -> list[str]:
    return sorted(os.listdir(directory))


@pytest.fixture
def old_file(tmp_path):
    path = tmp_path / "target.bin"
    path.write_bytes(b"old contents")
    return path


# ------------------------------------------------------------------------------- clean writes
def test_bytes_written_to_a_new_file(tmp_path):
    path = tmp_path / "new.bin"
    with atomic_write(path) as f:
        f.write(b"\x00\x01binary\r\n")
    assert path.read_bytes() == b"\x00\x01binary\r\n"
    assert listing(tmp_path) == ["new.bin"]


def test_replaces_an_existing_file(old_file):
    with atomic_write(old_file) as f:
        f.write(b"new")
    assert old_file.read_bytes() == b"new"
    assert listing(old_file.parent) == ["target.bin"]


def test_text_mode_is_utf8_without_newline_translation(tmp_path):
    path = tmp_path / "t.txt"
    with atomic_write(path, "w") as f:
        f.write("déjà vu\n")
    assert path.read_bytes() == "déjà vu\n".encode()
    write_text_atomic(path, "a\nb\r\n")
    assert path.read_bytes() == b"a\nb\r\n"
    with atomic_write(path, "w", encoding="latin-1") as f:
        f.write("é")
    assert path.read_bytes() == b"\xe9"


def test_write_bytes_atomic(tmp_path):
    write_bytes_atomic(tmp_path / "b", b"xyz")
    assert (tmp_path / "b").read_bytes() == b"xyz"


def test_np_savez_through_the_file_object(tmp_path):
    path = tmp_path / "arrays.ckpt"  # no .npz: savez must not append one to a file object
    arrays = {"w": np.arange(12.0).reshape(3, 4), "meta": np.array("text")}
    with atomic_write(path) as f:
        np.savez(f, **arrays)
    assert listing(tmp_path) == ["arrays.ckpt"]
    with np.load(path) as npz:
        np.testing.assert_array_equal(npz["w"], arrays["w"])
        assert str(npz["meta"]) == "text"


def test_relative_path_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_text_atomic("m.json", "{}")
    assert (tmp_path / "m.json").read_text() == "{}"
    assert listing(tmp_path) == ["m.json"]


def test_temp_file_is_hidden_in_the_same_folder(tmp_path):
    path = tmp_path / "model.npz"
    with atomic_write(path) as f:
        f.write(b"x")
        during = listing(tmp_path)
    assert len(during) == 1
    assert during[0].startswith(".model.npz.") and during[0].endswith(".tmp")
    assert listing(tmp_path) == ["model.npz"]


def test_file_and_folder_are_fsynced(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def spy(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    write_bytes_atomic(tmp_path / "f", b"data")
    assert synced == [False, True]  # the file before the rename, the folder after it


def test_concurrent_writers_leave_one_complete_file(tmp_path):
    path = tmp_path / "shared.bin"
    payloads = [bytes([i]) * 100_000 for i in range(8)]
    barrier = threading.Barrier(len(payloads))
    errors = []

    def write(data):
        barrier.wait()
        try:
            write_bytes_atomic(path, data)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert path.read_bytes() in payloads
    assert listing(tmp_path) == ["shared.bin"]


# ------------------------------------------------------------------------------- failures
@pytest.mark.parametrize("exc_type", [RuntimeError, KeyboardInterrupt])
def test_exception_mid_write_keeps_the_old_file(old_file, exc_type):
    with pytest.raises(exc_type):
        with atomic_write(old_file) as f:
            f.write(b"half of the new con")
            raise exc_type("boom")
    assert old_file.read_bytes() == b"old contents"
    assert listing(old_file.parent) == ["target.bin"]


def test_exception_mid_write_creates_nothing(tmp_path):
    with pytest.raises(ValueError, match="boom"):
        with atomic_write(tmp_path / "never.txt", "w") as f:
            f.write("partial")
            raise ValueError("boom")
    assert listing(tmp_path) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_disk_full_keeps_the_old_file(old_file, monkeypatch):
    """The temp file's writes go to /dev/full, so the kernel answers ENOSPC mid-write."""
    real_mkstemp = tempfile.mkstemp
    made = []

    def mkstemp_on_full_disk(*args, **kwargs):
        fd, name = real_mkstemp(*args, **kwargs)
        os.close(fd)
        made.append(name)
        return os.open("/dev/full", os.O_WRONLY), name

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp_on_full_disk)
    with pytest.raises(OSError) as info:
        with atomic_write(old_file) as f:
            f.write(b"x" * 200_000)
    assert info.value.errno == errno.ENOSPC
    assert len(made) == 1 and not os.path.exists(made[0])
    assert old_file.read_bytes() == b"old contents"
    assert listing(old_file.parent) == ["target.bin"]


def test_fsync_failure_keeps_the_old_file(old_file, monkeypatch):
    def failing_fsync(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="Input/output error"):
        write_bytes_atomic(old_file, b"new")
    monkeypatch.undo()
    assert old_file.read_bytes() == b"old contents"
    assert listing(old_file.parent) == ["target.bin"]


def test_folder_fsync_failure_is_ignored(tmp_path, monkeypatch):
    """The rename has happened; a folder that cannot be synced must not fail the write."""
    real_fsync = os.fsync

    def fsync_files_only(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_files_only)
    write_bytes_atomic(tmp_path / "f", b"data")
    assert (tmp_path / "f").read_bytes() == b"data"


def test_rename_onto_a_folder_fails_and_cleans_up(tmp_path):
    target = tmp_path / "out.json"
    target.mkdir()
    (target / "keep.txt").write_text("precious")
    with pytest.raises(OSError):
        write_text_atomic(target, "{}")
    assert listing(tmp_path) == ["out.json"]
    assert listing(target) == ["keep.txt"]


def test_missing_folder_raises_before_writing(tmp_path):
    body_ran = False
    with pytest.raises(FileNotFoundError):
        with atomic_write(tmp_path / "absent" / "f.bin"):
            body_ran = True
    assert not body_ran
    assert listing(tmp_path) == []


@pytest.mark.parametrize("mode", ["r", "a", "ab", "w+b", "xb", "rb"])
def test_other_modes_are_refused(tmp_path, mode):
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "f", mode):
            pass
    assert listing(tmp_path) == []


def test_encoding_in_binary_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="text mode"):
        with atomic_write(tmp_path / "f", "wb", encoding="utf-8"):
            pass
    assert listing(tmp_path) == []


# ------------------------------------------------------------------------------- permissions
_WRITE_WITH_UMASK = """
import os, sys
import xpnet.io as xio
os.umask(int(sys.argv[2], 8))  # after the import: the umask in force now must be used
{setup}
xio.write_bytes_atomic(sys.argv[1], b"x")
print(oct(os.stat(sys.argv[1]).st_mode & 0o777))
"""


def _mode_written_under(path, umask, setup=""):
    result = subprocess.run([sys.executable, "-c", _WRITE_WITH_UMASK.format(setup=setup),
                             str(path), oct(umask)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip(), 8)


@pytest.mark.parametrize("umask, expected", [(0o077, 0o600), (0o022, 0o644), (0o002, 0o664),
                                             (0o027, 0o640)])
def test_permissions_follow_the_umask(tmp_path, umask, expected):
    assert _mode_written_under(tmp_path / "new", umask) == expected


@pytest.mark.parametrize("mode, umask", [(0o600, 0o022), (0o644, 0o077), (0o640, 0o002)])
def test_a_replaced_file_keeps_its_permissions(tmp_path, mode, umask):
    """As with open(path, "w"): replacing a file never widens (or narrows) what its owner set,
    e.g. a checkpoint made private with chmod 600 stays private when a run re-saves it."""
    path = tmp_path / "f"
    path.write_bytes(b"old")
    path.chmod(mode)
    assert _mode_written_under(path, umask) == mode


def test_umask_fallback_without_proc(tmp_path):
    """Where /proc cannot tell the umask, the value read at import is used."""
    script = """
import builtins, os, sys
os.umask(0o027)
import xpnet.io as xio
def no_proc(path, *args, **kwargs):
    if str(path).startswith("/proc/"):
        raise FileNotFoundError(path)
    return builtins.open(path, *args, **kwargs)
xio.open = no_proc  # shadows the builtin inside xpnet.io only
xio.write_bytes_atomic(sys.argv[1], b"x")
print(oct(os.stat(sys.argv[1]).st_mode & 0o777))
"""
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "f")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip(), 8) == 0o640


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_umask_is_read_without_changing_it():
    before = xio._umask()
    mask = os.umask(before)  # read it the other way, restoring at once
    assert mask == before
