"""FlatParameters (xpnet/parameters.py): named views into one flat buffer, gradients the same in a
second one. Layout and order, memory sharing, from_arrays, no_decay validation."""

from __future__ import annotations

import numpy as np
import pytest

from xpnet.optimizers import make_optimizer
from xpnet.parameters import FlatParameters

SHAPES = {"0.weight": (3, 4), "0.bias": (3,), "1.weight": (3,), "3.weight": (2, 3),
          "3.bias": (2,)}


def test_layout_follows_the_given_order():
    flat = FlatParameters(SHAPES, np, "float64")
    assert flat.names == tuple(SHAPES) and len(flat) == 5
    assert flat.size == 12 + 3 + 3 + 6 + 2 == flat.data.size == flat.grad.size
    assert flat.slices == {"0.weight": slice(0, 12), "0.bias": slice(12, 15),
                           "1.weight": slice(15, 18), "3.weight": slice(18, 24),
                           "3.bias": slice(24, 26)}
    assert list(flat.params) == list(flat.grads) == list(SHAPES)
    for name, shape in SHAPES.items():
        assert flat.params[name].shape == flat.grads[name].shape == shape
    assert flat.data.shape == flat.grad.shape == (26,)
    assert flat.data.dtype == flat.grad.dtype == np.float64
    assert not flat.data.any() and not flat.grad.any()  # zero-filled
    assert flat.no_decay == frozenset()
    assert repr(flat) == "FlatParameters(5 arrays, 26 values, float64)"


def test_shapes_are_normalised_to_int_tuples():
    flat = FlatParameters({"a": [2, np.int64(3)], "b": (np.int32(4),), "c": ()}, np, "float32")
    assert flat.shapes == {"a": (2, 3), "b": (4,), "c": ()}
    assert all(type(n) is int for shape in flat.shapes.values() for n in shape)
    assert flat.size == 6 + 4 + 1 and flat.params["c"].shape == ()  # a scalar takes one slot
    assert flat.data.dtype == np.float32


def test_views_share_memory_with_the_flat_buffers():
    flat = FlatParameters(SHAPES, np, "float64")
    for name in SHAPES:
        p, g = flat.params[name], flat.grads[name]
        assert np.shares_memory(p, flat.data) and np.shares_memory(g, flat.grad)
        assert not np.shares_memory(p, flat.grad) and not np.shares_memory(g, flat.data)
    # writing a view writes its slice of the buffer, and nothing else
    flat.params["1.weight"][...] = [1.0, 2.0, 3.0]
    np.testing.assert_array_equal(flat.data[15:18], [1.0, 2.0, 3.0])
    assert flat.data[:15].sum() == 0 and flat.data[18:].sum() == 0
    # writing the buffer is seen by every view; row-major (C) order inside each array
    flat.data[...] = np.arange(flat.size)
    np.testing.assert_array_equal(flat.params["0.weight"], np.arange(12).reshape(3, 4))
    np.testing.assert_array_equal(flat.params["3.weight"], np.arange(18, 24).reshape(2, 3))
    flat.grad += 1
    assert all((g == 1).all() for g in flat.grads.values())
    # the views are disjoint and cover the buffer exactly
    cover = np.zeros(flat.size, dtype=int)
    for s in flat.slices.values():
        cover[s] += 1
    assert (cover == 1).all()


def test_views_of_other_flat_arrays_and_zeros():
    flat = FlatParameters(SHAPES, np, "float32")
    state = flat.zeros()
    assert state.shape == (flat.size,) and state.dtype == np.float32 and not state.any()
    assert not np.shares_memory(state, flat.data)
    views = flat.views(state)
    assert list(views) == list(SHAPES)
    for name, v in views.items():
        assert v.shape == SHAPES[name] and np.shares_memory(v, state)
    views["3.bias"][...] = 5
    np.testing.assert_array_equal(state[24:26], 5)


def test_from_arrays_copies_named_arrays():
    rng = np.random.default_rng(0)
    arrays = {"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(3)}
    flat = FlatParameters.from_arrays(arrays, no_decay=("b",))
    assert flat.xp is np and flat.dtype == np.float64 and flat.names == ("w", "b")
    assert flat.no_decay == frozenset({"b"})
    for name, a in arrays.items():
        np.testing.assert_array_equal(flat.params[name], a)
        assert not np.shares_memory(flat.params[name], a)  # a copy
    np.testing.assert_array_equal(flat.data, np.concatenate([arrays["w"].ravel(), arrays["b"]]))
    arrays["w"][...] = 0
    assert flat.params["w"].any()


def test_from_arrays_list_names_and_dtype():
    a, b = np.ones((2, 2), dtype=np.float32), np.arange(3, dtype=np.float32)
    flat = FlatParameters.from_arrays([a, b])
    assert flat.names == ("0", "1") and flat.dtype == np.float32
    flat64 = FlatParameters.from_arrays([a, b], dtype="float64")
    assert flat64.data.dtype == np.float64
    np.testing.assert_array_equal(flat64.params["1"], [0.0, 1.0, 2.0])
    explicit = FlatParameters.from_arrays((a,), xp=np)
    assert explicit.xp is np and explicit.names == ("0",)


@pytest.mark.parametrize("empty", [[], {}, ()])
def test_from_arrays_needs_an_array(empty):
    with pytest.raises(ValueError, match="at least one array"):
        FlatParameters.from_arrays(empty)


def test_no_decay_must_name_parameters():
    flat = FlatParameters(SHAPES, np, "float64", no_decay=["0.bias", "3.bias", "0.bias"])
    assert flat.no_decay == frozenset({"0.bias", "3.bias"})
    with pytest.raises(ValueError, match=r"no_decay names \['2.bias', 'nope'\] are not "
                                         r"parameters"):
        FlatParameters(SHAPES, np, "float64", no_decay=("nope", "0.bias", "2.bias"))
    with pytest.raises(ValueError, match="no_decay names"):
        FlatParameters.from_arrays({"w": np.ones(2)}, no_decay=("b",))


def test_network_buffer_declares_biases_and_norms_no_decay():
    from xpnet import MLP

    net = MLP([4, 3, 2], batch_norm=True, device="cpu", seed=0)
    assert net.flat.names == ("0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias")
    assert net.flat.no_decay == frozenset({"0.bias", "1.weight", "1.bias", "3.bias"})
    assert net.flat.dtype == np.float32


def test_an_optimizer_updates_every_view_through_the_flat_buffer():
    rng = np.random.default_rng(1)
    flat = FlatParameters.from_arrays({"w": rng.standard_normal((3, 2)),
                                       "b": rng.standard_normal(3)})
    before = {k: v.copy() for k, v in flat.params.items()}
    views = dict(flat.params)
    flat.grad[...] = rng.standard_normal(flat.size)
    opt = make_optimizer("sgd", flat, lr=0.5)
    opt.step()
    for name, v in flat.params.items():
        assert v is views[name]  # updated in place, never rebound
        np.testing.assert_allclose(v, before[name] - 0.5 * flat.grads[name], rtol=1e-15)
    with pytest.raises(TypeError, match="wrap separate arrays with FlatParameters.from_arrays"):
        make_optimizer("sgd", [np.ones(2)], lr=0.1)
