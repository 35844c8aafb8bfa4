"""Results tables numbered as tables ("Table 3"), apart from the figures.

A notebook glues a table (``mamllib.formats.glue_table``) and a Markdown cell places it
with ``{glue:figure}`` and a ``:name:`` that starts with ``tbl-``, which gives it a
caption and a target. myst-nb makes that a figure, which Sphinx would count with the
figures; this transform turns each such figure into a :class:`numbered_table`, which
Sphinx counts with the tables, so that its caption starts "Table 3" and
``{numref}`tbl-...``` reads "Table 3". Loaded by the book as a local Sphinx extension
(``_config.yml``: ``sphinx.local_extensions``).

A hand-written page places a table glued in a notebook with ``{glued-table}``, which
takes the key, the notebook (``:doc:``), a ``:name:`` and the caption as its content:
myst-nb's ``{glue:figure}`` pastes only from the page's own notebook.
"""

from __future__ import annotations

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.writers.html5_polyglot import HTMLTranslator
from myst_nb.ext.glue.directives import PasteAnyDirective
from sphinx.locale import _
from sphinx.transforms import SphinxTransform
from sphinx.writers.html5 import HTML5Translator

PREFIX = "tbl-"


class numbered_table(nodes.figure):  # noqa: N801 (docutils names node classes in lower case)
    """A glued results table with its caption, numbered in the tables' sequence."""


class table_caption(nodes.caption):  # noqa: N801
    """A numbered table's caption: its permalink is titled a link to the table (Sphinx
    titles every figure caption's "Link to this image")."""


def _depart_table_caption(translator: HTML5Translator, node: table_caption) -> None:
    translator.body.append("</span>")  # the caption text that visit_caption opened
    translator.add_permalink_ref(node.parent, _("Link to this table"))
    HTMLTranslator.depart_caption(translator, node)  # docutils' HTML closes the <figcaption>


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
                children = [table_caption(child.rawsource, "", *child.children)
                            if isinstance(child, nodes.caption) else child for child in figure.children]
                table = numbered_table(figure.rawsource, *children, **figure.attributes)
                figure.replace_self(table)
                for target in table["ids"]:  # references find their target through the ids
                    self.document.ids[target] = table


class GluedTable(PasteAnyDirective):
    """A table glued in another notebook (``:doc:``), numbered in the tables' sequence,
    with a ``:name:`` to refer to it and its caption as the directive's content."""

    has_content = True
    option_spec = {**PasteAnyDirective.option_spec, "name": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        table = numbered_table("", *super().run())
        self.add_name(table)
        if self.content:
            parsed = nodes.Element()
            self.state.nested_parse(self.content, self.content_offset, parsed)
            paragraph = parsed[0]
            table += table_caption(paragraph.rawsource, "", *paragraph.children)
        return [table]


def setup(app):
    # The HTML of a figure (a <figure> with its <figcaption>) serves the table as well.
    app.add_enumerable_node(numbered_table, "table", _caption,
                            html=(HTML5Translator.visit_figure, HTML5Translator.depart_figure))
    app.add_node(table_caption, html=(HTML5Translator.visit_caption, _depart_table_caption))
    app.add_transform(TablesFromFigures)
    app.add_directive("glued-table", GluedTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
