"""Save and load a network (and optional training state) as one ``.npz`` file.

File format (``format_version`` 2): an uncompressed NumPy ``.npz`` (a zip of ``.npy`` files)
holding only plain numeric and unicode arrays, so it loads with ``allow_pickle=False``:

    __meta__               1-D uint8 array: UTF-8 JSON (older files: a 0-d unicode array), with
                             format            "xpnet-checkpoint"
                             format_version    2
                             architecture      "MLP" or "Sequential"
                             config            the network's config(): MLP's constructor
                                               arguments, or Sequential's layer list
                             xpnet_version     the xpnet that wrote the file
                             saved_from_device e.g. "cpu" or "cuda:0" (informative only)
                             training          the JSON part of the training state, or null
    0.weight, 0.bias, ...  every entry of ``net.state_dict()``, under torch.nn.Sequential's
                           names: parameters and batch-norm running statistics
    train/<name>           the arrays of the training state (optimizer moments, best epoch...)

Format 1 (the first release) named the arrays ``W0, b0, ..., bn_gamma0, bn_running_mean0,
bn_running_var0`` and keyed optimizer state by position; it is still read, and converted to
format-2 names on load (:func:`_upgrade_v1`), so old checkpoints predict and resume as before.

Arrays are stored as host NumPy arrays, so a checkpoint written on a GPU loads on the CPU and
the other way round. Writes go through :func:`xpnet.io.atomic_write` (a temporary file in the
same directory, fsync, rename; only ever onto a regular file), so a failed save leaves the
previous checkpoint untouched. Every problem is reported as a :class:`CheckpointError`.

Reading trusts no size the file declares. Only a regular file is opened (a FIFO is refused,
never waited on). The network's size is computed from its config and capped
(:data:`MAX_NETWORK_BYTES`) before anything is allocated; each member is read through a stream
capped at the bytes its config allows, after its ``.npy`` header (dtype, shape) has been checked
and before any of its data is read; the JSON is capped in size and depth; training arrays are
read only when asked for (``read_state``), within a budget set by the network's size. Saving
refuses what loading would refuse, so every checkpoint xpnet writes can be read back.
"""

from __future__ import annotations

import ast
import json
import math
import re
import zipfile
from pathlib import Path

import numpy as np

from .io import (
    SpecialFileError,
    TrailingBytesError,
    atomic_write,
    open_regular,
    plain_zip_member,
    read_npy_data,
)
from .network import MLP, Sequential

__all__ = [
    "CheckpointError", "save", "load", "load_checkpoint", "meta_text", "nest_states", "sub_state",
    "config_shapes", "network_size",
    "FORMAT",
    "FORMAT_VERSION",
]

FORMAT = "xpnet-checkpoint"
FORMAT_VERSION = 2
META_KEY = "__meta__"
TRAIN_PREFIX = "train/"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members; an empty zip
_ARCHITECTURES = {"MLP": MLP, "Sequential": Sequential}


class CheckpointError(ValueError):
    """A checkpoint could not be written or read; the message names the file and the fix."""


