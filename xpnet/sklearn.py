"""scikit-learn estimators trained by xpnet: a drop-in for ``sklearn.neural_network``.

    from xpnet.sklearn import MLPClassifier      # instead of sklearn.neural_network's
    clf = MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=10, random_state=0).fit(X, y)

:class:`MLPClassifier` and :class:`MLPRegressor` take scikit-learn's parameters with the same
names, meanings and defaults (``hidden_layer_sizes=(100,)``, ``solver="adam"``,
``alpha=1e-4``, ``batch_size="auto"`` = ``min(200, n_samples)``, ``max_iter=200``, ...), fit
the same model (Glorot-uniform start drawn from ``random_state`` exactly as scikit-learn draws
it, the same output layer, loss, L2 term, mini-batches and stopping rule) and expose the same
fitted attributes (``coefs_`` as ``(n_in, n_out)`` arrays, ``loss_curve_``, ``n_iter_``,
``t_``, ...). scikit-learn's own test file, ``sklearn/neural_network/tests/test_mlp.py``, runs
against these estimators with only its import changed (``tests/test_sklearn_peer.py``). Two
parameters are added: ``device`` (``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``) and ``dtype``.

How the pieces map:

* dtype, as scikit-learn: ``dtype=None`` (the default) follows the data, float32 ``X`` trains
  in float32 and anything else in float64 (``coefs_``, ``intercepts_`` and predictions have
  that dtype); ``dtype="float32"`` or ``"float64"`` fixes it whatever ``X`` is.
* activation: ``identity`` (no hidden nonlinearity), ``logistic`` -> xpnet ``sigmoid``,
  ``tanh``, ``relu``. The network is an :class:`xpnet.Sequential` of ``Linear`` layers with
  those activations between them (none for ``identity``).
* output, as scikit-learn: multiclass -> softmax (``n_classes`` outputs); binary and
  multi-label -> logistic (one output per label, so binary has ``n_outputs_ == 1`` and a
  ``(n_hidden, 1)`` last coefficient matrix; ``predict_proba`` still returns ``(n, 2)``);
  regression -> identity with squared error, or with ``loss="poisson"`` xpnet's ``poisson``
  head (log link: predictions ``exp(z)``, half Poisson deviance; ``out_activation_ == "exp"``).
  ``predict_log_proba`` is computed from the logits (log-softmax, log-sigmoid), so it stays
  finite where float32 probabilities underflow to 0.
* ``alpha`` is xpnet's ``l2``: scikit-learn adds ``alpha / (2 n) * sum ||W||^2`` to each
  mini-batch loss with ``n`` the batch size (``_backprop``), which is xpnet's
  ``l2 / (2 m) * sum ||W||^2`` with ``m`` the batch size; biases are not penalised in either.
* ``sample_weight`` (``fit``, ``partial_fit``), scikit-learn's definition: each batch's loss
  is the weighted mean ``sum w_i l_i / sum w_i`` (the heads' ``sample_weight`` argument,
  :mod:`xpnet.heads`) and the L2 term ``alpha / (2 sum w_i) * sum ||W||^2``; a weight of 0
  removes a sample and an integer weight repeats it (the early-stopping validation score is
  weighted too). Weights must be finite and ``>= 0``, not all 0; a mini-batch whose weights
  are all 0 is skipped (scikit-learn's loss is 0/0 there). ``set_fit_request`` and
  ``set_partial_fit_request`` route it through meta-estimators as scikit-learn's own do.
* ``solver="adam"`` -> a subclass of xpnet's :class:`~xpnet.optimizers.Adam` that adds
  ``epsilon`` where scikit-learn does (to ``sqrt(v)``, the bias correction folded into the
  step size; xpnet's Adam, like PyTorch's, adds it to the bias-corrected ``sqrt(v)``, which
  moves parameters with tiny gradients differently). ``solver="sgd"`` -> xpnet ``sgd``
  (``momentum=0``) or, with momentum, a subclass of xpnet's ``Momentum`` that keeps the
  velocity in scikit-learn's form (steps rather than gradients: for a constant rate it is
  xpnet's ``nesterov`` / ``momentum`` exactly; when ``learning_rate="invscaling"`` or
  ``"adaptive"`` changes the rate between epochs, old steps keep their rate as in
  scikit-learn). The optimizer's current rate is ``_optimizer.learning_rate``, as in
  scikit-learn.
* ``solver="lbfgs"``: ``scipy.optimize.minimize(method="L-BFGS-B", jac=True)`` over the
  network's flat parameter buffer (``net.flat.data``), with scikit-learn's options
  (``maxfun=max_fun``, ``maxiter=max_iter``, ``gtol=tol``) and its ``ConvergenceWarning``
  when SciPy stops for any reason but convergence. The objective is the full-batch loss
  with the L2 term and its gradient, one float64 vector; on a GPU the forward and backward
  passes stay on the device and only that vector (and the loss) crosses per evaluation.
  (scikit-learn's multi-output squared error averages its *loss* over the outputs but not
  its gradient; here L-BFGS gets a consistent pair, summed over outputs, and ``loss_`` is
  reported in scikit-learn's scale.)
* Stopping is scikit-learn's ``_fit_stochastic``: without ``early_stopping``, stop once the
  training loss has failed to improve on the best by ``tol`` for more than ``n_iter_no_change``
  consecutive epochs; with it, hold out ``validation_fraction`` (with ``train_test_split`` and
  ``random_state``, stratified for binary classification as scikit-learn does, with its
  error for a class too small to split), stop on the validation score (accuracy, or R^2) and
  restore the best parameters. A ``ConvergenceWarning`` is raised when ``max_iter`` is
  reached. A diverging fit (a non-finite loss) raises scikit-learn's "Solver produced
  non-finite parameter weights" error; under ``early_stopping`` it goes on, as scikit-learn's
  does, with NaN validation scores, and ends with the best parameters restored.
* Sparse ``X`` (SciPy CSR or CSC; other formats are converted to CSR) is never densified: the
  first ``Linear`` layer multiplies the sparse matrix (``X W^T`` forward, ``dZ^T X`` for the
  weight gradient), and on a GPU the data go over as ``cupyx.scipy.sparse`` (through
  :mod:`xpnet.backend`).
* ``coefs_`` and ``intercepts_`` are live: on the CPU each array is a writable view of the
  network's weights (``coefs_[i]`` is the transpose of layer ``i``'s ``W``), so writing into it
  (``clf.coefs_[0][:] = 0``) changes the model. Assigning an array to an item
  (``clf.coefs_[0] = W``) or a whole list (``clf.coefs_ = [...]``) copies it in, on any device.
  On a GPU the arrays are read-only host copies (writing into one raises); assign to change
  the model. Before the first fit, assigned lists are kept and become the starting weights of
  the next ``partial_fit`` / warm-started ``fit``, as scikit-learn's own tests set them.

The training loop is written here (one device-resident copy of the data, preallocated batch
buffers, the network's forward and backward passes and an in-place optimizer step, one
device-to-host copy per epoch) rather than delegated to :class:`xpnet.Trainer`, because
scikit-learn's semantics need things the Trainer does not do: ``shuffle=False``, shuffling
from ``random_state``, an optimizer whose state survives across ``partial_fit`` calls, and a
learning rate changed between epochs.
"""

