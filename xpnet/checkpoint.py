"""Save and load a network (and optional training state) as one ``.npz`` file.

File format (``format_version`` 2): an uncompressed NumPy ``.npz`` (a zip of ``.npy`` files)
holding only plain numeric and unicode arrays, so it loads with ``allow_pickle=False``:

    __meta__               0-d unicode array: a JSON object with
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
same directory, fsync, rename), so a failed save leaves the previous checkpoint untouched.
Every problem is reported as a :class:`CheckpointError`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from .io import atomic_write
from .network import MLP, Sequential

__all__ = [
    "CheckpointError", "save", "load", "load_checkpoint", "nest_states", "sub_state", "FORMAT",
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

    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": "MLP" if isinstance(net, MLP) else "Sequential",
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


def save(net: Sequential, path, training_state=None) -> Path:
    """Write ``net`` (and ``training_state``, if given) atomically to the ``.npz`` file ``path``.

    ``training_state`` is ``{"json": dict, "arrays": {name: array}}``; the arrays may live on the
    net's device. The path is used exactly as given (no ``.npz`` is appended). Returns the path.
    Raises :class:`CheckpointError` on any failure, with ``path`` left as it was before.
    """
    target = Path(path)
    try:
        arrays = _collect(net, training_state, target)
        with atomic_write(target, "wb") as f:
            np.savez(f, **arrays)  # a file object, so savez appends no ".npz" to the name
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(
            f"could not save checkpoint {target} ({_cause(exc)}); the file there, if any, was left "
            f"unchanged: check that the directory exists, is writable and has free space."
        ) from exc
    return target


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
    architecture = meta.get("architecture", "MLP")
    needs = "layer_sizes" if architecture == "MLP" else "layers"
    if architecture not in _ARCHITECTURES or not isinstance(config, dict) \
            or not isinstance(config.get(needs), list):
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
    """Load a checkpoint written by :func:`save` (format 2, or format 1 of the first release).

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
        except (TypeError, ValueError, KeyError) as exc:
            raise CheckpointError(
                f"checkpoint {path} has an invalid network config ({_cause(exc)}); restore it "
                f"from a backup or re-save it."
            ) from exc
        expected = {name: a.shape for name, a in net.state_dict().items()}
        renames = _v1_names(net) if meta["format_version"] == 1 else {n: n for n in expected}
        arrays = {}
        for stored, name in renames.items():
            if stored not in npz.files:
                raise CheckpointError(
                    f"checkpoint {path} lacks the array {stored!r} that its config needs; the "
                    f"file is incomplete: restore it from a backup or re-save it."
                )
            a = _read(npz, stored, path)
            if a.shape != expected[name] or a.dtype.kind not in "fiu":
                raise CheckpointError(
                    f"checkpoint {path} has array {stored!r} of shape {a.shape} and dtype "
                    f"{a.dtype} but its config needs a float array of shape {expected[name]}; "
                    f"the file is inconsistent: restore it from a backup or re-save it."
                )
            arrays[name] = a
        train_arrays = {
            name[len(TRAIN_PREFIX):]: _read(npz, name, path)
            for name in npz.files
            if name.startswith(TRAIN_PREFIX)
        }

    # Parameters absent from a v1 file (the Linear bias before a batch norm) keep their zeros.
    net.load_state_dict(arrays, strict=meta["format_version"] > 1)
    training = meta.get("training")
    if training is None and not train_arrays:
        return net, None
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
