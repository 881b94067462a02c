"""Save and load an :class:`~xpnet.network.MLP` (and optional training state) as one ``.npz`` file.

File format (``format_version`` 1): an uncompressed NumPy ``.npz`` (a zip of ``.npy`` files)
holding only plain numeric and unicode arrays, so it loads with ``allow_pickle=False``:

    __meta__               0-d unicode array: a JSON object with
                             format            "xpnet-checkpoint"
                             format_version    1
                             config            MLP.config(), the constructor arguments
                             xpnet_version     the xpnet that wrote the file
                             saved_from_device e.g. "cpu" or "cuda:0" (informative only)
                             training          the JSON part of the training state, or null
    W0, b0, W1, b1, ...    layer weights (n_out, n_in) and biases (n_out,), in the net's dtype
    bn_gamma0, ...         batch-norm scales, one per hidden layer (only with batch_norm)
    bn_running_mean0, ...  batch-norm running means (only with batch_norm)
    bn_running_var0, ...   batch-norm running variances (only with batch_norm)
    train/<name>           the arrays of the training state (optimizer moments, RNG state, ...)

Arrays are stored as host NumPy arrays, so a checkpoint written on a GPU loads on the CPU and
the other way round. Writes are atomic: the file is written to a temporary file in the same
directory, flushed to disk and then renamed onto the target, so a failed save leaves the
previous checkpoint untouched. Every problem is reported as a :class:`CheckpointError`.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .network import MLP

__all__ = [
    "CheckpointError", "save", "load", "load_checkpoint", "nest_states", "sub_state", "FORMAT",
    "FORMAT_VERSION",
]

FORMAT = "xpnet-checkpoint"
FORMAT_VERSION = 1
META_KEY = "__meta__"
TRAIN_PREFIX = "train/"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members; an empty zip


class CheckpointError(ValueError):
    """A checkpoint could not be written or read; the message names the file and the fix."""


def _cause(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _param_names(config: dict) -> dict[str, tuple[int, ...]]:
    """The array names a checkpoint of ``config`` must hold, with their shapes."""
    sizes = config["layer_sizes"]
    shapes = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
        shapes[f"W{i}"] = (n_out, n_in)
        shapes[f"b{i}"] = (n_out,)
    if config.get("batch_norm"):
        for i, n in enumerate(sizes[1:-1]):
            for kind in ("bn_gamma", "bn_running_mean", "bn_running_var"):
                shapes[f"{kind}{i}"] = (n,)
    return shapes


# ---------------------------------------------------------------------------------------- save
def _collect(net: MLP, training_state, target: Path) -> dict[str, np.ndarray]:
    """Everything that goes into the file, as host arrays keyed by their names in the file."""
    from . import __version__  # noqa: PLC0415  (late: xpnet/__init__ may import this module)

    to_numpy = net.device.to_numpy
    arrays: dict[str, np.ndarray] = {}
    for i, (W, b) in enumerate(net.params):
        arrays[f"W{i}"], arrays[f"b{i}"] = to_numpy(W), to_numpy(b)
    for kind in ("bn_gamma", "bn_running_mean", "bn_running_var"):
        for i, a in enumerate(getattr(net, kind)):
            arrays[f"{kind}{i}"] = to_numpy(a)

    training_json = None
    if training_state is not None:
        if not isinstance(training_state, dict) or set(training_state) - {"json", "arrays"}:
            raise CheckpointError(
                f"cannot save checkpoint {target}: training_state must be a dict with keys "
                f'"json" (a dict) and "arrays" (name -> array); got {training_state!r:.80}.'
            )
        training_json = training_state.get("json") or {}
        for name, a in (training_state.get("arrays") or {}).items():
            if not isinstance(name, str) or not name:
                raise CheckpointError(
                    f"cannot save checkpoint {target}: training_state array names must be "
                    f"non-empty strings; got {name!r}."
                )
            arrays[TRAIN_PREFIX + name] = np.asarray(to_numpy(a))
    for name, a in arrays.items():
        if a.dtype.hasobject:
            raise CheckpointError(
                f"cannot save checkpoint {target}: array {name!r} has dtype object, which would "
                f"need pickling; convert it to a numeric array."
            )

    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": net.config(),
        "xpnet_version": __version__,
        "saved_from_device": net.device.name,
        "training": training_json,
    }
    try:
        text = json.dumps(meta)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"cannot save checkpoint {target}: training_state['json'] is not JSON-serialisable "
            f"({_cause(exc)}); keep plain dicts, lists, strings and numbers there, arrays in "
            f"training_state['arrays']."
        ) from exc
    arrays[META_KEY] = np.array(text)  # a 0-d unicode array, never an object array
    return arrays


def save(net: MLP, path, training_state=None) -> Path:
    """Write ``net`` (and ``training_state``, if given) atomically to the ``.npz`` file ``path``.

    ``training_state`` is ``{"json": dict, "arrays": {name: array}}``; the arrays may live on the
    net's device. The path is used exactly as given (no ``.npz`` is appended). Returns the path.
    Raises :class:`CheckpointError` on any failure, with ``path`` left as it was before.
    """
    target = Path(path)
    tmp = None
    try:
        arrays = _collect(net, training_state, target)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)  # a file object, so savez appends no ".npz" to the name
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates files readable only by their owner
        os.replace(tmp, target)
        tmp = None
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(
            f"could not save checkpoint {target} ({_cause(exc)}); the file there, if any, was left "
            f"unchanged: check that the directory exists, is writable and has free space."
        ) from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    _fsync_dir(target.parent)
    return target


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX; skipped where a directory cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ---------------------------------------------------------------------------------------- load
def _read(npz, name: str, path: Path) -> np.ndarray:
    try:
        return npz[name]
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise CheckpointError(
                f"checkpoint {path} holds an object array {name!r}, which would need unpickling "
                f"and is refused for safety; re-save the network with xpnet.checkpoint.save."
            ) from exc
        raise _corrupt(path, exc) from exc
    except Exception as exc:  # BadZipFile (CRC), zlib.error, EOFError, ... : all "damaged"
        raise _corrupt(path, exc) from exc


def _corrupt(path: Path, exc: BaseException) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {path} is truncated or corrupt ({_cause(exc)}); restore it from a backup "
        f"or re-save it."
    )


def _read_meta(npz, path: Path) -> dict:
    not_ours = "re-save the network with xpnet.checkpoint.save or load the file with numpy.load"
    if META_KEY not in npz.files:
        raise CheckpointError(
            f"{path} is an .npz file but not an xpnet checkpoint (it has no {META_KEY} entry); "
            f"{not_ours}."
        )
    raw = _read(npz, META_KEY, path)
    try:
        if raw.dtype.kind == "U" and raw.size == 1:
            text = str(raw.reshape(())[()])
        elif raw.dtype == np.uint8 and raw.ndim == 1:
            text = raw.tobytes().decode("utf-8")
        else:
            raise ValueError(f"{META_KEY} is a {raw.dtype} array of shape {raw.shape}")
        meta = json.loads(text)
    except ValueError as exc:  # also UnicodeDecodeError and json.JSONDecodeError
        raise _corrupt(path, exc) from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(
            f"{path} is not an xpnet checkpoint (its {META_KEY} says format {found!r}, "
            f"expected {FORMAT!r}); {not_ours}."
        )
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(
            f"checkpoint {path} has an invalid format_version {version!r}; restore it from a "
            f"backup or re-save it."
        )
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} was saved by a newer xpnet (format version {version}, this xpnet "
            f"reads up to {FORMAT_VERSION}); upgrade xpnet to load it."
        )
    config = meta.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("layer_sizes"), list):
        raise CheckpointError(
            f"checkpoint {path} has no valid network config in its {META_KEY}; restore it from a "
            f"backup or re-save it."
        )
    return meta


def _open(path: Path):
    """``np.load(path, allow_pickle=False)`` for a zip file, with plain-language errors."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except FileNotFoundError as exc:
        raise CheckpointError(
            f"checkpoint {path} does not exist; check the path (save one with "
            f"xpnet.checkpoint.save)."
        ) from exc
    except OSError as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path} ({_cause(exc)}); check the path and its permissions."
        ) from exc
    if head not in _ZIP_MAGIC:
        what = "it is empty" if not head else "it does not start like a zip/.npz file"
        raise CheckpointError(
            f"{path} is not an xpnet checkpoint ({what}); pass the .npz written by "
            f"xpnet.checkpoint.save, or restore it from a backup if it was damaged."
        )
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # a cut-off zip loses its central directory: BadZipFile
        raise _corrupt(path, exc) from exc


