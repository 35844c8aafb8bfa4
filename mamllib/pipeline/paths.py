"""Where a notebook's relative paths start: the book's root.

The notebooks name their files relative to the repository root (``runs``,
``book/generated/executions.json``), where the report executes them. JupyterLab starts
a notebook's kernel in the notebook's own folder (``notebooks/``) instead, so each
notebook first moves to the book's root: the nearest folder, from the working
directory up, that holds ``_toc.yml``.
"""

from __future__ import annotations

import os
from pathlib import Path

BOOK_MARKER = "_toc.yml"


def book_root(start: Path | None = None) -> Path | None:
    """The nearest folder from ``start`` (default: the working directory) upward that
    holds ``_toc.yml``; None outside a checkout of the book."""
    start = Path(start or Path.cwd()).resolve()
    return next((folder for folder in (start, *start.parents) if (folder / BOOK_MARKER).is_file()), None)


def work_in_book_root() -> Path:
    """Make the book's root the working directory (if there is one); returns the
    working directory, in which the notebook's relative paths are read."""
    root = book_root()
    if root is not None:
        os.chdir(root)
    return Path.cwd()
