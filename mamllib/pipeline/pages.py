"""An executed notebook made into a book page: code folded, titled by its setting, its
figure labels its own, and ending with the command that executes it again.

Light on purpose (json only): a Dask worker finishes every page it executes, and must
not pay for importing the science to do so.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

from mamllib.files import atomic_write_bytes
from mamllib.formats import NOT_DRAWN


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


# A label in a notebook the book shows more than once (one page per setting, per pool)
# ends with this slot, which each page fills with its own name: labels are global.
PAGE_SLOT = "{page}"


def own_labels(notebook: dict[str, Any], page: str) -> None:
    """Fill :data:`PAGE_SLOT` in the Markdown cells with ``page``."""
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            cell["source"] = "".join(cell["source"]).replace(PAGE_SLOT, page)




def caption_not_drawn(notebook: dict[str, Any]) -> None:
    """A figure or table that has nothing to show keeps its place and number (the text refers to
    it), and its caption says why instead of describing lines it lacks."""
    reasons = {}
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name", "")
            text = [value for key, value in output.get("data", {}).items() if key.endswith("text/plain")]
            if name.endswith(NOT_DRAWN) and text:
                reasons[name.removesuffix(NOT_DRAWN)] = ast.literal_eval("".join(text))
    for cell in notebook["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        source = "".join(cell["source"])
        for name, reason in reasons.items():
            # ```{glue:figure} name, its options (":name: ..."), then the caption up to ```
            block = re.compile(rf"(```\{{glue:figure\}} {re.escape(name)}\n(?::[^\n]*\n)*)(.*?)(```)", re.S)
            source = block.sub(lambda m: f"{m[1]}\nNot drawn in this build: {reason}.\n{m[3]}", source)
        cell["source"] = source


def show_errors(notebook: dict[str, Any]) -> None:
    """A cell whose output the book hides (its figure is placed by a caption) shows it
    after all when it raised: a failed page keeps its traceback."""
    for cell in notebook["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if "remove-output" in tags and any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            tags.remove("remove-output")


def source_note(source: str, page: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """The Markdown cell that ends a page: its source, and the command that executes it
    again with this page's parameters."""
    command = (f".venv/bin/python -m mamllib notebook {source} \\\n    --out book/generated/{page}.ipynb \\\n"
               f"    --parameters '{json.dumps(parameters)}'")
    text = (f"---\n\nSource: `notebooks/{source}.py`. To execute this page again with its parameters, "
            f"from the repository root:\n\n```bash\n{command}\n```\n")
    return {"cell_type": "markdown", "id": "source-note", "metadata": {"tags": ["source-note"]},
            "source": text}


def finish_page(path: Path, title: str = "", source: str = "") -> None:
    """An executed notebook as the book shows it: code folded, titled by its setting, its
    labels its own, ending with its source and the command that executes it again, and
    papermill's record of where it ran naming repository paths, not the builder's."""
    notebook = json.loads(path.read_text())
    fold_code(notebook)
    show_errors(notebook)
    caption_not_drawn(notebook)
    own_labels(notebook, path.stem)
    if title:
        retitle(notebook, title)
    papermill = notebook.get("metadata", {}).get("papermill")
    if papermill is not None:
        papermill.update(input_path=f"notebooks/{source}.py" if source else None, output_path=path.name)
    if source and not any("source-note" in c.get("metadata", {}).get("tags", []) for c in notebook["cells"]):
        parameters = (papermill or {}).get("parameters", {})
        notebook["cells"].append(source_note(source, path.stem, parameters))
    atomic_write_bytes(path, json.dumps(notebook, indent=1, ensure_ascii=False).encode())