def _cause(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


# ---------------------------------------------------------------------------------------- save
def _collect(net: Sequential, training_state, target: Path) -> dict[str, np.ndarray]:
    """Everything that goes into the file, as host arrays keyed by their names in the file."""
    from . import __version__  # noqa: PLC0415  (late: xpnet/__init__ may import this module)

    to_numpy = net.device.to_numpy
    arrays: dict[str, np.ndarray] = net.state_dict()

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
        if name.startswith(TRAIN_PREFIX) and (a.dtype.kind not in _TRAIN_KINDS
                                              or a.dtype.names is not None):
            raise CheckpointError(
                f"cannot save checkpoint {target}: array {name!r} has dtype {a.dtype}; "
                f"training_state arrays must be numeric, boolean or string arrays."
            )
    architecture = "MLP" if isinstance(net, MLP) else "Sequential"
    n_elements = sum(a.size for name, a in arrays.items() if not name.startswith(TRAIN_PREFIX))
    net_bytes = sum(a.nbytes for name, a in arrays.items() if not name.startswith(TRAIN_PREFIX))
    if net_bytes > MAX_NETWORK_BYTES:
        raise CheckpointError(
            f"cannot save checkpoint {target}: the network holds {net_bytes} bytes, more than "
            f"the {MAX_NETWORK_BYTES} a checkpoint may hold (so that loading one can be bounded)."
        )
    train_bytes = sum(a.nbytes for name, a in arrays.items() if name.startswith(TRAIN_PREFIX))
    if train_bytes > _train_budget(n_elements):
        raise CheckpointError(
            f"cannot save checkpoint {target}: the training_state arrays hold {train_bytes} "
            f"bytes, more than the {_train_budget(n_elements)} a checkpoint of this network may "
            f"hold (four float64 copies of the network plus 64 MiB); keep large data elsewhere."
        )
    if training_json is not None and _json_too_deep(training_json, MAX_JSON_DEPTH - 2):
        raise CheckpointError(
            f"cannot save checkpoint {target}: training_state['json'] is nested more than "
            f"{MAX_JSON_DEPTH - 2} levels deep."
        )

    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": architecture,
        "config": net.config(),
        "xpnet_version": __version__,
        "saved_from_device": net.device.name,
        "training": training_json,
    }
    try:
        text = json.dumps(meta)
    except (TypeError, ValueError, RecursionError) as exc:
        raise CheckpointError(
            f"cannot save checkpoint {target}: training_state['json'] is not JSON-serialisable "
            f"({_cause(exc)}); keep plain dicts, lists, strings and numbers there, arrays in "
            f"training_state['arrays']."
        ) from exc
    encoded = text.encode("utf-8")
    if len(encoded) > MAX_META_BYTES:
        raise CheckpointError(
            f"cannot save checkpoint {target}: its JSON part would take {len(encoded)} bytes, "
            f"more than the {MAX_META_BYTES} a checkpoint may hold; keep training_state['json'] "
            f"small and put arrays in training_state['arrays']."
        )
    # UTF-8 bytes, read back under the same MAX_META_BYTES: a 0-d unicode array (format 2's
    # first files, still read) takes 4 bytes a character and met the per-item cap first.
    arrays[META_KEY] = np.frombuffer(encoded, dtype=np.uint8)
    return arrays


def save(net: Sequential, path, training_state=None) -> Path:
    """Write ``net`` (and ``training_state``, if given) atomically to the ``.npz`` file ``path``.

    ``training_state`` is ``{"json": dict, "arrays": {name: array}}``; the arrays may live on the
    net's device. The path is used exactly as given (no ``.npz`` is appended). Returns the path.
    Raises :class:`CheckpointError` on any failure, with ``path`` left as it was before.

    The file holds the network's config as JSON and its ``state_dict()`` arrays under their
    names; it is read without pickle (:func:`xpnet.load`). An :class:`xpnet.Model` is saved
    with its record (schema, target, scaler) by its own ``save``.

    Args:
        net: a :class:`~xpnet.Sequential` or :class:`~xpnet.MLP` (or an :class:`xpnet.Model`).
        path: the file to write; missing parent folders are created.
        training_state: optional optimizer and loop state, for an exact resume.

    Returns:
        The :class:`~pathlib.Path` written.

    Raises:
        CheckpointError: the network is too large to save, or writing failed (disk full, no
            permission); an existing file at ``path`` is left untouched.
    """
    if not isinstance(net, Sequential) and callable(getattr(net, "save", None)) \
            and hasattr(net, "inputs"):
        return net.save(path, training_state)  # an xpnet.Model saves its record with the net
    target = Path(path)
    try:
        arrays = _collect(net, training_state, target)
        with atomic_write(target, "wb") as f:
            np.savez(f, **arrays)  # a file object, so savez appends no ".npz" to the name
    except CheckpointError:
        raise
    except SpecialFileError as exc:
        raise CheckpointError(
            f"cannot save checkpoint {target}: it is {exc.kind}, not a regular file, and "
            f"checkpoints are written only to regular files (atomically); choose a file name."
        ) from exc
    except Exception as exc:
        raise CheckpointError(
            f"could not save checkpoint {target} ({_cause(exc)}); the file there, if any, was left "
            f"unchanged: check that the directory exists, is writable and has free space."
        ) from exc
    return target


