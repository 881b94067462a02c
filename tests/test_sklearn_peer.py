"""scikit-learn's own MLP tests, run against xpnet.sklearn.

The file is ``sklearn/neural_network/tests/test_mlp.py`` of the installed scikit-learn, copied
into a temporary folder with one line changed: ``from sklearn.neural_network import
MLPClassifier, MLPRegressor`` becomes ``from xpnet.sklearn import ...``. No assertion is
touched. It runs in a pytest subprocess (scikit-learn's ``global_random_seed`` fixture comes
from a conftest.py written next to it, as scikit-learn's conftest provides it: seed 42 unless
``SKLEARN_TESTS_GLOBAL_RANDOM_SEED`` says otherwise), on the CPU (``XPNET_DISABLE_CUPY=1``, so
the count does not depend on the machine), and its JUnit report gives each test's outcome.

The test below fails when a test expected to pass fails, and also when a test listed in
:data:`KNOWN_FAILURES` starts to pass (so the list is kept exact and the count only goes up).
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

sklearn = pytest.importorskip("sklearn", minversion="1.6",
                              reason="xpnet.sklearn needs scikit-learn >= 1.6 (the test extra)")
pytest.importorskip("scipy", reason="the peer suite needs SciPy (the sklearn extra)")

ORIGINAL_IMPORT = "from sklearn.neural_network import MLPClassifier, MLPRegressor"
XPNET_IMPORT = "from xpnet.sklearn import MLPClassifier, MLPRegressor"

# The tests of scikit-learn's file that xpnet.sklearn is known to fail, by exact test id (the
# function name plus its parametrization, as pytest names it), each with the reason. Empty: all
# 59 tests of scikit-learn 1.9.1's file pass, the three that set or read scikit-learn's private
# state included (test_fit assigns coefs_ before fitting; test_learning_rate_warmstart and
# test_adaptive_learning_rate read _optimizer.learning_rate).
KNOWN_FAILURES: dict[str, str] = {}

CONFTEST = '''\
import os

import pytest


def pytest_generate_tests(metafunc):
    # scikit-learn's conftest: global_random_seed is 42 unless the environment variable says
    # otherwise ("all", "A-B" or one seed in [0, 99]).
    if "global_random_seed" not in metafunc.fixturenames:
        return
    spec = os.environ.get("SKLEARN_TESTS_GLOBAL_RANDOM_SEED")
    if spec is None:
        seeds = [42]
    elif spec == "all":
        seeds = list(range(100))
    elif "-" in spec:
        lo, hi = spec.split("-")
        seeds = list(range(int(lo), int(hi) + 1))
    else:
        seeds = [int(spec)]
    metafunc.parametrize("global_random_seed", seeds)
'''


def peer_source() -> str:
    """The installed scikit-learn's test_mlp.py with its estimator import swapped for ours."""
    path = Path(sklearn.__file__).parent / "neural_network" / "tests" / "test_mlp.py"
    text = path.read_text(encoding="utf-8")
    assert text.count(ORIGINAL_IMPORT) == 1, (
        f"{path} no longer imports the estimators with {ORIGINAL_IMPORT!r}; update the swap")
    return text.replace(ORIGINAL_IMPORT, XPNET_IMPORT)


def run_peer_suite(folder: Path) -> dict[str, str]:
    """Run the swapped file under pytest in ``folder``; ``{test id: outcome}`` with outcome
    ``passed``, ``failed`` or ``skipped``."""
    (folder / "test_mlp_peer.py").write_text(peer_source(), encoding="utf-8")
    (folder / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    report = folder / "report.xml"
    env = dict(os.environ, XPNET_DISABLE_CUPY="1", OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         f"--junitxml={report}", "test_mlp_peer.py"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=1200)
    assert report.exists(), f"pytest wrote no report:\n{proc.stdout[-3000:]}\n{proc.stderr}"
    outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = case.get("name")
        kinds = {child.tag for child in case}
        if kinds & {"failure", "error"}:
            outcomes[name] = "failed"
        elif "skipped" in kinds:
            outcomes[name] = "skipped"
        else:
            outcomes[name] = "passed"
    assert outcomes, f"no test ran:\n{proc.stdout[-3000:]}"
    return outcomes


def test_peer_source_swaps_only_the_import():
    text = peer_source()
    original = (Path(sklearn.__file__).parent / "neural_network" / "tests" /
                "test_mlp.py").read_text(encoding="utf-8")
    changed = [(a, b) for a, b in zip(original.splitlines(), text.splitlines()) if a != b]
    assert changed == [(ORIGINAL_IMPORT, XPNET_IMPORT)]


def test_sklearn_own_mlp_tests(tmp_path):
    outcomes = run_peer_suite(tmp_path)
    passed = sorted(t for t, o in outcomes.items() if o == "passed")
    failed = sorted(t for t, o in outcomes.items() if o == "failed")
    print(f"scikit-learn {sklearn.__version__} test_mlp.py on xpnet.sklearn: "
          f"{len(passed)} of {len(outcomes)} passed")
    regressions = sorted(set(failed) - set(KNOWN_FAILURES))
    newly_passing = sorted(set(passed) & set(KNOWN_FAILURES))
    assert len(outcomes) >= 59, f"scikit-learn's file ran only {len(outcomes)} tests"
    assert not regressions, f"scikit-learn's tests now failing on xpnet: {regressions}"
    assert not newly_passing, (f"tests listed in KNOWN_FAILURES now pass; remove them from "
                               f"the list: {newly_passing}")
