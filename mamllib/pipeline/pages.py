"""An executed notebook made into a book page: code folded, titled by its setting.

Light on purpose (json only): a Dask worker finishes every page it executes, and must
not pay for importing the science to do so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mamllib.files import atomic_write_bytes


def retitle(notebook: dict[str, Any], title: str) -> None:
    """Replace the first level-1 heading of an executed notebook (one notebook source
    serves every setting, but each page should say which setting it shows)."""
    for cell in notebook["cells"]:
        lines = "".join(cell["source"]).splitlines(keepends=True)
        if cell["cell_type"] == "markdown" and lines and lines[0].startswith("# "):
            cell["source"] = [f"# {title}\n", *lines[1:]]
            return


def fold_code(notebook: dict[str, Any]) -> None:
    """Tag every code cell ``hide-input``: the book shows prose, figures and tables, with
    each cell's code one click away (papermill's injected parameters included)."""
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            tags = cell.setdefault("metadata", {}).setdefault("tags", [])
            if "hide-input" not in tags and "remove-input" not in tags:
                tags.append("hide-input")


def finish_page(path: Path, title: str = "", source: str = "") -> None:
    """An executed notebook as the book shows it: code folded, titled by its setting, and
    papermill's record of where it ran naming repository paths, not the builder's."""
    notebook = json.loads(path.read_text())
    fold_code(notebook)
    if title:
        retitle(notebook, title)
    papermill = notebook.get("metadata", {}).get("papermill")
    if papermill is not None:
        papermill.update(input_path=f"notebooks/{source}.py" if source else None, output_path=path.name)
    atomic_write_bytes(path, json.dumps(notebook, indent=1, ensure_ascii=False).encode())