from __future__ import annotations

import math
import numbers
import warnings
from itertools import pairwise

import numpy as np

try:
    import scipy.optimize
    import scipy.sparse
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier as _SkMLPClassifier
    from sklearn.neural_network import MLPRegressor as _SkMLPRegressor
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils import check_random_state
    from sklearn.utils import shuffle as _sk_shuffle
    from sklearn.utils.class_weight import compute_sample_weight
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import type_of_target, unique_labels
    from sklearn.utils.validation import (
        check_array,
        check_is_fitted,
        column_or_1d,
        validate_data,
    )
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "xpnet.sklearn needs scikit-learn >= 1.6 and SciPy: pip install -e '.[sklearn]'"
    ) from exc

from .backend import DeviceUnavailableError, all_finite, get_device
from .callbacks import Callback
from .heads import log_softmax
from .layers import ACTIVATIONS, Linear
from .loop import Loop
from .network import Sequential
from .optimizers import SGD, Adam, Momentum

__all__ = ["MLPClassifier", "MLPRegressor"]

_HIDDEN = {"logistic": "sigmoid", "tanh": "tanh", "relu": "relu", "identity": None}
_HEADS = {"softmax": "softmax", "logistic": "sigmoid", "identity": "identity", "exp": "poisson"}
_PREDICT_CHUNK = 8192  # rows per inference pass: bounded memory on large inputs
_NONFINITE = ("Solver produced non-finite parameter weights. The input data may contain large "
              "values and need to be preprocessed.")


class _LearningRate:
    """scikit-learn's optimizers call their current rate ``learning_rate``; xpnet's ``lr``."""

    @property
    def learning_rate(self):
        return self.lr

    @learning_rate.setter
    def learning_rate(self, value):
        self.lr = value


class _SklearnSGD(_LearningRate, SGD):
    """xpnet's plain SGD (``p -= lr g``), with scikit-learn's name for the rate."""

    name = "sgd_sklearn"


class _SklearnAdam(_LearningRate, Adam):
    """xpnet's Adam with scikit-learn's placement of ``epsilon`` (Kingma & Ba's algorithm 1 as
    scikit-learn writes it): ``p -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``.
    xpnet's (PyTorch's) Adam adds ``eps`` to the bias-corrected ``sqrt(v / (1 - b2^t))``; the
    two differ for parameters whose gradients are about ``eps`` or smaller. Same state, same
    number of in-place passes."""

    name = "adam_sklearn"

    def _update_scalars(self):
        return self.eps, -self.lr * math.sqrt(1 - self.beta2**self.t) / (1 - self.beta1**self.t)


class _SklearnMomentum(_LearningRate, Momentum):
    """Momentum in scikit-learn's form, where the velocity holds steps, not gradients:
    ``v = mu v - lr g``, then ``p += v``, or with Nesterov ``p += mu v - lr g``. For a constant
    rate this is exactly xpnet's ``momentum`` / ``nesterov`` (``v_sklearn = -lr v_xpnet``);
    when the rate changes between epochs (``invscaling``, ``adaptive``) the old steps keep
    their old rate, as in scikit-learn."""

    name = "momentum_sklearn"
    momentum_one_allowed = True  # scikit-learn takes momentum in [0, 1]

    def __init__(self, params, lr=None, momentum=0.9, nesterov=True):
        self.nesterov = bool(nesterov)
        super().__init__(params, lr, momentum=momentum)

    def step(self) -> None:
        self.t += 1
        g, v, tmp = self.params.grad, self.state["velocity"], self._scratch
        v *= self.momentum
        self.xp.multiply(g, -self.lr, out=tmp)
        v += tmp
        if self.nesterov:
            self.params.data += tmp
            self.xp.multiply(v, self.momentum, out=tmp)
            self.params.data += tmp
        else:
            self.params.data += v


def _dtype_name(dtype):
    if dtype is None:
        return None
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype must be None (follow the data), 'float32' or 'float64'; "
                         f"got {dtype!r}")
    return name


