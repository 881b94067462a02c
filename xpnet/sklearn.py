"""scikit-learn estimators trained by xpnet: a drop-in for ``sklearn.neural_network``.

    from xpnet.sklearn import MLPClassifier      # instead of sklearn.neural_network's
    clf = MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=10, random_state=0).fit(X, y)

:class:`MLPClassifier` and :class:`MLPRegressor` take scikit-learn's parameters with the same
names, meanings and defaults (``hidden_layer_sizes=(100,)``, ``solver="adam"``,
``alpha=1e-4``, ``batch_size="auto"`` = ``min(200, n_samples)``, ``max_iter=200``, ...), fit
the same model (Glorot-uniform start drawn from ``random_state`` exactly as scikit-learn draws
it, the same output layer, loss, L2 term, mini-batches and stopping rule) and expose the same
fitted attributes (``coefs_`` as ``(n_in, n_out)`` host arrays, ``loss_curve_``, ``n_iter_``,
``t_``, ...). Two parameters are added: ``device`` (``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``)
and ``dtype`` (``float32``, the default, or ``float64``).

How the pieces map:

* activation: ``identity`` (no hidden nonlinearity), ``logistic`` -> xpnet ``sigmoid``,
  ``tanh``, ``relu``. The network is an :class:`xpnet.Sequential` of ``Linear`` layers with
  those activations between them (none for ``identity``).
* output, as scikit-learn: multiclass -> softmax (``n_classes`` outputs); binary and
  multi-label -> logistic (one output per label, so binary has ``n_outputs_ == 1`` and a
  ``(n_hidden, 1)`` last coefficient matrix; ``predict_proba`` still returns ``(n, 2)``);
  regression -> identity with squared error.
* ``alpha`` is xpnet's ``l2``: scikit-learn adds ``alpha / (2 n) * sum ||W||^2`` to each
  mini-batch loss with ``n`` the batch size (``_backprop``), which is xpnet's
  ``l2 / (2 m) * sum ||W||^2`` with ``m`` the batch size; biases are not penalised in either.
* ``solver="adam"`` -> a subclass of xpnet's :class:`~xpnet.optimizers.Adam` that adds
  ``epsilon`` where scikit-learn does (to ``sqrt(v)``, the bias correction folded into the
  step size; xpnet's Adam, like PyTorch's, adds it to the bias-corrected ``sqrt(v)``, which
  moves parameters with tiny gradients differently). ``solver="sgd"`` -> xpnet ``sgd``
  (``momentum=0``) or, with momentum, a subclass of xpnet's ``Momentum`` that keeps the
  velocity in scikit-learn's form (steps rather than gradients: for a constant rate it is
  xpnet's ``nesterov`` / ``momentum`` exactly; when ``learning_rate="invscaling"`` or
  ``"adaptive"`` changes the rate between epochs, old steps keep their rate as in
  scikit-learn). ``lbfgs`` is not supported
  (``ValueError``): xpnet trains with mini-batch first-order methods.
* Stopping is scikit-learn's ``_fit_stochastic``: without ``early_stopping``, stop once the
  training loss has failed to improve on the best by ``tol`` for more than ``n_iter_no_change``
  consecutive epochs; with it, hold out ``validation_fraction`` (stratified for single-label
  classification, with ``train_test_split`` and ``random_state``), stop on the validation
  score (accuracy, or R^2) and restore the best parameters. A ``ConvergenceWarning`` is
  raised when ``max_iter`` is reached.

The training loop is written here (one device-resident copy of the data, preallocated batch
buffers, the network's fused ``forward_backward`` and an in-place optimizer step, one
device-to-host copy per epoch) rather than delegated to :class:`xpnet.Trainer`, because
scikit-learn's semantics need things the Trainer does not do: ``shuffle=False``, shuffling
from ``random_state``, an optimizer whose state survives across ``partial_fit`` calls, and a
learning rate changed between epochs.

Not supported: sparse ``X`` (a clear error: densify it first), ``sample_weight`` (``fit`` does
not take it), ``solver="lbfgs"`` and ``MLPRegressor(loss="poisson")``.
"""

from __future__ import annotations

import math
import numbers
import warnings
from itertools import pairwise

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier as _SkMLPClassifier
    from sklearn.neural_network import MLPRegressor as _SkMLPRegressor
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils import check_random_state
    from sklearn.utils import shuffle as _sk_shuffle
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import type_of_target, unique_labels
    from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "xpnet.sklearn needs scikit-learn >= 1.6: pip install -e '.[sklearn]'"
    ) from exc

from .backend import DeviceUnavailableError, get_device
from .layers import ACTIVATIONS, Linear
from .network import Sequential
from .optimizers import Adam, Momentum, make_optimizer

