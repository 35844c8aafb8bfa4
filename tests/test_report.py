"""End to end: a smoke sweep of two settings, the summary, the book, and a real browser."""

import html
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from browser import browser_available, check_pages
from mamllib import plots
from mamllib.cli import main
from mamllib.pipeline.report import build_report
from mamllib.pipeline.sweep import run_executions, sweep_settings

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
# Harmless console messages of the pinned theme: sphinx-thebe declares its URL twice
# even with thebe off, and the theme resets an unset colour mode.
KNOWN_CONSOLE = ("THEBE_JS_URL", "Got invalid theme mode", "favicon.ico")


def _book_sources(root: Path) -> Path:
    """The repository's book sources copied under ``root``, to build a report there."""
    shutil.copy(ROOT / "_config.yml", root)
    shutil.copy(ROOT / "_toc.yml", root)
    (root / "book").mkdir()
    for source in (ROOT / "book").glob("*.*"):
        shutil.copy(source, root / "book")
    for folder in ("_static", "_ext"):
        shutil.copytree(ROOT / "book" / folder, root / "book" / folder)
    return root


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory):
    root = _book_sources(tmp_path_factory.mktemp("report"))
    index, results = build_report(root, "smoke", rates=(-0.1, 0.4), learned=False, small=True)
    return root, index, results


def test_the_sweep_tier_builds_a_book_that_says_what_it_does_not_test(tmp_path):
    root = _book_sources(tmp_path)
    index, results = build_report(root, "smoke", small=True, tier="sweep")
    assert index.exists() and not results["failed"]
    generated = root / "book" / "generated"
    assert not list(generated.glob("few_tasks_*.ipynb")) and not list(generated.glob("baseline_*.ipynb"))
    pages = root / "book" / "_build" / "html" / "book"
    untested = "trains no few-task networks, so whether a negative training rate wins"
    for page in ("intro.html", "conclusions.html", "generated/negative_rates.html"):
        text = html.unescape(re.sub(r"\s+", " ", (pages / page).read_text()))
        assert untested in text and "{glue" not in text, page
    assert "All 0 networks" not in (pages / "generated" / "negative_rates.html").read_text()


def test_the_smoke_report_builds(smoke_report):
    root, index, results = smoke_report
    assert index.exists() and not results["failed"]
    generated = root / "book" / "generated"
    assert {p.stem for p in generated.glob("run_*.ipynb")} == {
        f"run_maml-lr{rate}-seed{seed}" for rate in ("-0p1", "0p4") for seed in (0, 1)}
    html = (root / "book" / "_build" / "html" / "book" / "conclusions.html").read_text()
    assert "best training rate" in html and "{glue" not in html
    # Each setting's page (and its sidebar entry) is titled by its setting.
    page = (root / "book" / "_build" / "html" / "book" / "generated"
            / "run_maml-lr-0p1-seed0.html").read_text()
    assert "<title>MAML at training rate -0.1, seed 0" in page


def test_the_sign_pattern_networks_train_after_the_learned_ones(smoke_report):
    from mamllib import sign_pattern

    root, _, results = smoke_report
    page = (root / "book" / "_build" / "html" / "book" / "generated" / "negative_rates.html").read_text()
    if sign_pattern.learned_patterns("smoke", [0], root / "runs"):  # seed 0 learned a negative rate
        stage = results["training-patterns"]
        assert stage["status"] == "completed" and stage["parameters"]["runs"] == 2  # signed and positive
        assert "fixed from the first step" in page and "paired over one seed" in page
    else:  # eight smoke steps from 0.1 may leave every rate positive: no sign to test
        assert "training-patterns" not in results
        assert "seed 0: no completed learned-rate run with a negative rate" in page
    assert "The best negative training rate against the best non-negative one, each chosen" in page
    assert "After the fixed budget of the main sweep: MAML at test rate" in page
    assert "At convergence: MAML at test rate" in page
    assert "With 30% label noise, for MAML at the best test rate: the best" in page


def test_no_page_shows_a_python_object_instead_of_its_content(smoke_report):
    # A glued rich object pasted with the wrong role shows up as its repr, e.g.
    # "<IPython.core.display.Markdown object>", and the build does not warn about it;
    # so does a figure or artist a cell returns instead of showing.
    leaked = {}
    for page in (smoke_report[0] / "book" / "_build" / "html").rglob("*.html"):
        text = html.unescape(re.sub(r"<[^>]*>", "", page.read_text()))
        if match := re.search(r"<[\w.]+ (?:object|at 0x[0-9a-f]+)[^>]*>|<Figure size [^>]*>", text):
            leaked[page.name] = match.group()
    assert not leaked


