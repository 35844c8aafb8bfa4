"""Bibliography labels in the author-year form the text cites with ("Finn et al. 2017"),
instead of pybtex's alphabetic ones ("[FAL17]"); loaded by the book as a local Sphinx
extension (``_config.yml``: ``sphinx.local_extensions``, ``bibtex_default_style``)."""

from __future__ import annotations

from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.sorting.author_year_title import SortingStyle as AuthorYearTitle


def _surname(person) -> str:
    return " ".join(person.prelast_names + person.last_names).replace("{", "").replace("}", "")


class AuthorYearLabels(BaseLabelStyle):
    """``Finn et al., 2017``, ``Barrett and Dherin, 2021``: as the text cites them."""

    def format_labels(self, sorted_entries):
        for entry in sorted_entries:
            authors = entry.persons.get("author", [])
            names = (_surname(authors[0]) if len(authors) == 1 else
                     f"{_surname(authors[0])} and {_surname(authors[1])}" if len(authors) == 2 else
                     f"{_surname(authors[0])} et al.")
            yield f"{names}, {entry.fields.get('year', '')}"


class AuthorYearStyle(UnsrtStyle):
    default_label_style = AuthorYearLabels
    default_sorting_style = AuthorYearTitle


register_plugin("pybtex.style.labels", "authoryear", AuthorYearLabels)
register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle)


def setup(app):
    return {"parallel_read_safe": True, "parallel_write_safe": True}