# ---------------------------------------------------------------------------------------- load
# Nothing a file declares is trusted for a size. The network's size comes from its config and is
# capped (MAX_NETWORK_BYTES) before anything is allocated; each array member is read through a
# stream capped at the byte count its config allows, its .npy header (dtype, shape) is checked
# before any data is read, and nothing is read that the caller did not ask for.
MAX_NETWORK_BYTES = 2**31  # parameters and buffers of a network a checkpoint may hold
MAX_META_BYTES = 64 << 20  # the JSON in __meta__ (config, run state, history)
MAX_JSON_DEPTH = 64  # nesting of that JSON (xpnet writes 4 levels)
MAX_LAYERS = 10_000
_TRAIN_SLACK = 64 << 20  # training arrays may hold 4 copies of the network's state + this much
_NPY_HEADER_MAX = 1 << 14  # numpy writes headers of about 128 bytes
_NPY_MAGIC = b"\x93NUMPY"
_TRAIN_KINDS = "biufcSUmM"  # what training_state arrays may be: never object or void/structured
_NET_KINDS = "fiu"
_TRAIN_SHAPED = re.compile(r"(?:^|/)(?:opt/[^/]+|best)/(?P<name>[^/]+)$")


def _corrupt(path: Path, exc: BaseException | str) -> CheckpointError:
    why = exc if isinstance(exc, str) else _cause(exc)
    return CheckpointError(
        f"checkpoint {path} is truncated or corrupt ({why}); restore it from a backup "
        f"or re-save it."
    )


def _int_list(values, limit):
    """``values`` as a list of ints >= 1, or None when it is anything else (the constructor
    then reports it)."""
    if not isinstance(values, list) or len(values) > limit:
        return None
    if not all(type(v) is int and v >= 1 for v in values):
        return None
    return values


def config_shapes(architecture: str, config):
    """``(shapes, free)`` of the network ``config`` describes, from the config alone (nothing
    is built): ``shapes`` maps each state-dict name of its Linear and BatchNorm1d layers to its
    shape, in the layer order MLP and Sequential build; ``free`` holds the indices of the other
    layers that may have state of their own (a registered layer's, checked when it is built).
    None when the config is malformed (building the network then reports what is wrong)."""
    if not isinstance(config, dict):
        return None
    if architecture == "MLP":
        sizes = _int_list(config.get("layer_sizes"), MAX_LAYERS + 1)
        if sizes is None or len(sizes) < 2:
            return None
        kinds = []
        for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):  # as MLP builds a hidden block
            kinds.append(("Linear", (n_in, n_out)))
            if config.get("batch_norm") is True:
                kinds.append(("BatchNorm1d", (n_out,)))
            kinds.append(("activation", None))
            if config.get("dropout"):
                kinds.append(("Dropout", None))
        kinds.append(("Linear", (sizes[-2], sizes[-1])))
    else:
        layers = config.get("layers")
        if not isinstance(layers, list) or len(layers) > MAX_LAYERS * 4:
            return None
        kinds = []
        for spec in layers:
            if not isinstance(spec, dict):
                return None
            kind = spec.get("type")
            if kind == "Linear":
                dims = _int_list([spec.get("in_features"), spec.get("out_features")], 2)
            elif kind == "BatchNorm1d":
                dims = _int_list([spec.get("num_features")], 1)
            else:
                kinds.append((str(kind), None))
                continue
            if dims is None:
                return None
            kinds.append((kind, tuple(dims)))
    shapes, free = {}, set()
    for i, (kind, dims) in enumerate(kinds):
        if kind == "Linear":
            shapes[f"{i}.weight"], shapes[f"{i}.bias"] = (dims[1], dims[0]), (dims[1],)
        elif kind == "BatchNorm1d":
            for key in ("weight", "bias", "running_mean", "running_var"):
                shapes[f"{i}.{key}"] = dims
        else:
            free.add(i)
    return shapes, free