def test_no_page_shows_a_path_of_the_machine_that_built_it(smoke_report):
    root = smoke_report[0]
    machine_paths = (str(root), str(Path.home()), str(Path.cwd()))
    for page in (root / "book" / "_build" / "html").rglob("*.html"):
        text = page.read_text()
        assert not [path for path in machine_paths if path in text], page.name
    for notebook in (root / "book" / "generated").glob("*.ipynb"):  # the download button's file
        text = notebook.read_text()
        assert not [path for path in (*machine_paths, sys.prefix) if path in text], notebook.name


def test_code_is_folded_and_long_equations_scroll(smoke_report):
    root = smoke_report[0] / "book" / "_build" / "html"
    page = (root / "book" / "generated" / "run_maml-lr0p4-seed0.html").read_text()
    assert page.count("tag_hide-input") >= 5  # every code cell, the injected parameters included
    assert "custom.css" in page and "overflow-x: auto" in (root / "_static" / "custom.css").read_text()


def test_a_second_report_reexecutes_nothing(smoke_report):
    root, _, results = smoke_report
    again = build_report(root, "smoke", rates=(-0.1, 0.4), learned=False, small=True)[1]
    assert ({k: v for k, v in again.items() if k != "failed"}
            == {k: v for k, v in results.items() if k != "failed"})


def test_a_page_that_glues_from_a_notebook_executed_again_is_rebuilt(smoke_report):
    """Sphinx rebuilds only pages whose own source changed; the conclusions glue numbers
    from notebooks, so when one runs again every page is rebuilt."""
    root = smoke_report[0]
    conclusions = root / "book" / "_build" / "html" / "book" / "conclusions.html"
    before = conclusions.stat().st_mtime_ns
    (root / "book" / "generated" / "negative_rates.ipynb").unlink()  # so that it runs again
    build_report(root, "smoke", rates=(-0.1, 0.4), learned=False, small=True)
    assert conclusions.stat().st_mtime_ns > before


@pytest.mark.skipif(not browser_available(), reason="Debian's chromium and chromium-driver are not installed")
def test_the_report_renders_offline_in_a_browser(smoke_report, tmp_path):
    root, _, _ = smoke_report
    pages = ["book/intro.html", "book/derivation.html", "book/generated/summary.html",
             "book/generated/run_maml-lr0p4-seed0.html", "book/generated/linear_regression.html",
             "book/generated/penalty_check.html", "book/conclusions.html"]
    checks = {c.page: c for c in check_pages(root / "book" / "_build" / "html", pages, tmp_path)}
    for check in checks.values():
        assert check.failed_requests == [], check
        assert check.broken_images == 0, check
        assert [e for e in check.console_errors if not any(k in e for k in KNOWN_CONSOLE)] == [], check
    assert checks["book/derivation.html"].typeset_math > 20
    # Long equations are broken into aligned lines: none is wider than the column, on a
    # laptop (1280 px) or on a phone (420 px).
    phone = check_pages(root / "book" / "_build" / "html", pages, tmp_path, width=420)
    assert all(check.wide_equations == 0 for check in [*checks.values(), *phone])
    assert all(check.broken_images == 0 for check in phone)
    assert all(check.wide_tables == 0 for check in checks.values())  # a phone may scroll them, ...
    assert all(check.page_overflow_px == 0 for check in phone), phone  # ... but not the whole page
    # A figure's smallest text, shown at the figure's scale, is no smaller than the page's.
    for check in [*checks.values(), *phone]:
        for scale in check.figure_scales:
            assert plots.SMALLEST_TEXT * 4 / 3 * scale >= check.smallest_text_px - 0.1, check
    assert checks["book/generated/summary.html"].images >= 5
    assert checks["book/generated/run_maml-lr0p4-seed0.html"].images >= 1
    assert all(check.bold_pasted == 0 for check in checks.values())  # computed prose reads as prose


def _pages(smoke_report, pattern: str = "book/generated/*.html"):
    return sorted((smoke_report[0] / "book" / "_build" / "html").glob(pattern))


