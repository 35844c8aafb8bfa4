"""Results tables numbered as tables ("Table 3"), apart from the figures.

A notebook glues a table (``mamllib.formats.glue_table``) and a Markdown cell places it
with ``{glue:figure}`` and a ``:name:`` that starts with ``tbl-``, which gives it a
caption and a target. myst-nb makes that a figure, which Sphinx would count with the
figures; this transform turns each such figure into a :class:`numbered_table`, which
Sphinx counts with the tables, so that its caption starts "Table 3" and
``{numref}`tbl-...``` reads "Table 3". Loaded by the book as a local Sphinx extension
(``_config.yml``: ``sphinx.local_extensions``).
"""

from __future__ import annotations

from docutils import nodes
from sphinx.transforms import SphinxTransform
from sphinx.writers.html5 import HTML5Translator

PREFIX = "tbl-"


class numbered_table(nodes.figure):  # noqa: N801 (docutils names node classes in lower case)
    """A glued results table with its caption, numbered in the tables' sequence."""


def _caption(node: nodes.Element) -> str:
    return next((child.astext() for child in node.children if isinstance(child, nodes.caption)), "")


class TablesFromFigures(SphinxTransform):
    """Every figure whose target starts with :data:`PREFIX` becomes a numbered table.
    It runs on the parsed page, before Sphinx collects labels and numbers, after the
    glue directives of the page itself have made their figures."""

    default_priority = 500

    def apply(self, **kwargs) -> None:
        for figure in list(self.document.findall(nodes.figure)):
            if type(figure) is nodes.figure and any(i.startswith(PREFIX) for i in figure["ids"]):
                table = numbered_table(figure.rawsource, *figure.children, **figure.attributes)
                figure.replace_self(table)
                for target in table["ids"]:  # references find their target through the ids
                    self.document.ids[target] = table


def setup(app):
    # The HTML of a figure (a <figure> with its <figcaption>) serves the table as well.
    app.add_enumerable_node(numbered_table, "table", _caption,
                            html=(HTML5Translator.visit_figure, HTML5Translator.depart_figure))
    app.add_transform(TablesFromFigures)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