def network_size(architecture: str, config) -> int | None:
    """The number of parameter and buffer elements the network described by ``config`` holds,
    computed from the config alone (nothing is allocated); None when the config is malformed
    (building the network then reports what is wrong)."""
    described = config_shapes(architecture, config)
    if described is None:
        return None
    return sum(math.prod(shape) for shape in described[0].values())


def _network_bytes(architecture, config) -> int | None:
    n = network_size(architecture, config)
    if n is None:
        return None
    return n * (8 if isinstance(config, dict) and config.get("dtype") == "float64" else 4)


def _train_budget(n_elements: int) -> int:
    """The most bytes a checkpoint's training arrays may hold in all: optimizer moments and
    best-epoch snapshots (four float64 copies of the network at most) plus some room."""
    return 4 * 8 * n_elements + _TRAIN_SLACK


def _json_too_deep(obj, limit: int = MAX_JSON_DEPTH) -> bool:
    stack = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            values = item.values() if isinstance(item, dict) else item
            stack.extend((v, depth + 1) for v in values)
    return False


def _read_exact(f, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise EOFError(f"{n - len(data)} bytes missing")
    return data


def _npy_header(f):
    """``(shape, fortran_order, dtype, header_bytes)`` of the .npy stream ``f``, positioned at
    its data afterwards; ValueError for anything that is not a well-formed .npy header."""
    magic = _read_exact(f, 8)
    if magic[:6] != _NPY_MAGIC:
        raise ValueError("not a .npy array")
    major = magic[6]
    if major not in (1, 2, 3):
        raise ValueError(f".npy format version {major}.{magic[7]} is unknown")
    size_len = 2 if major == 1 else 4
    header_len = int.from_bytes(_read_exact(f, size_len), "little")
    if header_len > _NPY_HEADER_MAX:
        raise ValueError(f".npy header of {header_len} bytes")
    text = _read_exact(f, header_len).decode("utf-8" if major == 3 else "latin1")
    try:
        d = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise ValueError(f"unreadable .npy header ({type(exc).__name__})") from None
    if not isinstance(d, dict) or set(d) != {"descr", "fortran_order", "shape"}:
        raise ValueError("malformed .npy header")
    shape, fortran = d["shape"], d["fortran_order"]
    if not isinstance(shape, tuple) or len(shape) > 32 \
            or not all(type(n) is int and n >= 0 for n in shape) or type(fortran) is not bool:
        raise ValueError("malformed .npy header")
    try:
        dtype = np.lib.format.descr_to_dtype(d["descr"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad dtype in .npy header ({exc})") from None
    return shape, fortran, dtype, 8 + size_len + header_len


class _Archive:
    """The members of a checkpoint zip, read one by one with every size checked first."""

    def __init__(self, zf: zipfile.ZipFile, path: Path):
        self.zf, self.path = zf, path
        self.members: dict[str, zipfile.ZipInfo] = {}
        for info in zf.infolist():
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            self.members[key] = info

    @property
    def names(self):
        return list(self.members)

    def read(self, name: str, kinds: str, limit: int, shape=None, what="") -> np.ndarray:
        """Member ``name`` as an array of a dtype kind in ``kinds``, of ``shape`` when given,
        holding at most ``limit`` data bytes; CheckpointError before any data is read when its
        declared sizes, dtype or shape do not fit."""
        path, info = self.path, self.members[name]
        if not info.filename.endswith(".npy"):
            raise CheckpointError(
                f"checkpoint {path} has an entry {name!r} that is not a NumPy array (.npy); "
                f"the file is damaged or not an xpnet checkpoint: restore it from a backup or "
                f"re-save it."
            )
        if not plain_zip_member(info):
            raise _corrupt(path, f"entry {name!r} is encrypted or compressed with an "
                                 f"unsupported method")
        if info.file_size > limit + _NPY_HEADER_MAX:
            raise CheckpointError(
                f"checkpoint {path} has an entry {name!r} of {info.file_size} bytes, more than "
                f"the {limit} {what or 'it may hold'}; the file is damaged or crafted: restore "
                f"it from a backup or re-save it."
            )
        try:
            with self.zf.open(info) as f:
                shape_, fortran, dtype, header_bytes = _npy_header(f)
                self._check(name, shape_, dtype, kinds, shape)
                nbytes = math.prod(shape_) * dtype.itemsize
                if nbytes > limit:
                    raise CheckpointError(
                        f"checkpoint {path} has an array {name!r} of shape {shape_} and dtype "
                        f"{dtype}: {nbytes} bytes, more than the {limit} "
                        f"{what or 'it may hold'}; the file is damaged or crafted: restore it "
                        f"from a backup or re-save it."
                    )
                if info.file_size != header_bytes + nbytes:
                    raise _corrupt(path, f"entry {name!r} holds {info.file_size - header_bytes} "
                                         f"data bytes where its header promises {nbytes}")
                return read_npy_data(f, shape_, fortran, dtype)
        except CheckpointError:
            raise
        except TrailingBytesError:
            raise _corrupt(path, f"entry {name!r} is longer than its header says") from None
        except Exception as exc:  # BadZipFile (CRC), zlib.error, EOFError, ValueError, ...
            raise _corrupt(path, exc) from exc

    def _check(self, name, shape, dtype, kinds, expected_shape):
        path = self.path
        if dtype.hasobject:
            raise CheckpointError(
                f"checkpoint {path} holds an object array {name!r}, which would need "
                f"unpickling and is refused for safety; re-save the network with "
                f"xpnet.checkpoint.save."
            )
        if dtype.kind not in kinds or dtype.names is not None or dtype.subdtype is not None \
                or dtype.itemsize > (8 if kinds == _NET_KINDS else 1 << 20):
            if kinds == _NET_KINDS:
                raise self._net_mismatch(name, shape, dtype, expected_shape)
            raise CheckpointError(
                f"checkpoint {path} has an array {name!r} of dtype {dtype}, which xpnet does "
                f"not store; restore it from a backup or re-save it."
            )
        if expected_shape is not None and tuple(shape) != tuple(expected_shape):
            if kinds == _NET_KINDS:
                raise self._net_mismatch(name, shape, dtype, expected_shape)
            raise CheckpointError(
                f"checkpoint {path} has a run-state array {name!r} of shape {shape} but the "
                f"network needs {tuple(expected_shape)}; the file is inconsistent: restore it "
                f"from a backup or re-save it."
            )

    def _net_mismatch(self, name, shape, dtype, expected):
        return CheckpointError(
            f"checkpoint {self.path} has array {name!r} of shape {shape} and dtype {dtype} but "
            f"its config needs a float array of shape {tuple(expected)}; the file is "
            f"inconsistent: restore it from a backup or re-save it."
        )


def meta_text(raw: np.ndarray) -> str:
    """The JSON text of a ``__meta__`` array: UTF-8 bytes (1-D uint8), or a one-element
    unicode array (the first format-2 files); ValueError for anything else."""
    if raw.dtype.kind == "U" and raw.size == 1:
        return str(raw.reshape(())[()])
    if raw.dtype == np.uint8 and raw.ndim == 1:
        return raw.tobytes().decode("utf-8")
    raise ValueError(f"{META_KEY} is a {raw.dtype} array of shape {raw.shape}")


def _read_meta(archive: _Archive, path: Path) -> dict:
    not_ours = "re-save the network with xpnet.checkpoint.save or load the file with numpy.load"
    if META_KEY not in archive.members:
        raise CheckpointError(
            f"{path} is an .npz file but not an xpnet checkpoint (it has no {META_KEY} entry); "
            f"{not_ours}."
        )
    raw = archive.read(META_KEY, _TRAIN_KINDS, MAX_META_BYTES,
                       what="bytes of JSON a checkpoint may describe itself with")
    try:
        meta = json.loads(meta_text(raw))
    except RecursionError as exc:
        raise _corrupt(path, f"its {META_KEY} JSON is nested too deeply") from exc
    except ValueError as exc:  # also UnicodeDecodeError and json.JSONDecodeError
        raise _corrupt(path, exc) from exc
    if _json_too_deep(meta):
        raise _corrupt(path, f"its {META_KEY} JSON is nested more than {MAX_JSON_DEPTH} deep")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(
            f"{path} is not an xpnet checkpoint (its {META_KEY} says format {found!r:.60}, "
            f"expected {FORMAT!r}); {not_ours}."
        )
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(
            f"checkpoint {path} has an invalid format_version {version!r:.40}; restore it from "
            f"a backup or re-save it."
        )
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} was saved by a newer xpnet (format version {version}, this "
            f"xpnet reads up to {FORMAT_VERSION}); upgrade xpnet to load it."
        )
    config = meta.get("config")
    architecture = meta.get("architecture", "MLP")
    needs = "layer_sizes" if architecture == "MLP" else "layers"
    if architecture not in _ARCHITECTURES or not isinstance(config, dict) \
            or not isinstance(config.get(needs), list):
        raise CheckpointError(
            f"checkpoint {path} has no valid network config in its {META_KEY}; restore it from a "
            f"backup or re-save it."
        )
    nbytes = _network_bytes(architecture, config)
    if nbytes is not None and nbytes > MAX_NETWORK_BYTES:
        raise CheckpointError(
            f"checkpoint {path} describes a network of {network_size(architecture, config)} "
            f"parameters ({nbytes} bytes), more than the {MAX_NETWORK_BYTES} bytes a checkpoint "
            f"may hold; the file is damaged or crafted: restore it from a backup."
        )
    return meta


def _open(path: Path):
    """The checkpoint file, opened for reading, with plain-language errors. Only a regular file
    is opened (a FIFO would block, a device never end)."""
    try:
        f = open_regular(path)
    except FileNotFoundError as exc:
        raise CheckpointError(
            f"checkpoint {path} does not exist; check the path (one is written by "
            f"python -m xpnet.train --save PATH, or xpnet.save(net, PATH) in Python)."
        ) from exc
    except SpecialFileError as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path}: it is {exc.kind}, not a regular file; pass the .npz "
            f"file written by xpnet.checkpoint.save."
        ) from exc
    except OSError as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path} ({_cause(exc)}); check the path and its permissions."
        ) from exc
    return f


