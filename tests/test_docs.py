"""The documentation site (docs/, built by ``make docs``): every Python block of the Learn and
Guides pages runs, and what it prints is what the page shows.

A page's blocks run in order in one namespace, as a reader would type them, in a temporary
folder, with one BLAS thread (the 2-core test machine is shared; the figures do not depend on
it). A ```python block followed by a ```text block must print that text; on a Learn page a block
that prints anything must be followed by one. Numbers are compared to the shown number's last
digit, within two units of it (float sums on another BLAS may move that digit); all other text
must be equal.

Blocks that need MNIST, a trained checkpoint or files that an earlier command wrote run in the
dedicated tests named in ``RUN_ELSEWHERE``; ``test_every_block_runs_somewhere`` holds that list
to the pages. The API reference must name every public name of ``xpnet.__all__``.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import re
from pathlib import Path

import numpy as np
import pytest

import xpnet

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BLOCK = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```$", flags=re.S | re.M)

# (page, a string only that block contains) -> the test that runs it, as "module::function".
RUN_ELSEWHERE = {
    ("index.md", "xpnet.load_mnist()"): "test_readme::test_readme_example_runs",
    ("getting-started.md", "xpnet.load_mnist()"): "test_readme::test_readme_example_runs",
    ("guides/own-data.md", "xpnet.Model.fit("):
        "test_docs_guides::test_own_data_and_model_examples_run",
    ("guides/deploy.md", '"runs/mnist.onnx"'): "test_docs_guides::test_deploy_example_runs",
    ("guides/deploy.md", '"runs/patients.onnx"'):
        "test_docs_guides::test_own_data_and_model_examples_run",
    ("guides/sklearn.md", "from xpnet.sklearn import MLPClassifier"):
        "test_docs_guides::test_sklearn_example_runs",
}
# Pages whose blocks all run in their own test module, in order, with their own checks.
PAGES_ELSEWHERE = {"extending.md": "test_extending::test_the_guide_has_its_parts"}


def pages():
    """Every page of the site except the API reference (whose blocks are mkdocstrings')."""
    return sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")
                  if p.relative_to(DOCS).parts[0] != "api")


def blocks(page):
    """``[(language, code, shown_output_or_None), ...]`` for the page's fenced blocks."""
    found = [(m[1], m[2]) for m in BLOCK.finditer((DOCS / page).read_text(encoding="utf-8"))]
    out = []
    for i, (lang, code) in enumerate(found):
        if lang == "python":
            nxt = found[i + 1] if i + 1 < len(found) else None
            out.append((code, nxt[1] if nxt and nxt[0] == "text" else None))
    return out


def elsewhere(page, code):
    names = [test for (p, marker), test in RUN_ELSEWHERE.items() if p == page and marker in code]
    assert len(names) <= 1, (page, names)
    return names[0] if names else None


NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def same_output(printed, shown):
    """Equal text; numbers equal within two units of the shown number's last digit."""
    if NUMBER.sub("#", printed) != NUMBER.sub("#", shown):
        return False
    for got, want in zip(NUMBER.findall(printed), NUMBER.findall(shown)):
        if got == want:
            continue
        mantissa = want.split("e")[0]
        decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
        exponent = int(want.split("e")[1]) if "e" in want else 0
        if "." not in mantissa and "e" not in want:
            return False  # counts, shapes, labels: exact
        if abs(float(got) - float(want)) > 2 * 10.0 ** (exponent - decimals) * 1.0001:
            return False
    return True


def runnable_pages():
    return [p for p in pages() if p not in PAGES_ELSEWHERE
            and any(elsewhere(p, code) is None for code, _ in blocks(p))]


@pytest.mark.parametrize("page", runnable_pages())
def test_page_runs_and_prints_what_it_shows(page, tmp_path, monkeypatch):
    pytest.importorskip("sklearn", reason="the Learn pages use scikit-learn's digits "
                                          "(pip install -e '.[sklearn]')")
    threadpoolctl = pytest.importorskip("threadpoolctl")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__main__"}
    learn = page.startswith("learn/")
    with threadpoolctl.threadpool_limits(1):
        for i, (code, shown) in enumerate(blocks(page)):
            if elsewhere(page, code):
                continue
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                exec(compile(code, f"{page}:block{i}", "exec"), namespace)  # noqa: S102
            printed = buffer.getvalue()
            if shown is not None:
                assert same_output(printed, shown), (
                    f"{page} block {i} printed:\n{printed}\nthe page shows:\n{shown}")
            elif learn:
                assert printed == "", f"{page} block {i} prints output the page does not show"