def _check_sample_weight(sample_weight, n):
    """``sample_weight`` as a float64 array ``(n,)`` (a number means that weight for every
    sample), or None; refuses wrong shapes, non-finite or negative weights, and all zeros."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Number):
        sample_weight = np.full(n, sample_weight, dtype=np.float64)
    sw = check_array(sample_weight, accept_sparse=False, ensure_2d=False, dtype=np.float64,
                     order="C", input_name="sample_weight")
    if sw.ndim != 1:
        raise ValueError(f"Sample weights must be 1D array or scalar, got {sw.ndim}D array. "
                         f"Expected either a scalar value or a 1D array of length {n}.")
    if sw.shape != (n,):
        raise ValueError(f"sample_weight.shape == {sw.shape}, expected {(n,)}!")
    if (sw < 0).any():
        raise ValueError("sample_weight has negative values; weights must be >= 0.")
    if not sw.any():
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return sw


def _train_pass(net, X, y, sample_weight=None):
    """Forward and backward on one batch of device arrays: fills the network's gradient buffer
    and returns the loss, the head's (weighted) mean plus ``net``'s L2 term, as a 0-d device
    array. The same computation as ``Sequential.forward_backward``, with the heads'
    ``sample_weight``."""
    Z = net.logits(X, training=True)
    loss, dZ = net.head.loss_and_grad(Z, y, out=Z, sample_weight=sample_weight)
    loss = loss + net.l2_term(X.shape[0])
    net.backward(dZ)
    return loss


class _LiveWeights(list):
    """``coefs_`` or ``intercepts_``: a list of arrays in scikit-learn's layout whose item
    assignment copies the new array into the model (on any device)."""

    def __init__(self, arrays, write):
        super().__init__(arrays)
        self._write = write

    def __setitem__(self, index, value):
        if not isinstance(index, numbers.Integral):
            raise TypeError("assign one array at a time (coefs_[i] = W), or a whole list to "
                            "the attribute (coefs_ = [...]).")
        fresh = self._write(int(index), value)
        super().__setitem__(index, fresh)

class _BaseMLP(BaseEstimator):
    """Shared fit/predict machinery; use :class:`MLPClassifier` or :class:`MLPRegressor`."""

    # scikit-learn's own constraints for its parameters (so the same values are accepted and
    # the same errors raised); device and dtype are checked in _check_supported.
    _parameter_constraints: dict = {
        **_SkMLPClassifier._parameter_constraints,
        "device": "no_validation",
        "dtype": "no_validation",
    }

    def __init__(self, hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate,
                 learning_rate_init, power_t, max_iter, loss, shuffle, random_state, tol,
                 verbose, warm_start, momentum, nesterovs_momentum, early_stopping,
                 validation_fraction, beta_1, beta_2, epsilon, n_iter_no_change, max_fun,
                 device, dtype):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.loss = loss
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.device = device
        self.dtype = dtype

    # ------------------------------------------------------------------ live weights
    @property
    def coefs_(self):
        """Weight matrices ``(n_in, n_out)``, one per layer: live views on the CPU."""
        return self._weights("coefs")

    @coefs_.setter
    def coefs_(self, arrays):
        self._assign_weights("coefs", arrays)

    @property
    def intercepts_(self):
        """Bias vectors ``(n_out,)``, one per layer: live views on the CPU."""
        return self._weights("intercepts")

    @intercepts_.setter
    def intercepts_(self, arrays):
        self._assign_weights("intercepts", arrays)

    def _weights(self, kind):
        net = self.__dict__.get("_net")
        if net is None:
            if f"_{kind}_set" in self.__dict__:  # assigned by hand before any fit
                return self.__dict__[f"_{kind}_set"]
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{kind}_'")
        return _LiveWeights([self._read_weight(kind, i) for i in range(net.n_layers)],
                            lambda i, value: self._write_weight(kind, i, value))

    def _read_weight(self, kind, i):
        W, b = self._net.params[i]
        a = W.T if kind == "coefs" else b
        if self._net.device.is_gpu:  # a host copy that refuses writes (they would be lost)
            a = np.array(self._net.device.to_numpy(a))
            a.flags.writeable = False
        return a

    def _write_weight(self, kind, i, value):
        """Copy ``value`` into layer ``i``'s weights (``coefs``, scikit-learn's ``(n_in,
        n_out)``) or biases; return the new live array."""
        net = self._net
        W, b = net.params[i]
        dst = W.T if kind == "coefs" else b
        src = np.asarray(value) if not hasattr(value, "__cuda_array_interface__") else value
        if tuple(src.shape) != dst.shape:
            raise ValueError(f"{kind}_[{i}] must have shape {dst.shape}; got "
                             f"{tuple(src.shape)}.")
        with net.device.activate():
            dst[...] = net.device.send(src, net.dtype)
        return self._read_weight(kind, i)

    def _assign_weights(self, kind, arrays):
        net = self.__dict__.get("_net")
        if net is None:
            self.__dict__[f"_{kind}_set"] = arrays  # the list itself: later item writes count
            return
        arrays = list(arrays)
        if len(arrays) != net.n_layers:
            raise ValueError(f"{kind}_ needs {net.n_layers} arrays, one per layer; got "
                             f"{len(arrays)}.")
        for i, a in enumerate(arrays):
            self._write_weight(kind, i, a)

    # ------------------------------------------------------------------ checks
    def _check_supported(self):
        self._validate_params()
        _dtype_name(self.dtype)
        if not isinstance(self.device, str):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; "
                             f"got {self.device!r}")

    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        if not hasattr(sizes, "__iter__"):
            sizes = [sizes]
        sizes = list(sizes)
        if any(isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0
               for n in sizes):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        return [int(n) for n in sizes]

    def _cast(self, X, name="X"):
        """``X`` (validated by scikit-learn) as a float array of the model's dtype; sparse
        input as CSR (rows are what batches take), never densified."""
        dtype = self._xp_dtype
        sparse = scipy.sparse.issparse(X)
        if sparse:
            X = X.tocsr()
        if X.dtype != dtype:
            with np.errstate(over="ignore"):
                Xc = X.astype(dtype)
            if not all_finite(np, Xc.data if sparse else Xc):
                raise ValueError(f"Input {name} contains values too large for {dtype.name}; "
                                 f"rescale it or use dtype='float64'.")
            return Xc
        return X

    # ------------------------------------------------------------------ the network
    def _build_net(self, layer_units):
        layers = []
        hidden = _HIDDEN[self.activation]
        for i, (n_in, n_out) in enumerate(pairwise(layer_units)):
            layers.append(Linear(n_in, n_out))
            if hidden is not None and i < len(layer_units) - 2:
                layers.append(ACTIVATIONS[hidden](inplace=True))
        return Sequential(layers, head=_HEADS[self.out_activation_], l2=float(self.alpha),
                          dtype=self._xp_dtype, device=self._device_obj, seed=0)

    def _out_activation(self):
        if not isinstance(self, ClassifierMixin):
            return "exp" if self.loss == "poisson" else "identity"
        if self._label_binarizer.y_type_ == "multiclass":
            return "softmax"
        return "logistic"

    def _set_device_and_dtype(self, data_dtype):
        name = _dtype_name(self.dtype)
        if name is None:  # scikit-learn's rule: float32 data stay float32, the rest float64
            name = "float32" if np.dtype(data_dtype) == np.float32 else "float64"
        self._xp_dtype = np.dtype(name)
        self._device_obj = get_device(self.device)
        self.device_ = self._device_obj.name

    def _reset_history(self):
        if self.solver == "lbfgs":  # scikit-learn keeps no curve or best loss for L-BFGS
            return
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _initialize(self, layer_units, data_dtype):
        """First fit: the sklearn attributes and a network started as scikit-learn starts."""
        self.__dict__.pop("_coefs_set", None)
        self.__dict__.pop("_intercepts_set", None)
        self.n_iter_ = 0
        self.t_ = 0
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._out_activation()
        self._set_device_and_dtype(data_dtype)
        net = self._build_net(layer_units)
        # scikit-learn's start: Glorot uniform for weights and biases, drawn layer by layer
        # from random_state in its (n_in, n_out) layout (xpnet's W is the transpose).
        factor = 2.0 if self.activation == "logistic" else 6.0
        params = []
        for n_in, n_out in pairwise(layer_units):
            bound = np.sqrt(factor / (n_in + n_out))
            coef = self._random_state.uniform(-bound, bound, (n_in, n_out))
            intercept = self._random_state.uniform(-bound, bound, n_out)
            params.append((coef.T, intercept))
        net.set_params(params)
        self._net = net
        self._optimizer = None
        self._best_flat = net.flat.data.copy()
        self._reset_history()

    def _adopt_assigned_weights(self, layer_units, data_dtype):
        """``coefs_`` and ``intercepts_`` were assigned before any fit (as scikit-learn's
        ``test_fit`` does): build the network from them, keeping every attribute already set
        and giving the missing ones their starting values."""
        coefs = [np.asarray(c) for c in self.__dict__.pop("_coefs_set")]
        intercepts = [np.asarray(b) for b in self.__dict__.pop("_intercepts_set", [])]
        want = [((a, b), (b,)) for a, b in pairwise(layer_units)]
        got = list(zip([c.shape for c in coefs], [b.shape for b in intercepts]))
        if got != want:
            raise ValueError(f"coefs_ and intercepts_ assigned before fitting have shapes "
                             f"{got}, but this data needs {want}; assign arrays of those "
                             f"shapes, or fit first.")
        self.n_layers_ = len(layer_units)
        if not hasattr(self, "out_activation_"):
            self.out_activation_ = self._out_activation()
        self._set_device_and_dtype(data_dtype)
        net = self._build_net(layer_units)
        net.set_params([(c.T, b) for c, b in zip(coefs, intercepts)])
        self._net = net
        self._best_flat = net.flat.data.copy()
        for name, value in (("n_iter_", 0), ("t_", 0), ("_optimizer", None)):
            if not hasattr(self, name):
                setattr(self, name, value)
        if not hasattr(self, "loss_curve_"):
            self._reset_history()

    def _make_optimizer(self):
        net = self._net
        if self.solver == "adam":
            return _SklearnAdam(net, float(self.learning_rate_init), beta1=float(self.beta_1),
                                beta2=float(self.beta_2), eps=float(self.epsilon))
        if self.momentum == 0:
            return _SklearnSGD(net, float(self.learning_rate_init))
        return _SklearnMomentum(net, float(self.learning_rate_init),
                                momentum=float(self.momentum),
                                nesterov=bool(self.nesterovs_momentum))

    # ------------------------------------------------------------------ fitting
    def _fit(self, X, y, sample_weight=None, incremental=False):
        self._check_supported()
        hidden = self._hidden_sizes()
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        sample_weight = _check_sample_weight(sample_weight, X.shape[0])
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        n_features = X.shape[1]
        layer_units = [n_features, *hidden, y.shape[1]]
        self.n_outputs_ = y.shape[1]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(layer_units, X.dtype)
        elif "_net" not in self.__dict__:
            self._adopt_assigned_weights(layer_units, X.dtype)
        elif [self._net.linears[0].in_features] + [
                lin.out_features for lin in self._net.linears] != layer_units:
            raise ValueError(
                f"cannot continue training: the network has layer sizes "
                f"{[self._net.linears[0].in_features]} + "
                f"{[lin.out_features for lin in self._net.linears]} but this call needs "
                f"{layer_units}; fit again with warm_start=False.")
        X = self._cast(X)
        net = self._net
        try:
            if self.solver == "lbfgs":
                self._fit_lbfgs(X, y, sample_weight)
            else:
                self._fit_stochastic(X, y, sample_weight, incremental)
        finally:
            net.l2 = float(self.alpha)  # the solvers scale it per batch for sample weights
        with net.device.activate():
            finite = net.device.to_numpy(net.device.xp.isfinite(net.flat.data).all())
        if not bool(finite):
            raise ValueError(_NONFINITE)
        return self

    def _targets(self, y):
        """Host targets in the form the xpnet head trains on."""
        if self.out_activation_ == "softmax":
            return np.asarray(y).argmax(axis=1).astype(np.int64)
        return np.ascontiguousarray(y, dtype=self._xp_dtype)

    def _rescales_loss(self):
        """scikit-learn averages the squared error over the outputs (but not its gradient), so
        a multi-output regressor reports the loss ``data / k + L2``."""
        return self.out_activation_ == "identity" and self.n_outputs_ > 1

    def _fit_lbfgs(self, X, y, sample_weight):
        net = self._net
        dev = net.device
        n = X.shape[0]
        alpha = float(self.alpha)
        # scikit-learn's L2 term is alpha / (2 sum(w)) ||W||^2; xpnet's is l2 / (2 n) ||W||^2.
        net.l2 = alpha if sample_weight is None else alpha * n / float(sample_weight.sum())
        flat, grad = net.flat.data, net.flat.grad
        with dev.activate():
            Xd, yd = dev.send(X), dev.send(self._targets(y))
            wd = None if sample_weight is None else dev.send(sample_weight, net.dtype)

            def objective(theta):
                flat[...] = dev.send(theta, net.dtype)  # the one host-to-device copy
                loss = _train_pass(net, Xd, yd, wd)
                # the loss and the gradient vector: the one device-to-host copy
                return float(dev.to_numpy(loss)), dev.to_numpy(grad).astype(np.float64)

            theta0 = dev.to_numpy(flat).astype(np.float64)
            with np.errstate(over="ignore", invalid="ignore"):
                result = scipy.optimize.minimize(
                    objective, theta0, method="L-BFGS-B", jac=True,
                    options={"maxfun": self.max_fun, "maxiter": self.max_iter,
                             "gtol": self.tol})
            flat[...] = dev.send(result.x, net.dtype)
            l2 = float(dev.to_numpy(net.l2_term(n))) if net.l2 else 0.0
        self.n_iter_ = min(result.nit, self.max_iter)
        if result.status != 0:  # scikit-learn's _check_optimize_result
            msg = (f"lbfgs failed to converge after {self.n_iter_} iteration(s) "
                   f"(status={result.status}):\n{result.message}\n")
            if self.n_iter_ == self.max_iter:
                msg += (f"\nIncrease the number of iterations to improve the convergence "
                        f"(max_iter={self.max_iter}).")
            msg += ("\nYou might also want to scale the data as shown in:\n"
                    "    https://scikit-learn.org/stable/modules/preprocessing.html")
            warnings.warn(msg, ConvergenceWarning, stacklevel=4)
        loss = float(result.fun)
        self.loss_ = (loss - l2) / self.n_outputs_ + l2 if self._rescales_loss() else loss

    def _fit_stochastic(self, X, y, sample_weight, incremental):
        """sgd and adam through xpnet's one training loop (:class:`~xpnet.loop.Loop`):
        scikit-learn's shuffling (its ``random_state``) is the loop's order, its loss scaling
        and sample weights are the step, and its epoch rules (loss curve, tolerance and
        ``n_iter_no_change``, ``invscaling`` and ``adaptive`` rates, early stopping on the
        validation score) are the :class:`_SklearnEpochs` callback."""
        net = self._net
        dev = net.device
        net.l2 = float(self.alpha)  # with weights the step divides it by each batch's sum(w)
        if not incremental or getattr(self, "_optimizer", None) is None:
            self._optimizer = self._make_optimizer()
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        targets = self._targets(y)
        val = None
        if self.early_stopping:
            X, targets, sample_weight, X_val, y_val, sw_val = self._validation_split(
                X, y, targets, sample_weight)
        n = X.shape[0]
        if self.batch_size == "auto":
            bs = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                              "going to be clipped", stacklevel=4)
            bs = int(np.clip(self.batch_size, 1, n))
        batches = _SklearnBatches(self, n, bs, sample_weight)
        with dev.activate():
            Xd, yd = dev.send(X), dev.send(targets)
            wd = None if sample_weight is None else dev.send(sample_weight, net.dtype)
            if self.early_stopping:
                val = (dev.send(X_val), dev.send(y_val), sw_val)
            epochs = _SklearnEpochs(self, n, val, incremental)
            loop = Loop(net, self._optimizer, batch_size=bs, callbacks=[epochs],
                        shuffle=batches.order if self.shuffle else False, step=batches.step)
            self.n_iter_ = 0
            try:
                loop.run(Xd, yd, epochs=1 if incremental else self.max_iter,
                         sample_weight=wd)
            except KeyboardInterrupt:
                warnings.warn("Training interrupted by user.", stacklevel=4)
            else:
                if not incremental and not epochs.stopped and self.n_iter_ == self.max_iter:
                    warnings.warn(
                        f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                        f"and the optimization hasn't converged yet.", ConvergenceWarning,
                        stacklevel=4)
            if self.early_stopping:  # the best epoch's parameters, as scikit-learn restores them
                net.flat.data[...] = self._best_flat

    def _trigger_stopping(self, msg, opt):
        """scikit-learn's rule: stop, except that ``adaptive`` sgd first divides the rate by 5
        until it falls to 1e-6."""
        if self.solver == "sgd" and self.learning_rate == "adaptive":
            if opt.lr <= 1e-6:
                if self.verbose:
                    print(msg + " Learning rate too small. Stopping.")
                return True
            opt.lr /= 5.0
            if self.verbose:
                print(msg + f" Setting learning rate to {opt.lr:f}")
            return False
        if self.verbose:
            print(msg + " Stopping.")
        return True

    def _validation_split(self, X, y, targets, sample_weight):
        """scikit-learn's split: ``train_test_split`` with ``random_state``, stratified on the
        (binarized) labels for a single-output classifier, so a class with one member gets
        scikit-learn's own error."""
        stratify = y if isinstance(self, ClassifierMixin) and self.n_outputs_ == 1 else None
        train_idx, val_idx = train_test_split(
            np.arange(X.shape[0]), random_state=self._random_state,
            test_size=self.validation_fraction, stratify=stratify)
        if len(val_idx) < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                             "or the size of your dataset.")
        sw_train = sw_val = None
        if sample_weight is not None:
            sw_train, sw_val = sample_weight[train_idx], sample_weight[val_idx]
        return (X[train_idx], targets[train_idx], sw_train, X[val_idx], targets[val_idx],
                sw_val)

    def _update_no_improvement_count(self, early_stopping, val):
        if early_stopping:
            score = self._validation_score(*val)
            self.validation_scores_.append(score)
            if self.verbose:
                print(f"Validation score: {score:f}")
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_flat[...] = self._net.flat.data
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    # ------------------------------------------------------------------ inference
    def _forward(self, X, kinds=("activate",)):
        """Validated ``X`` -> host outputs ``(n, n_outputs_)``, one per entry of ``kinds``:
        ``"activate"`` (probabilities for classifiers, values for the regressor) or
        ``"logits"`` (the last layer's output), from one forward pass; a lone array for one
        kind."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=["csr", "csc"],
                          dtype=(np.float64, np.float32), reset=False)
        X = self._cast(X)
        net = self._net
        dev = net.device
        outs = [[] for _ in kinds]
        with dev.activate():
            for start in range(0, X.shape[0], _PREDICT_CHUNK):
                Z = net.logits(dev.send(X[start:start + _PREDICT_CHUNK]))
                for out, kind in zip(outs, kinds):  # logits first: activate overwrites Z
                    if kind == "logits":
                        out.append(dev.to_numpy(Z).copy())
                for out, kind in zip(outs, kinds):
                    if kind == "activate":
                        out.append(dev.to_numpy(net.head.activate(Z)))
        outs = [o[0] if len(o) == 1 else np.concatenate(o) for o in outs]
        return outs[0] if len(kinds) == 1 else outs

    def _loss_grad_lbfgs(self, packed_coef_inter, X, y, sample_weight=None, *workspace):
        """scikit-learn's (private) L-BFGS objective, for its tests: set the parameters from
        ``packed_coef_inter`` (every ``coefs_[i]`` raveled, then every ``intercepts_[i]``, as
        scikit-learn packs them) and return ``(loss, grad)`` on ``(X, y)`` in that packing,
        ``y`` being the binarized targets ``(n, n_outputs_)``. ``workspace`` (scikit-learn's
        preallocated lists) is not needed."""
        net = self._net
        theta = np.asarray(packed_coef_inter, dtype=np.float64)
        shapes = [W.T.shape for W, _ in net.params]
        offset = 0
        for i, shape in enumerate(shapes):
            size = shape[0] * shape[1]
            self._write_weight("coefs", i, theta[offset:offset + size].reshape(shape))
            offset += size
        for i, shape in enumerate(shapes):
            self._write_weight("intercepts", i, theta[offset:offset + shape[1]])
            offset += shape[1]
        X = self._cast(check_array(X, accept_sparse=["csr", "csc"],
                                   dtype=(np.float64, np.float32)))
        n = X.shape[0]
        sw = _check_sample_weight(sample_weight, n)
        net.l2 = float(self.alpha) * (1.0 if sw is None else n / float(sw.sum()))
        dev = net.device
        try:
            with dev.activate():
                wd = None if sw is None else dev.send(sw, net.dtype)
                targets = self._targets(np.asarray(y).reshape(n, -1))
                loss = _train_pass(net, dev.send(X), dev.send(targets), wd)
                grads = [(dev.to_numpy(dW), dev.to_numpy(db)) for dW, db in net.grads]
        finally:
            net.l2 = float(self.alpha)
        packed = [dW.T.ravel() for dW, _ in grads] + [db.ravel() for _, db in grads]
        return float(dev.to_numpy(loss)), np.concatenate(packed).astype(np.float64)

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        state = dict(super().__getstate__())
        net = state.pop("_net", None)
        state.pop("_device_obj", None)
        if net is not None:  # device arrays and array modules do not pickle: keep host copies
            to_numpy = net.device.to_numpy
            state["_layer_units"] = [net.n_features_in] + [lin.out_features
                                                           for lin in net.linears]
            state["_host_flat"] = np.array(to_numpy(net.flat.data), copy=True)
            state["_best_flat"] = np.array(to_numpy(self._best_flat), copy=True)
            opt = state.get("_optimizer")
            if opt is not None:
                sd = opt.state_dict()
                state["_optimizer"] = {"json": sd["json"], "arrays": {
                    k: np.array(to_numpy(v), copy=True) for k, v in sd["arrays"].items()}}
        return state

    def __setstate__(self, state):
        host_flat = state.pop("_host_flat", None)
        layer_units = state.pop("_layer_units", None)
        old_coefs = state.pop("coefs_", None)  # pickles from before coefs_ became live
        state.pop("intercepts_", None)
        if layer_units is None and old_coefs is not None:
            layer_units = [old_coefs[0].shape[0]] + [c.shape[1] for c in old_coefs]
        super().__setstate__(state)
        if host_flat is None:
            return
        try:
            self._device_obj = get_device(self.device)
        except DeviceUnavailableError as exc:
            warnings.warn(f"{exc}; the unpickled model runs on the CPU instead.", stacklevel=2)
            self._device_obj = get_device("cpu")
        self.device_ = self._device_obj.name
        net = self._build_net(layer_units)
        send = net.device.send
        with net.device.activate():
            net.flat.data[...] = send(host_flat, net.dtype)
            self._best_flat = send(self._best_flat, net.dtype)
        self._net = net
        saved_opt = self._optimizer
        if saved_opt is not None:
            self._optimizer = self._make_optimizer()
            self._optimizer.lr = saved_opt["json"]["lr"]
            self._optimizer.load_state_dict(saved_opt, send)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class _SklearnBatches:
    """scikit-learn's mini-batches for the loop: its shuffle (the estimator's
    ``random_state``, applied to the previous epoch's order, as scikit-learn does) and its step
    (the multi-output loss scale, and a batch whose weights are all zero skipped)."""

    def __init__(self, est, n, bs, sample_weight):
        self.est, self.n, self.bs = est, n, bs
        self.sample_weight = sample_weight
        self.sample_idx = np.arange(n, dtype=np.int64)
        self.starts = np.arange(0, n, bs)
        self.batch = 0
        self.batch_weight = self._batch_weights()
        self.rescale = est._rescales_loss()

    def _batch_weights(self):
        """Each batch's sum of weights in this epoch's order (host), or None."""
        if self.sample_weight is None:
            return None
        return np.add.reduceat(self.sample_weight[self.sample_idx], self.starts)

    def order(self, epoch, n):
        self.sample_idx = _sk_shuffle(self.sample_idx, random_state=self.est._random_state)
        self.batch_weight = self._batch_weights()
        return self.est._net.device.send(self.sample_idx)

    def step(self, X, y, correct=None, sample_weight=None):
        net = self.est._net
        b, self.batch = self.batch, (self.batch + 1) % len(self.starts)
        if self.batch_weight is not None and self.batch_weight[b] <= 0:
            return None  # no weight, no information: scikit-learn would divide 0 by 0
        loss = net.forward_backward(X, y, sample_weight=sample_weight)
        if self.rescale:  # scikit-learn averages the squared error over the outputs
            m = X.shape[0] if sample_weight is None else self.batch_weight[b]
            l2 = net.l2_term(m)
            loss = (loss - l2) / self.est.n_outputs_ + l2
        return loss


class _SklearnEpochs(Callback):
    """scikit-learn's end of an epoch: ``n_iter_``, ``loss_``, ``t_`` and the loss curve, the
    verbose lines, a non-finite loss, the validation score and the best parameters with
    ``early_stopping``, ``tol`` and ``n_iter_no_change``, the ``invscaling`` rate, and the
    ``adaptive`` rate's division by 5 before it stops."""

    def __init__(self, est, n, val, incremental):
        self.est, self.n, self.val, self.incremental = est, n, val, incremental
        self.stopped = False

    def on_epoch_end(self, loop, record):
        est, opt = self.est, loop.optimizer
        est.n_iter_ += 1
        est.loss_ = record["loss"]
        est.t_ += self.n
        est.loss_curve_.append(est.loss_)
        if est.verbose:
            print(f"Iteration {est.n_iter_}, loss = {est.loss_:.8f}")
        if not np.isfinite(est.loss_) and not est.early_stopping:
            # scikit-learn would run on to max_iter on NaN and then refuse the weights; stop
            # now with its message. With early stopping it goes on (NaN validation scores) and
            # restores the best parameters.
            raise ValueError(
                f"{_NONFINITE} (The training loss became {est.loss_} at iteration "
                f"{est.n_iter_}: scale X, e.g. with StandardScaler, or lower "
                f"learning_rate_init, now {est.learning_rate_init}.)")
        est._update_no_improvement_count(est.early_stopping, self.val)
        if est.solver == "sgd" and est.learning_rate == "invscaling":
            opt.lr = float(est.learning_rate_init) / (est.t_ + 1) ** est.power_t
        if est._no_improvement_count > est.n_iter_no_change:
            what = "Validation score" if est.early_stopping else "Training loss"
            msg = (f"{what} did not improve more than tol={est.tol:f} for "
                   f"{est.n_iter_no_change} consecutive epochs.")
            if est._trigger_stopping(msg, opt):
                self.stopped = True
                return True
            est._no_improvement_count = 0
        return False