def _zip(f, path: Path) -> zipfile.ZipFile:
    """The opened checkpoint file as a zip archive (which leaves closing ``f`` to the caller)."""
    try:
        head = f.read(4)
        f.seek(0)
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
        return zipfile.ZipFile(f)
    except Exception as exc:  # a cut-off zip loses its central directory: BadZipFile
        raise _corrupt(path, exc) from exc


def _wanted(name: str, read_state) -> bool:
    if read_state is True:
        return True
    if read_state is False or read_state is None:
        return False
    return any(name.startswith(prefix) for prefix in read_state)


def load_checkpoint(path, device="auto", expect_layers=None, *, read_state=True):
    """Load a checkpoint written by :func:`save` (format 2, or format 1 of the first release).

    Args:
        path: the ``.npz`` file (a regular file; anything else is refused without blocking).
        device: where the network goes: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` or a
            :class:`~xpnet.backend.Device`; any device, whichever one saved the file.
        expect_layers: if given, the ``layer_sizes`` the caller needs; a checkpoint of another
            architecture raises :class:`CheckpointError` naming both.
        read_state: which training-state arrays to read: all (``True``), none (``False``: only
            the network is read, and ``None`` is returned for the state), or those whose names
            start with one of the given prefixes (e.g. ``("scaler/",)``); the JSON part of the
            state is always returned unless ``read_state`` is ``False``.

    Returns:
        ``(net, training_state)``: ``training_state`` is ``{"json": dict, "arrays": {name:
        numpy array}}`` (host arrays) or ``None`` when the file holds none.

    Bounds: the network may hold at most :data:`MAX_NETWORK_BYTES` (checked from its config
    before anything is allocated), the JSON at most :data:`MAX_META_BYTES`, nested at most
    :data:`MAX_JSON_DEPTH` deep, and the training arrays four float64 copies of the network plus
    64 MiB; every member is read through a stream capped at what its config allows, after its
    ``.npy`` header (dtype and shape) has been checked.
    """
    path = Path(path)
    with _open(path) as f, _zip(f, path) as zf:
        archive = _Archive(zf, path)
        meta = _read_meta(archive, path)
        config = meta["config"]
        architecture = meta.get("architecture", "MLP")
        sizes = config.get("layer_sizes")
        if expect_layers is not None and sizes is None:
            raise CheckpointError(
                f"checkpoint {path} holds a {architecture} network, not an MLP with "
                f"layer_sizes {list(expect_layers)}; pick an MLP checkpoint."
            )
        if expect_layers is not None and list(expect_layers) != sizes:
            raise CheckpointError(
                f"checkpoint {path} holds a network with layer_sizes {sizes} but "
                f"layer_sizes {list(expect_layers)} were requested; pick a matching checkpoint "
                f"or change the requested layer sizes."
            )
        try:
            cls = _ARCHITECTURES[architecture]
            net = MLP(**config, device=device) if cls is MLP else \
                Sequential.from_config(config, device=device)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise CheckpointError(
                f"checkpoint {path} has an invalid network config ({_cause(exc)}); restore it "
                f"from a backup or re-save it."
            ) from exc
        expected = {name: a.shape for name, a in net.state_dict().items()}
        n_elements = sum(math.prod(shape) for shape in expected.values())
        renames = _v1_names(net) if meta["format_version"] == 1 else {n: n for n in expected}
        arrays = {}
        for stored, name in renames.items():
            if stored not in archive.members:
                raise CheckpointError(
                    f"checkpoint {path} lacks the array {stored!r} that its config needs; the "
                    f"file is incomplete: restore it from a backup or re-save it."
                )
            shape = expected[name]
            arrays[name] = archive.read(stored, _NET_KINDS, 8 * math.prod(shape), shape=shape)

        train_arrays = {}
        if read_state is not False and read_state is not None:
            wanted = [key for key in archive.names if key.startswith(TRAIN_PREFIX)
                      and _wanted(key[len(TRAIN_PREFIX):], read_state)]
            budget = _train_budget(n_elements)
            declared = sum(archive.members[key].file_size for key in wanted)
            if declared > budget + len(wanted) * _NPY_HEADER_MAX:
                raise CheckpointError(
                    f"checkpoint {path} declares {declared} bytes of run-state arrays, more "
                    f"than the {budget} a network of {n_elements} values may need; the file is "
                    f"damaged or crafted: restore it from a backup or re-save it."
                )
            for key in wanted:
                name = key[len(TRAIN_PREFIX):]
                m = _TRAIN_SHAPED.search(name) if meta["format_version"] > 1 else None
                shape = expected.get(m["name"]) if m else None
                train_arrays[name] = archive.read(key, _TRAIN_KINDS, budget, shape=shape,
                                                  what="bytes the run state may hold")
                budget -= train_arrays[name].nbytes

    # Parameters absent from a v1 file (the Linear bias before a batch norm) keep their zeros.
    net.load_state_dict(arrays, strict=meta["format_version"] > 1)
    if read_state is False or read_state is None:
        return net, None
    training = meta.get("training")
    if training is None and not train_arrays:
        return net, None
    if training is not None and not isinstance(training, dict):
        raise CheckpointError(
            f"checkpoint {path} has run state that is not a JSON object; restore it from a "
            f"backup or re-save it."
        )
    state = {"json": training if training is not None else {}, "arrays": train_arrays}
    if meta["format_version"] == 1:
        _upgrade_v1(net, state)
    return net, state