__all__ = ["MLPClassifier", "MLPRegressor"]

_HIDDEN = {"logistic": "sigmoid", "tanh": "tanh", "relu": "relu", "identity": None}
_HEADS = {"softmax": "softmax", "logistic": "sigmoid", "identity": "identity"}
_PREDICT_CHUNK = 8192  # rows per inference pass: bounded memory on large inputs


class _SklearnAdam(Adam):
    """xpnet's Adam with scikit-learn's placement of ``epsilon`` (Kingma & Ba's algorithm 1 as
    scikit-learn writes it): ``p -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``.
    xpnet's (PyTorch's) Adam adds ``eps`` to the bias-corrected ``sqrt(v / (1 - b2^t))``; the
    two differ for parameters whose gradients are about ``eps`` or smaller. Same state, same
    number of in-place passes."""

    name = "adam_sklearn"

    def _update_scalars(self):
        return self.eps, -self.lr * math.sqrt(1 - self.beta2**self.t) / (1 - self.beta1**self.t)


class _SklearnMomentum(Momentum):
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
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")
    return name


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

    # ------------------------------------------------------------------ checks
    def _check_supported(self):
        self._validate_params()
        if self.solver == "lbfgs":
            raise ValueError(
                "solver='lbfgs' is not supported by xpnet.sklearn (xpnet trains with mini-batch "
                "first-order methods); use solver='adam' or solver='sgd', or "
                "sklearn.neural_network for L-BFGS."
            )
        if self.loss not in ("log_loss", "squared_error"):
            raise ValueError(f"loss={self.loss!r} is not supported by xpnet.sklearn; use "
                             "loss='squared_error' (or sklearn.neural_network for poisson).")
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
        """``X`` (validated by scikit-learn) as a float array of the model's dtype."""
        dtype = self._xp_dtype
        if X.dtype != dtype:
            with np.errstate(over="ignore"):
                Xc = X.astype(dtype)
            if not np.isfinite(Xc).all():
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

    def _initialize(self, layer_units):
        """First fit: the sklearn attributes and a network started as scikit-learn starts."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_layers_ = len(layer_units)
        if not isinstance(self, ClassifierMixin):
            self.out_activation_ = "identity"
        elif self._label_binarizer.y_type_ == "multiclass":
            self.out_activation_ = "softmax"
        else:
            self.out_activation_ = "logistic"
        self._xp_dtype = np.dtype(_dtype_name(self.dtype))
        self._device_obj = get_device(self.device)
        self.device_ = self._device_obj.name
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

    def _make_optimizer(self):
        net = self._net
        if self.solver == "adam":
            return _SklearnAdam(net, float(self.learning_rate_init), beta1=float(self.beta_1),
                                beta2=float(self.beta_2), eps=float(self.epsilon))
        if self.momentum == 0:
            return make_optimizer("sgd", net, float(self.learning_rate_init))
        return _SklearnMomentum(net, float(self.learning_rate_init),
                                momentum=float(self.momentum),
                                nesterov=bool(self.nesterovs_momentum))

    def _sync_coefs(self):
        """Host copies of the parameters in scikit-learn's layout."""
        to_numpy = self._net.device.to_numpy
        self.coefs_ = [np.ascontiguousarray(to_numpy(W).T) for W, _ in self._net.params]
        self.intercepts_ = [np.array(to_numpy(b), copy=True) for _, b in self._net.params]

    # ------------------------------------------------------------------ fitting
    def _fit(self, X, y, incremental=False):
        self._check_supported()
        hidden = self._hidden_sizes()
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        n_features = X.shape[1]
        layer_units = [n_features, *hidden, y.shape[1]]
        if not first_pass and [self._net.linears[0].in_features] + [
                lin.out_features for lin in self._net.linears] != layer_units:
            raise ValueError(
                f"cannot continue training: the network has layer sizes "
                f"{[self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_]} but this "
                f"call needs {layer_units}; fit again with warm_start=False.")
        self.n_outputs_ = y.shape[1]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(layer_units)
        self._net.l2 = float(self.alpha)
        X = self._cast(X)
        self._fit_stochastic(X, y, incremental)
        self._sync_coefs()
        if not all(np.isfinite(w).all() for w in (*self.coefs_, *self.intercepts_)):
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may contain "
                "large values and need to be preprocessed."
            )
        return self

    def _targets(self, y):
        """Host targets in the form the xpnet head trains on."""
        if self.out_activation_ == "softmax":
            return np.asarray(y).argmax(axis=1).astype(np.int64)
        return np.ascontiguousarray(y, dtype=self._xp_dtype)

    def _fit_stochastic(self, X, y, incremental):
        net = self._net
        dev, xp = net.device, net.device.xp
        if not incremental or self._optimizer is None:
            self._optimizer = self._make_optimizer()
        opt = self._optimizer
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        targets = self._targets(y)
        if early_stopping:
            X, targets, X_val, y_val = self._validation_split(X, targets)
        n = X.shape[0]
        if self.batch_size == "auto":
            bs = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                              "going to be clipped", stacklevel=4)
            bs = int(np.clip(self.batch_size, 1, n))
        sample_idx = np.arange(n, dtype=np.int64)
        k = self.n_outputs_
        rescale_loss = self.out_activation_ == "identity" and k > 1

        with dev.activate():
            Xd, yd = dev.send(X), dev.send(targets)
            val = (dev.send(X_val), dev.send(y_val)) if early_stopping else None
            batches = {}
            if self.shuffle:
                for size in {bs, n - (-(-n // bs) - 1) * bs}:
                    batches[size] = (xp.empty((size, X.shape[1]), dtype=Xd.dtype),
                                     xp.empty((size, *yd.shape[1:]), dtype=yd.dtype))
            try:
                self.n_iter_ = 0
                for _ in range(self.max_iter):
                    if self.shuffle:
                        sample_idx = _sk_shuffle(sample_idx, random_state=self._random_state)
                        perm = dev.send(sample_idx)
                    loss_sum = xp.zeros((), dtype=xp.float64)
                    for start in range(0, n, bs):
                        stop = min(start + bs, n)
                        if self.shuffle:
                            Xb, yb = batches[stop - start]
                            idx = perm[start:stop]
                            dev.take_rows(Xd, idx, Xb)
                            dev.take_rows(yd, idx, yb)
                        else:
                            Xb, yb = Xd[start:stop], yd[start:stop]
                        loss = net.forward_backward(Xb, yb)
                        if rescale_loss:  # scikit-learn averages the squared error over outputs
                            l2 = net.l2_term(stop - start)
                            loss = (loss - l2) / k + l2
                        loss_sum += loss * (stop - start)
                        opt.step()
                    self.n_iter_ += 1
                    self.loss_ = float(dev.to_numpy(loss_sum)) / n  # the epoch's one copy
                    self.t_ += n
                    self.loss_curve_.append(self.loss_)
                    if self.verbose:
                        print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
                    if not np.isfinite(self.loss_):
                        self._sync_coefs()
                        raise ValueError(
                            f"Training diverged: the loss became {self.loss_} at iteration "
                            f"{self.n_iter_}. The input data may contain large values and need "
                            f"to be preprocessed (e.g. StandardScaler), or lower "
                            f"learning_rate_init (now {self.learning_rate_init}).")
                    self._update_no_improvement_count(early_stopping, val)
                    if self.solver == "sgd" and self.learning_rate == "invscaling":
                        opt.lr = float(self.learning_rate_init) / (self.t_ + 1) ** self.power_t
                    if self._no_improvement_count > self.n_iter_no_change:
                        if early_stopping:
                            msg = (f"Validation score did not improve more than tol={self.tol:f}"
                                   f" for {self.n_iter_no_change} consecutive epochs.")
                        else:
                            msg = (f"Training loss did not improve more than tol={self.tol:f}"
                                   f" for {self.n_iter_no_change} consecutive epochs.")
                        if self._trigger_stopping(msg, opt):
                            break
                        self._no_improvement_count = 0
                    if incremental:
                        break
                    if self.n_iter_ == self.max_iter:
                        warnings.warn(
                            f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                            f"and the optimization hasn't converged yet.", ConvergenceWarning,
                            stacklevel=4)
            except KeyboardInterrupt:
                warnings.warn("Training interrupted by user.", stacklevel=4)
            if early_stopping:  # the best epoch's parameters, as scikit-learn restores them
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

    def _validation_split(self, X, targets):
        stratify = None
        if isinstance(self, ClassifierMixin) and (self.out_activation_ == "softmax"
                                                  or self.n_outputs_ == 1):  # single-label
            labels = targets if targets.ndim == 1 else targets[:, 0]
            counts = np.unique(labels, return_counts=True)[1]
            n_val = int(np.ceil(self.validation_fraction * len(labels)))
            if counts.min() >= 2 and n_val >= len(counts) and \
                    len(labels) - n_val >= len(counts):
                stratify = labels  # stratified when every class can be represented
        train_idx, val_idx = train_test_split(
            np.arange(X.shape[0]), random_state=self._random_state,
            test_size=self.validation_fraction, stratify=stratify)
        if len(val_idx) < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                             "or the size of your dataset.")
        return X[train_idx], targets[train_idx], X[val_idx], targets[val_idx]

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
    def _forward(self, X):
        """Validated ``X`` -> host outputs ``(n, n_outputs_)``: probabilities for classifiers,
        values for the regressor."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=(np.float64, np.float32), reset=False)
        X = self._cast(X)
        net = self._net
        dev = net.device
        outs = []
        with dev.activate():
            for start in range(0, X.shape[0], _PREDICT_CHUNK):
                Xd = dev.send(X[start:start + _PREDICT_CHUNK])
                outs.append(dev.to_numpy(net.head.activate(net.logits(Xd))))
        return outs[0] if len(outs) == 1 else np.concatenate(outs)

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        state = dict(super().__getstate__())
        net = state.pop("_net", None)
        state.pop("_device_obj", None)
        if net is not None:  # device arrays and array modules do not pickle: keep host copies
            to_numpy = net.device.to_numpy
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
        super().__setstate__(state)
        if host_flat is None:
            return
        try:
            self._device_obj = get_device(self.device)
        except DeviceUnavailableError as exc:
            warnings.warn(f"{exc}; the unpickled model runs on the CPU instead.", stacklevel=2)
            self._device_obj = get_device("cpu")
        self.device_ = self._device_obj.name
        layer_units = [self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_]
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
        tags.input_tags.sparse = False  # scikit-learn's MLP takes sparse X; xpnet needs dense
        return tags


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


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier: scikit-learn's ``MLPClassifier``, trained by xpnet.

    Parameters are scikit-learn's (same names, meanings and defaults), plus ``device``
    (``"auto"``: a usable CUDA GPU, else the CPU; ``"cpu"``; ``"cuda"``; ``"cuda:N"``) and
    ``dtype`` (``"float32"`` or ``"float64"``: the precision of the parameters and arithmetic).
    ``solver="lbfgs"`` is not supported. See :mod:`xpnet.sklearn`.

    Fitted attributes are scikit-learn's: ``classes_``, ``loss_``, ``best_loss_``,
    ``loss_curve_``, ``validation_scores_``, ``best_validation_score_``, ``t_``, ``coefs_``,
    ``intercepts_``, ``n_features_in_``, ``feature_names_in_``, ``n_iter_``, ``n_layers_``,
    ``n_outputs_``, ``out_activation_``; plus ``device_``, the device that trained the model.
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 device="auto", dtype="float32"):
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

    def fit(self, X, y):
        """Fit the model to ``X`` (n_samples, n_features) and labels ``y`` (n_samples,), or a
        0/1 indicator matrix (n_samples, n_labels) for multi-label classification."""
        return self._fit(X, y, incremental=False)

    @available_if(_stochastic)
    def partial_fit(self, X, y, classes=None):
        """One epoch over ``(X, y)``; ``classes`` (every label) is required on the first call."""
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, incremental=True)

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, multi_output=True, dtype=(np.float64, np.float32),
                             reset=reset)
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

    def _validation_score(self, X_val, y_val):
        """Accuracy on the held-out set (subset accuracy for multi-label), on the device."""
        _, correct = self._net.evaluate_device(X_val, y_val)
        return float(self._net.device.to_numpy(correct)) / X_val.shape[0]

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
        """``log(predict_proba(X))``."""
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor: scikit-learn's ``MLPRegressor``, trained by xpnet.

    Parameters are scikit-learn's (same names, order, meanings and defaults), plus ``device``
    and ``dtype`` as in :class:`MLPClassifier`. Only ``loss="squared_error"`` is supported
    (half squared error, identity output); ``solver="lbfgs"`` is not. ``predict`` returns
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
                 device="auto", dtype="float32"):
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

    def fit(self, X, y):
        """Fit the model to ``X`` (n_samples, n_features) and targets ``y`` (n_samples,) or
        (n_samples, n_targets)."""
        return self._fit(X, y, incremental=False)

    @available_if(_stochastic)
    def partial_fit(self, X, y):
        """One epoch over ``(X, y)``."""
        return self._fit(X, y, incremental=True)

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    def _validation_score(self, X_val, y_val):
        """R^2 on the held-out set (NaN when the predictions are not finite)."""
        _, _, pred = self._net.evaluate_device(X_val, y_val, predictions=True)
        to_numpy = self._net.device.to_numpy
        pred, truth = to_numpy(pred), to_numpy(y_val)
        if not np.isfinite(pred).all():
            return np.nan
        if self.n_outputs_ == 1:
            pred, truth = pred.ravel(), truth.ravel()
        return float(r2_score(truth, pred))

    def predict(self, X):
        """Predicted values ``(n_samples,)`` for 1-D targets, else ``(n_samples, n_targets)``."""
        y_pred = self._forward(X)
        if y_pred.shape[1] == 1:
            return y_pred.ravel()
        return y_pred