def _check_partial_fit_first_call(est, classes):
    """True on the first ``partial_fit`` (and sets ``classes_``), as scikit-learn's helper."""
    if getattr(est, "classes_", None) is None and classes is None:
        raise ValueError("classes must be passed on the first call to partial_fit.")
    if classes is not None:
        if getattr(est, "classes_", None) is not None:
            if not np.array_equal(est.classes_, unique_labels(classes)):
                raise ValueError(f"`classes={classes!r}` is not the same as on last call to "
                                 f"partial_fit, was: {est.classes_!r}")
        else:
            est.classes_ = unique_labels(classes)
            return True
    return False


def _stochastic(est):
    if est.solver not in ("sgd", "adam"):
        raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                             f"{est.solver} is not stochastic.")
    return True


def _log_sigmoid(z):
    """``log(1 / (1 + exp(-z)))`` without overflow or -inf for finite ``z``."""
    return -np.logaddexp(0.0, -z)


def _safe_log(p, from_logits):
    """``log(p)``, with ``from_logits`` (the same log-probabilities computed from the logits)
    where ``p`` underflowed to 0."""
    with np.errstate(divide="ignore"):
        return np.where(p > 0, np.log(np.where(p > 0, p, 1)), from_logits).astype(p.dtype)


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier: scikit-learn's ``MLPClassifier``, trained by xpnet.

    Parameters are scikit-learn's (same names, meanings and defaults), plus ``device``
    (``"auto"``: a usable CUDA GPU, else the CPU; ``"cpu"``; ``"cuda"``; ``"cuda:N"``) and
    ``dtype`` (None: float32 for float32 ``X``, else float64, as scikit-learn; or
    ``"float32"`` / ``"float64"``: the precision of the parameters and arithmetic). See
    :mod:`xpnet.sklearn`.

    Fitted attributes are scikit-learn's: ``classes_``, ``loss_``, ``best_loss_``,
    ``loss_curve_``, ``validation_scores_``, ``best_validation_score_``, ``t_``, ``coefs_``,
    ``intercepts_`` (live, see :mod:`xpnet.sklearn`), ``n_features_in_``,
    ``feature_names_in_``, ``n_iter_``, ``n_layers_``, ``n_outputs_``, ``out_activation_``;
    plus ``device_``, the device that trained the model.
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 device="auto", dtype=None, class_weight=None):
        self.class_weight = class_weight
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
            alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            loss="log_loss", shuffle=shuffle, random_state=random_state, tol=tol,
            verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
            device=device, dtype=dtype)

    def fit(self, X, y, sample_weight=None):
        """Fit the model to ``X`` (n_samples, n_features), dense or SciPy sparse, and labels
        ``y`` (n_samples,), or a 0/1 indicator matrix (n_samples, n_labels) for multi-label
        classification; ``sample_weight`` (n_samples,) weights each sample's loss, times its
        class's weight when ``class_weight`` is set."""
        return self._fit(X, y, sample_weight=self._class_weighted(y, sample_weight),
                         incremental=False)

    def _class_weighted(self, y, sample_weight, partial=False):
        """``sample_weight`` times each sample's class weight (``class_weight``: a dict
        ``{label: weight}``, or ``"balanced"``: ``n_samples / (n_classes * count(label))``, as
        in ``LogisticRegression``); unchanged without ``class_weight``."""
        if self.class_weight is None:
            return sample_weight
        if partial and self.class_weight == "balanced":
            raise ValueError(
                "class_weight 'balanced' is not supported for partial_fit. In order to use "
                "'balanced' weights, use compute_class_weight('balanced', classes=classes, "
                "y=y). In place of y you can use a large enough sample of the full training "
                "set target to properly estimate the class frequency distributions. Pass the "
                "resulting weights as the class_weight parameter.")
        per_class = compute_sample_weight(self.class_weight, y)
        if sample_weight is None:
            return per_class
        if isinstance(sample_weight, numbers.Number):
            return per_class * float(sample_weight)
        return per_class * _check_sample_weight(sample_weight, len(per_class))

    @available_if(_stochastic)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over ``(X, y)``; ``classes`` (every label) is required on the first call."""
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=self._class_weighted(y, sample_weight, partial=True),
                         incremental=True)

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in the "
                        f"previous call to fit. Previously got {self.classes_}, `y` has "
                        f"{classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                                 f"{self.classes_}. 'y' has {classes}.")
        y = self._label_binarizer.transform(y).astype(bool)
        return X, y

    def _validation_score(self, X_val, y_val, sample_weight=None):
        """Accuracy on the held-out set (subset accuracy for multi-label), on the device;
        weighted by ``sample_weight`` when given."""
        net = self._net
        if sample_weight is None:
            _, correct = net.evaluate_device(X_val, y_val)
            return float(net.device.to_numpy(correct)) / X_val.shape[0]
        _, _, pred = net.evaluate_device(X_val, y_val, predictions=True)
        pred, truth = net.device.to_numpy(pred), net.device.to_numpy(y_val)
        if truth.ndim == 2:
            truth = truth > 0.5
            pred = pred.reshape(truth.shape).astype(bool)
        return float(accuracy_score(truth, pred, sample_weight=sample_weight))

    def predict(self, X):
        """Predicted labels ``(n_samples,)``, or the indicator matrix for multi-label."""
        y_pred = self._forward(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._label_binarizer.inverse_transform(y_pred)

    def predict_proba(self, X):
        """Class probabilities ``(n_samples, n_classes)`` in the order of ``classes_``."""
        y_pred = self._forward(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def predict_log_proba(self, X):
        """``log(predict_proba(X))``, finite where the probabilities underflow to 0: there the
        value comes from the logits (log-softmax, log-sigmoid: e.g. ``-120.3`` where float32
        rounds ``exp(-120.3)`` to 0, where ``np.log`` would give ``-inf``). Elsewhere it is
        ``log`` of the probabilities themselves, so ``argmax`` picks the class
        ``predict_proba`` picks, ties included."""
        P, Z = self._forward(X, kinds=("activate", "logits"))
        if self.out_activation_ == "softmax":
            return _safe_log(P, log_softmax(np, Z))
        if self.n_outputs_ == 1:  # binary: log(1 - p) = log sigmoid(-z), log p = log sigmoid(z)
            p, z = P.ravel(), Z.ravel()
            return np.vstack([_safe_log(1 - p, _log_sigmoid(-z)),
                              _safe_log(p, _log_sigmoid(z))]).T
        return _safe_log(P, _log_sigmoid(Z))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor: scikit-learn's ``MLPRegressor``, trained by xpnet.

    Parameters are scikit-learn's (same names, order, meanings and defaults), plus ``device``
    and ``dtype`` as in :class:`MLPClassifier`. ``loss="squared_error"`` (half squared error,
    identity output) or ``loss="poisson"`` (half Poisson deviance, log link: predictions are
    ``exp`` of the last layer's output; targets must be ``>= 0``). ``predict`` returns
    ``(n_samples,)`` when the model was fitted on 1-D targets.
    """

    _parameter_constraints: dict = {
        **_SkMLPRegressor._parameter_constraints,
        "device": "no_validation",
        "dtype": "no_validation",
    }

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 device="auto", dtype=None):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
            alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            loss=loss, shuffle=shuffle, random_state=random_state, tol=tol,
            verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
            device=device, dtype=dtype)

    def fit(self, X, y, sample_weight=None):
        """Fit the model to ``X`` (n_samples, n_features), dense or SciPy sparse, and targets
        ``y`` (n_samples,) or (n_samples, n_targets); ``sample_weight`` (n_samples,) weights
        each sample's loss."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @available_if(_stochastic)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over ``(X, y)``."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=True, dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and (y < 0).any():
            raise ValueError("y has negative values, which loss='poisson' cannot fit; pass "
                             "counts or rates >= 0, or use loss='squared_error'.")
        return X, y

    def _validation_score(self, X_val, y_val, sample_weight=None):
        """R^2 on the held-out set (NaN when the predictions are not finite), weighted by
        ``sample_weight`` when given."""
        _, _, pred = self._net.evaluate_device(X_val, y_val, predictions=True)
        to_numpy = self._net.device.to_numpy
        pred, truth = to_numpy(pred), to_numpy(y_val)
        if not np.isfinite(pred).all():
            return np.nan
        if self.n_outputs_ == 1:
            pred, truth = pred.ravel(), truth.ravel()
        return float(r2_score(truth, pred, sample_weight=sample_weight))

    def predict(self, X):
        """Predicted values ``(n_samples,)`` for 1-D targets, else ``(n_samples, n_targets)``."""
        y_pred = self._forward(X)
        if y_pred.shape[1] == 1:
            return y_pred.ravel()
        return y_pred
