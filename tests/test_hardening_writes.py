"""Safe writes (issue 11, families 2 and 7): an output is a regular file written atomically, or
it is refused before any work. Special files are refused, never replaced and never written
through (a FIFO could block the end of a run forever, a device cannot be replaced atomically,
and replacing one, ``/dev/null`` as root, is the bug); symlinks are followed, so the file they
point to is replaced and the link kept; colliding paths and a ``--plot`` without ``.png`` are
usage errors (exit 2) before any data is read. Disk-full failures (RLIMIT_FSIZE in the child,
which makes the kernel refuse to grow a file) leave no partial or temporary file, and
permissions are those ``open()`` gives: the umask for new files, the old mode for a replaced
file.

Everything runs on real files, FIFOs, sockets and device nodes (``mknod`` where permitted),
and the CLI as real subprocesses.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import stat
import subprocess
import sys

import pytest
from cli_helpers import GZ_NAMES, cli_env, one_error_line, run_train

import xpnet
from xpnet import checkpoint as ckpt
from xpnet.checkpoint import CheckpointError
from xpnet.io import SpecialFileError, atomic_write, write_bytes_atomic

SMALL = ["--layers", "784,16,10", "--batch-size", "256", "--epochs", "2", "--device", "cpu"]
SUBSET = 600


def listing(directory) -> list[str]:
    return sorted(os.listdir(directory))


def _device_node(path):
    """A character device like /dev/null (1, 3), made here so that nothing system-wide is at
    stake; skips where mknod is not permitted."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot make a device node here ({exc})")
    return path


def _socket(path):
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    return s


@pytest.fixture
def specials(tmp_path):
    """name -> a path that is not a regular file (or points at one that is not)."""
    out = {"fifo": tmp_path / "fifo", "directory": tmp_path / "dir",
           "link-to-dev-null": tmp_path / "null-link", "socket": tmp_path / "sock"}
    os.mkfifo(out["fifo"])
    out["directory"].mkdir()
    os.symlink("/dev/null", out["link-to-dev-null"])
    sock = _socket(out["socket"])
    yield out
    sock.close()


KINDS = {"fifo": stat.S_ISFIFO, "directory": stat.S_ISDIR, "link-to-dev-null": stat.S_ISCHR,
         "socket": stat.S_ISSOCK}


# ------------------------------------------------------------------------------- the library
def test_special_files_are_refused_and_left_alone(specials, tmp_path):
    net = xpnet.MLP([3, 2], device="cpu")
    for name, path in specials.items():
        with pytest.raises(SpecialFileError):
            write_bytes_atomic(path, b"data")
        with pytest.raises(CheckpointError, match="not a regular file"):
            ckpt.save(net, path)
        assert KINDS[name](os.stat(path).st_mode), name  # still what it was
    assert os.readlink(specials["link-to-dev-null"]) == "/dev/null"
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_a_device_node_is_never_replaced(tmp_path):
    node = _device_node(tmp_path / "null")
    with pytest.raises(SpecialFileError, match="character device"):
        with atomic_write(node) as f:
            f.write(b"x")
    with pytest.raises(CheckpointError, match="character device"):
        ckpt.save(xpnet.MLP([3, 2], device="cpu"), node)
    assert stat.S_ISCHR(os.stat(node).st_mode)
    assert listing(tmp_path) == ["null"]


def test_symlinks_are_followed_and_kept(tmp_path):
    real = tmp_path / "runs" / "model.npz"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "latest.npz"
    link.symlink_to(real)
    ckpt.save(xpnet.MLP([3, 2], device="cpu"), link)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert ckpt.load(real, device="cpu").layer_sizes == [3, 2]
    dangling = tmp_path / "new.json"
    dangling.symlink_to(tmp_path / "runs" / "made.json")
    write_bytes_atomic(dangling, b"{}")
    assert dangling.is_symlink() and (tmp_path / "runs" / "made.json").read_bytes() == b"{}"
    assert listing(tmp_path / "runs") == ["made.json", "model.npz"]


# ------------------------------------------------------------------------------- the CLI
@pytest.mark.parametrize("flag, kind", [("--save", "fifo"), ("--metrics-json", "link-to-dev-null"),
                                        ("--plot", "directory"), ("--save", "socket")])
def test_cli_refuses_special_outputs_before_any_work(specials, tmp_path, flag, kind):
    path = specials[kind]
    if flag == "--plot":
        path = path.rename(tmp_path / "curves.png")
    result = run_train([*SMALL, "--data-dir", tmp_path / "no-data", flag, path], cwd=tmp_path,
                       subset=None, timeout=60)
    assert result.returncode == 1, result.stderr
    line = one_error_line(result)
    assert f"{flag} {path}" in line and "not a regular file" in line
    assert result.stdout == ""  # failed while checking the command line: no data, no device
    assert KINDS[kind](os.stat(path).st_mode)


def test_cli_refuses_a_device_node(tmp_path):
    node = _device_node(tmp_path / "null")
    result = run_train([*SMALL, "--metrics-json", node], cwd=tmp_path, subset=None)
    assert result.returncode == 1
    assert "character device" in one_error_line(result)
    assert stat.S_ISCHR(os.stat(node).st_mode)