# ------------------------------------------------------------------------- format 1
def _v1_names(net) -> dict[str, str]:
    """Format-1 array names of an MLP mapped to their format-2 (state-dict) names. In format 1
    the Linear bias of a batch-normalised layer served as the batch norm's beta."""
    index = {id(layer): i for i, layer in enumerate(net.layers)}
    names = {}
    for l, lin in enumerate(net.linears):
        i = index[id(lin)]
        names[f"W{l}"] = f"{i}.weight"
        hidden = l < net.n_layers - 1
        if net.batch_norm and hidden:
            names[f"b{l}"] = f"{i + 1}.bias"
            names[f"bn_gamma{l}"] = f"{i + 1}.weight"
            names[f"bn_running_mean{l}"] = f"{i + 1}.running_mean"
            names[f"bn_running_var{l}"] = f"{i + 1}.running_var"
        else:
            names[f"b{l}"] = f"{i}.bias"
    return names


def _v1_order(net) -> list[str]:
    """Format-2 names in format 1's positional order: ``W0, b0, W1, b1, ..., gamma0, ...``
    for parameters, then running means, then running variances (the trainer's ``best/i``)."""
    v1 = _v1_names(net)
    L, hidden = net.n_layers, range(net.n_layers - 1) if net.batch_norm else range(0)
    order = [v1[f"{p}{l}"] for l in range(L) for p in ("W", "b")]
    order += [v1[f"bn_gamma{l}"] for l in hidden]
    order += [v1[f"bn_running_mean{l}"] for l in hidden]
    return order + [v1[f"bn_running_var{l}"] for l in hidden]