def test_every_figure_is_numbered_and_captioned(smoke_report):
    figures = 0
    for page in _pages(smoke_report):
        text = page.read_text()
        body = text[text.index('<article class="bd-article"'):]
        found = re.findall(r"<figure.*?</figure>", body, flags=re.S)
        for figure in found:
            assert "<figcaption" in figure and 'class="caption-number"' in figure, page.name
        assert "<img" not in re.sub(r"<figure.*?</figure>", "", body, flags=re.S), page.name
        figures += len(found)
    assert figures >= 15


def test_every_table_is_numbered_as_a_table_and_captioned(smoke_report):
    """Results tables count in their own sequence ("Table 3"), apart from the figures, and
    the text refers to them by that number (book/_ext/numbered_tables.py)."""
    tables = 0
    for page in _pages(smoke_report, "book/**/*.html"):  # the settings page's table too
        text = page.read_text()
        body = text[text.index('<article class="bd-article"'):]
        figures = re.findall(r"<figure.*?</figure>", body, flags=re.S)
        numbered = [f for f in figures if "<table" in f]
        assert all(re.search(r'class="caption-number">Table \d+', f) for f in numbered), page.name
        assert all('title="Link to this table"' in f for f in numbered), page.name
        assert "<table" not in re.sub(r"<figure.*?</figure>", "", body, flags=re.S), page.name
        # numbered as tables (a caption may still refer to a figure)
        assert not re.search(r'class="caption-number">Fig\.', "".join(numbered)), page.name
        # every reference to a table reads "Table N" and leads to it
        for target in re.findall(r'href="#(tbl-[\w-]+)"', body):
            assert f'id="{target}"' in body, (page.name, target)
        tables += len(numbered)
    assert tables >= 10


def test_each_generated_page_ends_with_its_source_and_the_command_that_reruns_it(smoke_report):
    for page in _pages(smoke_report):
        text = html.unescape(re.sub(r"<[^>]*>", "", page.read_text()))
        source = re.search(r"Source: notebooks/(\w+)\.py", text)
        assert source, page.name
        command = " ".join(text.split("python -m mamllib notebook", 1)[1].replace("\\", " ").split())
        assert command.startswith(f"{source.group(1)} --out book/generated/{page.stem}.ipynb --parameters")


def test_the_settings_table_links_every_setting_page(smoke_report):
    settings = (smoke_report[0] / "book" / "_build" / "html" / "book" / "settings.html").read_text()
    pages = [page.stem for page in _pages(smoke_report, "book/generated/run_*.html")]
    assert pages and all(f'href="generated/{page}.html"' in settings for page in pages)
    assert "±" in settings  # each setting's accuracy with its interval


def test_no_page_prints_a_finding_as_program_output(smoke_report):
    """Computed sentences are prose of the page, not lines of a cell's output."""
    for page in _pages(smoke_report):
        assert 'class="output stream' not in page.read_text(), page.name


def test_a_failing_setting_is_isolated(tmp_path, glyphs, capsys):
    runs = str(tmp_path / "runs")
    good = sweep_settings("smoke", rates=(0.4,), learned=False, runs_root=runs)
    bad = sweep_settings("smoke", rates=(0.1,), learned=False, runs_root=runs, overrides={"n_way": 500})
    out = tmp_path / "generated"
    results = run_executions(good + bad, out)
    assert results[good[0].output]["status"] == "completed"
    assert results[bad[0].output]["status"] == "failed"
    assert (out / f"{bad[0].output}.ipynb").exists()  # papermill's partial notebook
    assert "n_way=500" in (out / "logs" / f"{bad[0].output}.log").read_text()
    record = json.loads((out / "executions.json").read_text())
    assert set(record) == {good[0].output, bad[0].output}
    # The CLI's exit status says whether every setting completed: 0 for the good rate
    # alone, 1 once a setting fails (here its run folder holds a damaged checkpoint).
    cli = ["sweep", "--profile", "smoke", "--no-learned", "--out", str(tmp_path / "cli"), "--runs-root", runs]
    assert main([*cli, "--rates", "0.4"]) == 0 and "completed" in capsys.readouterr().out
    damaged = Path(runs) / "smoke" / "maml-lr-0.1-seed0"
    damaged.mkdir(parents=True)
    (damaged / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert main([*cli, "--rates", "0.4", "-0.1"]) == 1
    out, err = capsys.readouterr()
    assert "1 failed" in err and "lr-0p1" in err  # the training stage left that run to its notebook