def _collisions(tmp_path, data_copy):
    (tmp_path / "ck.npz").write_bytes(b"a checkpoint")
    os.link(tmp_path / "ck.npz", tmp_path / "hard.json")
    os.symlink(tmp_path / "m.png", tmp_path / "alias.png")
    return {
        "resume-metrics": (["--resume", "ck.npz", "--metrics-json", "ck.npz"], "--resume"),
        "resume-plot-hardlink": (["--resume", "ck.npz", "--metrics-json", "hard.json"],
                                 "--resume"),
        "save-plot": (["--save", "x.png", "--plot", "./x.png"], "same file"),
        "metrics-plot-symlink": (["--metrics-json", "m.png", "--plot", "alias.png"],
                                 "same file"),
        "save-metrics": (["--save", "out", "--metrics-json", f"{tmp_path}/out"], "same file"),
        "save-data": (["--data-dir", data_copy, "--save", data_copy / GZ_NAMES[1]],
                      "data file"),
        "plot-suffix": (["--plot", "p.xyz"], "ending in .png"),
        "plot-no-suffix": (["--plot", "out"], "ending in .png"),
    }


CASES = ["resume-metrics", "resume-plot-hardlink", "save-plot", "metrics-plot-symlink",
         "save-metrics", "save-data", "plot-suffix", "plot-no-suffix"]


@pytest.mark.parametrize("case", CASES)
def test_colliding_or_misnamed_outputs_are_usage_errors_before_any_work(data_dir, tmp_path,
                                                                        case):
    data_copy = tmp_path / "mnist"
    data_copy.mkdir()
    for name in GZ_NAMES:
        os.symlink(data_dir / name, data_copy / name)
    args, words = _collisions(tmp_path, data_copy)[case]
    before = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    result = run_train([*SMALL, *args], cwd=tmp_path, subset=SUBSET)
    assert result.returncode == 2, result.stderr
    assert words in one_error_line(result)
    assert result.stdout == ""
    assert {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    assert not (tmp_path / "out").exists() and not (tmp_path / "p.xyz").exists()


def test_save_over_the_resumed_checkpoint_is_allowed(tmp_path):
    """--resume X --save X is how a run is continued in place: not a collision."""
    from xpnet.train import _check_collisions, build_parser

    args = build_parser().parse_args(["--resume", "ck.npz", "--save", "./ck.npz"])
    _check_collisions(args, [("--save", "./ck.npz")])


def _limit_file_size(limit):
    def limit_it():
        # Python ignores SIGXFSZ, so writing past the limit fails with EFBIG, like a full disk.
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return limit_it


@pytest.fixture(scope="module")
def font_cache():
    """matplotlib's font cache, built once without a file-size limit: on a machine where it
    does not exist yet, the limited run would fail to write it (and say so on stderr) before
    it reaches the outputs under test."""
    subprocess.run([sys.executable, "-c", "import matplotlib.pyplot"], env=cli_env(),
                   capture_output=True, timeout=300, check=True)


@pytest.mark.slow
@pytest.mark.parametrize("limit, failing", [(20_000, "curves.png"), (1_000, "m.json")])
def test_full_disk_while_writing_outputs_leaves_no_partial_file(data_dir, tmp_path, limit,
                                                                failing, font_cache):
    """Metrics (about 3 KB) are written before the plot (about 30 KB): with room for the
    first only, the plot fails and the metrics are complete; with room for neither, the
    metrics fail. An old file in the way is kept; no temp file is left."""
    (tmp_path / failing).write_bytes(b"previous")
    result = run_train([*SMALL, "--data-dir", data_dir, "--metrics-json", "m.json", "--plot",
                        "curves.png"], cwd=tmp_path, subset=SUBSET,
                       preexec_fn=_limit_file_size(limit))
    assert result.returncode == 1, result.stderr
    line = one_error_line(result)
    assert f"cannot write {failing}" in line and "File too large" in line
    assert (tmp_path / failing).read_bytes() == b"previous"
    if failing == "curves.png":
        assert listing(tmp_path) == ["curves.png", "m.json"]
        assert json.loads((tmp_path / "m.json").read_text())["epochs_run"] == 2
    else:
        assert listing(tmp_path) == ["m.json"]


WRITE_UNDER_UMASK = """
import os, sys
os.umask(0o077)
from xpnet.train import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_outputs_follow_the_umask_and_replaced_files_keep_their_mode(data_dir, tmp_path):
    (tmp_path / "m.json").write_text("{}")
    (tmp_path / "m.json").chmod(0o644)
    result = subprocess.run(
        [sys.executable, "-c", WRITE_UNDER_UMASK, *SMALL, "--data-dir", str(data_dir), "--save",
         "ck.npz", "--metrics-json", "m.json", "--plot", "curves.png", "--quiet"],
        cwd=tmp_path, env=cli_env(SUBSET), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"ck.npz": 0o600, "curves.png": 0o600, "m.json": 0o644}
