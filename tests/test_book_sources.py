"""The notebooks and pages as written: every figure has its caption, and every figure label
is one the book can resolve."""

import re
from pathlib import Path

import jupytext
import pytest

from mamllib.pipeline.pages import PAGE_SLOT

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))
SHOWN_MORE_THAN_ONCE = {"maml_run", "few_tasks"}  # one page per setting, per pool


def _cells(path: Path):
    return jupytext.read(path)["cells"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_figure_and_table_is_glued_once_and_placed_by_a_captioned_named_figure(path):
    cells = _cells(path)
    glued = {"figure": [], "table": []}
    for cell in cells:
        if cell["cell_type"] == "code" and re.search(r"glue_(figure|table)\(", cell["source"]):
            # The book shows the figure (table) where its caption is, not also as the cell's output.
            assert "remove-output" in cell["metadata"].get("tags", []), cell["source"]
            for kind, key in re.findall(r'glue_(figure|table)\(\s*"(\w+)"', cell["source"]):
                glued[kind].append(key)
        assert "plt.show()" not in cell["source"]  # an uncaptioned figure
        # A table is numbered and captioned like a figure, not printed as a cell's output.
        assert not (cell["cell_type"] == "code" and "formats.table(" in cell["source"]), cell["source"]
    markdown = "\n".join(c["source"] for c in cells if c["cell_type"] == "markdown")
    placed = re.findall(r"```\{glue:figure\} (\w+)\n:name: (\S+)\n\n(.+?)\n```", markdown, flags=re.S)
    assert sorted(key for key, _, _ in placed) == sorted(glued["figure"] + glued["table"])
    for key, name, caption in placed:
        prefix = "tbl-" if key in glued["table"] else "fig-"
        assert name.startswith(prefix) and len(caption.split()) >= 8, name
        assert name.endswith(PAGE_SLOT) == (path.stem in SHOWN_MORE_THAN_ONCE), name


def test_every_figure_a_page_refers_to_exists():
    names = {name for path in NOTEBOOKS for cell in _cells(path) if cell["cell_type"] == "markdown"
             for name in re.findall(r":name: ((?:fig|tbl)-[\w-]+)", cell["source"])}
    for page in (ROOT / "book").glob("*.md"):
        for name in re.findall(r"\{numref\}`([\w-]+)`", page.read_text()):
            assert name in names, (page.name, name)
