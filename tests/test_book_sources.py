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
def test_each_figure_is_glued_once_and_placed_by_a_captioned_named_figure(path):
    cells = _cells(path)
    glued = []
    for cell in cells:
        if cell["cell_type"] == "code" and "glue_figure(" in cell["source"]:
            # The book shows the figure where its caption is, not also as the cell's output.
            assert "remove-output" in cell["metadata"].get("tags", []), cell["source"]
            glued += re.findall(r'glue_figure\(\s*"(\w+)"', cell["source"])
        assert "plt.show()" not in cell["source"]  # an uncaptioned figure
    markdown = "\n".join(c["source"] for c in cells if c["cell_type"] == "markdown")
    placed = re.findall(r"```\{glue:figure\} (\w+)\n:name: (\S+)\n\n(.+?)\n```", markdown, flags=re.S)
    assert sorted(key for key, _, _ in placed) == sorted(glued)
    for _, name, caption in placed:
        assert name.startswith("fig-") and len(caption.split()) >= 8, name
        assert name.endswith(PAGE_SLOT) == (path.stem in SHOWN_MORE_THAN_ONCE), name


def test_every_figure_a_page_refers_to_exists():
    names = {name for path in NOTEBOOKS for cell in _cells(path) if cell["cell_type"] == "markdown"
             for name in re.findall(r":name: (fig-[\w-]+)", cell["source"])}
    for page in (ROOT / "book").glob("*.md"):
        for name in re.findall(r"\{numref\}`([\w-]+)`", page.read_text()):
            assert name in names, (page.name, name)