_V1_OPT = re.compile(r"^(?P<prefix>(?:.*/)?opt/)(?P<state>[a-z_]+?)(?P<i>\d+)$")
_V1_BEST = re.compile(r"^(?P<prefix>(?:.*/)?best/)(?P<i>\d+)$")


def _upgrade_v1(net, state) -> None:
    """Rename a format-1 trainer state's positional arrays (``opt/m3``, ``best/7``) to format
    2's names (``opt/m/2.weight``, ``best/2.weight``) in place, zero-filling what format 1 did
    not have (moments of the Linear bias before a batch norm), and mark it format 2."""
    order = _v1_order(net)
    shapes = {name: a.shape for name, a in net.state_dict().items()}
    arrays, renamed, prefixes = state["arrays"], {}, set()
    for key, value in arrays.items():
        opt, best = _V1_OPT.match(key), _V1_BEST.match(key)
        if opt and int(opt["i"]) < len(order):
            renamed[f"{opt['prefix']}{opt['state']}/{order[int(opt['i'])]}"] = value
            prefixes.add((opt["prefix"], opt["state"]))
        elif best and int(best["i"]) < len(order):
            renamed[f"{best['prefix']}{order[int(best['i'])]}"] = value
            prefixes.add((best["prefix"], None))
        else:
            renamed[key] = value
    params = [name for name, _ in net.named_parameters()]
    for prefix, kind in prefixes:
        for name in params if kind else shapes:
            key = f"{prefix}{kind}/{name}" if kind else f"{prefix}{name}"
            renamed.setdefault(key, np.zeros(shapes[name]))
    state["arrays"] = renamed
    for part in [state["json"], *state["json"].values()]:
        if isinstance(part, dict) and isinstance(part.get("trainer"), dict) \
                and part["trainer"].get("format") == 1:
            part["trainer"]["format"] = 2


def load(path, device="auto", expect_layers=None) -> Sequential:
    """Load only the network from a checkpoint (no training-state array is read); see
    :func:`load_checkpoint`."""
    return load_checkpoint(path, device=device, expect_layers=expect_layers,
                           read_state=False)[0]


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