def test_every_block_runs_somewhere():
    """Each Python block on a Learn or Guides page runs here or in a named test, and every
    entry of RUN_ELSEWHERE still names a block and an existing test."""
    used = set()
    for page in pages():
        if page in PAGES_ELSEWHERE:
            assert blocks(page), page
            continue
        for code, _ in blocks(page):
            name = elsewhere(page, code)
            if name:
                used.add(next(key for key, test in RUN_ELSEWHERE.items()
                              if key[0] == page and key[1] in code))
    assert used == set(RUN_ELSEWHERE), set(RUN_ELSEWHERE) - used
    for test in {*RUN_ELSEWHERE.values(), *PAGES_ELSEWHERE.values()}:
        module, function = test.split("::")
        assert callable(getattr(importlib.import_module(module), function, None)), test
    for section in ("learn", "guides"):
        assert any(p.startswith(f"{section}/") for p in pages()), section


def test_learn_pages_show_their_output():
    """The Learn pages are the worked examples: each has blocks, and shows what they print."""
    learn = [p for p in pages() if p.startswith("learn/") and blocks(p)]
    assert len(learn) >= 5, learn
    for page in learn:
        assert any(shown for _, shown in blocks(page)), page


def test_output_comparison_is_strict_where_it_should_be():
    assert same_output("loss 0.1235 acc 0.970\n", "loss 0.1234 acc 0.969\n")
    assert not same_output("loss 0.1238 acc 0.970\n", "loss 0.1234 acc 0.970\n")
    assert not same_output("(32, 64) True\n", "(32, 65) True\n")
    assert not same_output("passes: False\n", "passes: True\n")
    assert same_output("std 2e-04\n", "std 1.9e-04\n")


# ------------------------------------------------------------------ the API reference
def api_text():
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted((DOCS / "api").glob("*.md")))


def test_api_reference_covers_every_public_name():
    """Each name of xpnet.__all__ is rendered by a mkdocstrings directive (``::: path``), under
    its public name or the module path where it is defined; ``__version__`` is named in text."""
    text = api_text()
    directives = set(re.findall(r"^::: ([\w.]+)\s*$", text, flags=re.M))
    missing = []
    for name in xpnet.__all__:
        obj = getattr(xpnet, name)
        if isinstance(obj, str):
            if f"xpnet.{name}" not in text:
                missing.append(name)
            continue
        paths = {f"xpnet.{name}"}
        if hasattr(obj, "__qualname__"):
            paths.add(f"{obj.__module__}.{obj.__qualname__}")
        if hasattr(obj, "__file__"):  # a module (xpnet.export)
            paths.add(obj.__name__)
        if not paths & directives:
            missing.append(name)
    assert not missing, f"not in docs/api/*.md: {missing}"


def test_api_directives_name_real_objects():
    """mkdocs --strict fails on a directive it cannot resolve; this says which, without mkdocs."""
    for path in re.findall(r"^::: ([\w.]+)\s*$", "\n".join(
            p.read_text(encoding="utf-8") for p in DOCS.rglob("*.md")), flags=re.M):
        module, obj = path, None
        parts = path.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
            break
        assert obj is not None, module


def test_site_config_lists_every_page():
    """Every page is in mkdocs.yml's nav (mkdocs --strict also fails otherwise, but only where
    the docs extra is installed)."""
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in [*pages(), *(str(p.relative_to(DOCS)) for p in (DOCS / "api").glob("*.md"))]:
        assert re.search(rf"(^|\s){re.escape(page)}\s*$", nav, flags=re.M), page


def test_numbers_helper_sees_arrays():
    # a guard for the comparison above: NumPy prints arrays with spaces and brackets
    printed = str(np.array([0.48, -0.197, -0.011]))
    assert same_output(printed, "[ 0.48  -0.197 -0.011]")