def load_checkpoint(path, device="auto", expect_layers=None):
    """Load a checkpoint written by :func:`save`.

    Args:
        path: the ``.npz`` file.
        device: where the network goes: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` or a
            :class:`~xpnet.backend.Device`; any device, whichever one saved the file.
        expect_layers: if given, the ``layer_sizes`` the caller needs; a checkpoint of another
            architecture raises :class:`CheckpointError` naming both.

    Returns:
        ``(net, training_state)``: ``training_state`` is ``{"json": dict, "arrays": {name:
        numpy array}}`` (host arrays) or ``None`` when the file holds none.
    """
    path = Path(path)
    with _open(path) as npz:
        meta = _read_meta(npz, path)
        config = meta["config"]
        if expect_layers is not None and list(expect_layers) != config["layer_sizes"]:
            raise CheckpointError(
                f"checkpoint {path} holds a network with layer_sizes {config['layer_sizes']} but "
                f"layer_sizes {list(expect_layers)} were requested; pick a matching checkpoint "
                f"or change the requested layer sizes."
            )
        try:
            shapes = _param_names(config)
        except (TypeError, ValueError) as exc:
            raise _corrupt(path, exc) from exc
        arrays = {}
        for name, shape in shapes.items():
            if name not in npz.files:
                raise CheckpointError(
                    f"checkpoint {path} lacks the array {name!r} that its config needs; the file "
                    f"is incomplete: restore it from a backup or re-save it."
                )
            a = _read(npz, name, path)
            if a.shape != shape or a.dtype.kind not in "fiu":
                raise CheckpointError(
                    f"checkpoint {path} has array {name!r} of shape {a.shape} and dtype {a.dtype} "
                    f"but its config (layer_sizes {config['layer_sizes']}) needs a float array of "
                    f"shape {shape}; the file is inconsistent: restore it from a backup or "
                    f"re-save it."
                )
            arrays[name] = a
        train_arrays = {
            name[len(TRAIN_PREFIX):]: _read(npz, name, path)
            for name in npz.files
            if name.startswith(TRAIN_PREFIX)
        }

    try:
        net = MLP(**config, device=device)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint {path} has an invalid network config ({_cause(exc)}); restore it from a "
            f"backup or re-save it."
        ) from exc
    net.set_params([(arrays[f"W{i}"], arrays[f"b{i}"]) for i in range(net.n_layers)])
    for kind in ("bn_gamma", "bn_running_mean", "bn_running_var"):
        for i, dst in enumerate(getattr(net, kind)):  # in place: optimizers may hold references
            dst[...] = net.device.send(arrays[f"{kind}{i}"], net.dtype)

    training = meta.get("training")
    if training is None and not train_arrays:
        return net, None
    return net, {"json": training if training is not None else {}, "arrays": train_arrays}


def load(path, device="auto", expect_layers=None) -> MLP:
    """Load only the network from a checkpoint; see :func:`load_checkpoint`."""
    return load_checkpoint(path, device=device, expect_layers=expect_layers)[0]


# ------------------------------------------------------------------------- state helpers
def nest_states(**parts) -> dict:
    """Combine several ``{"json", "arrays"}`` states into one training state, each under its
    keyword: JSON at ``json[name]``, arrays as ``name/<array name>``."""
    return {
        "json": {name: part["json"] for name, part in parts.items()},
        "arrays": {f"{name}/{key}": value for name, part in parts.items()
                   for key, value in part["arrays"].items()},
    }


def sub_state(state, name) -> dict:
    """The part of a :func:`nest_states` state stored under ``name``."""
    prefix = name + "/"
    return {"json": state["json"][name],
            "arrays": {k[len(prefix):]: v for k, v in state["arrays"].items()
                       if k.startswith(prefix)}}
