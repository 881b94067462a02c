"""Named parameters that live in one flat buffer, with their gradients in a second one.

A network's parameters are views into one contiguous 1-D device array ``data``; their
gradients are views, laid out the same way, into ``grad``:

    data = [ 0.weight (n1*n0) | 0.bias (n1) | 3.weight (n2*n1) | 3.bias (n2) | ... ]
    grad = [ d0.weight        | d0.bias     | d3.weight        | d3.bias     | ... ]

So an optimizer updates every parameter with a few whole-buffer ufunc calls (instead of a few
calls per array), and a data-parallel all-reduce of the gradients is a single call. The names
are the ones ``torch.nn.Sequential`` gives the same stack, so they are also the keys of
``state_dict()``, of checkpoints and of optimizer state.

Views stay valid for the life of the buffer: write into them in place (``p[...] = new``),
never rebind them.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["FlatParameters", "check_state_array"]


def check_state_array(label, array, shape) -> None:
    """Raise ``ValueError`` unless ``array`` is a numeric array of exactly ``shape``: a saved
    state array is copied in with ``dst[...] = array``, which would broadcast a scalar or a
    ``(1,)`` array over the whole destination without complaint."""
    got, dtype = getattr(array, "shape", None), getattr(array, "dtype", None)
    if got is None or dtype is None:
        raise ValueError(f"{label} is a {type(array).__name__}, not an array; the saved state is "
                         f"damaged, so start the run afresh or use another checkpoint")
    if tuple(got) != tuple(shape):
        raise ValueError(f"{label} has shape {tuple(got)} but needs {tuple(shape)}; the saved "
                         f"state is damaged or belongs to another network")
    try:
        kind = np.dtype(dtype).kind
    except TypeError:
        kind = "O"
    if kind not in "biuf":
        raise ValueError(f"{label} must hold numbers, not dtype {dtype}; the saved state is "
                         f"damaged, so start the run afresh or use another checkpoint")


class FlatParameters:
    """Named arrays of the given shapes, views into ``data``; gradients the same into ``grad``.

    Args:
        shapes: ``{name: shape}`` in buffer order.
        xp: the array module (``numpy`` or ``cupy``) that allocates the buffers.
        dtype: the buffers' dtype.
        no_decay: names that weight decay should leave alone when asked to (biases and
            normalisation parameters; ``AdamW(..., decay_all=False)`` reads it).

    Attributes:
        data, grad: the flat 1-D buffers, ``(size,)``, zero-filled.
        params, grads: ``{name: view}`` of ``data`` and ``grad`` with each name's shape.
        names: the names in buffer order.
        slices: ``{name: slice}`` of each name in the flat buffers.
    """

    def __init__(self, shapes, xp, dtype, no_decay=()):
        self.xp = xp
        self.dtype = np.dtype(dtype)
        self.shapes = {name: tuple(int(n) for n in shape) for name, shape in shapes.items()}
        self.slices = {}
        start = 0
        for name, shape in self.shapes.items():
            stop = start + math.prod(shape)
            self.slices[name] = slice(start, stop)
            start = stop
        self.size = start
        self.no_decay = frozenset(no_decay)
        unknown = self.no_decay - set(self.shapes)
        if unknown:
            raise ValueError(f"no_decay names {sorted(unknown)} are not parameters")
        self.data = xp.zeros(self.size, dtype=self.dtype)
        self.grad = xp.zeros(self.size, dtype=self.dtype)
        self.params = self.views(self.data)
        self.grads = self.views(self.grad)

    @classmethod
    def from_arrays(cls, arrays, xp=None, dtype=None, no_decay=()):
        """A buffer holding copies of ``arrays`` (``{name: array}`` or ``[array, ...]``, which
        are named ``"0"``, ``"1"``, ...). ``xp`` and ``dtype`` default to the first array's."""
        if not isinstance(arrays, dict):
            arrays = {str(i): a for i, a in enumerate(arrays)}
        if not arrays:
            raise ValueError("FlatParameters needs at least one array")
        first = next(iter(arrays.values()))
        if xp is None:
            import sys  # noqa: PLC0415  (numpy or cupy, whichever made the array)

            xp = sys.modules[type(first).__module__.partition(".")[0]]
        flat = cls({k: a.shape for k, a in arrays.items()}, xp, dtype or first.dtype, no_decay)
        for name, a in arrays.items():
            flat.params[name][...] = a
        return flat

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.shapes)

    def views(self, flat) -> dict:
        """``{name: view}`` of any flat array laid out like ``data`` (e.g. optimizer state)."""
        return {name: flat[s].reshape(self.shapes[name]) for name, s in self.slices.items()}

    def zeros(self):
        """A new zero-filled flat array laid out like ``data``, on the same device."""
        return self.xp.zeros(self.size, dtype=self.dtype)

    def __len__(self) -> int:
        return len(self.shapes)

    def __repr__(self) -> str:
        return f"FlatParameters({len(self)} arrays, {self.size} values, {self.dtype.name})"
