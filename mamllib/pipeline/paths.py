"""Where a notebook's relative paths start: the book's root.

The notebooks name their files relative to the repository root (``runs``,
``book/generated/executions.json``), where the report executes them. JupyterLab starts
a notebook's kernel in the notebook's own folder (``notebooks/``) instead, so each
notebook first moves to the book's root: the nearest folder, from the working
directory up, that holds the book's ``_config.yml`` and ``_toc.yml``. The command line
resolves relative paths from there too, so a run or a sweep started in a subfolder of
the checkout uses the same ``runs/`` as the notebooks.
"""

from __future__ import annotations

import os
from pathlib import Path

BOOK_MARKERS = ("_config.yml", "_toc.yml")


def book_root(start: Path | None = None) -> Path | None:
    """The nearest folder from ``start`` (default: the working directory) upward that
    holds the book's configuration; None outside a checkout of the book."""
    start = Path(start or Path.cwd()).resolve()
    return next((folder for folder in (start, *start.parents)
                 if all((folder / marker).is_file() for marker in BOOK_MARKERS)), None)


def relative_base() -> Path:
    """Where relative paths start: the book's root, or else the working directory."""
    return book_root() or Path.cwd()


def work_in_book_root() -> Path:
    """Make the book's root the working directory (if there is one); returns the
    working directory, in which the notebook's relative paths are read."""
    os.chdir(relative_base())
    return Path.cwd()
