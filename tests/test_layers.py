"""No module of mamllib imports from a layer above its own.

The science modules compute; findings and plots turn their results into the report's
sentences and figures; the pipeline orchestrates notebooks; the command line sits on
top. A lower module importing a higher one (even inside a function) would tie the
science to the orchestration, so the layers are checked here from the source.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mamllib"
# Lowest first; a module may import from its own layer and the layers below it.
LAYERS = [
    {"errors", "stats", "files", "formats", "allocator"},
    {"config"},
    {"data", "models"},
    {"maml"},
    {"evaluate", "penalty", "prototypes", "softmax_regression", "linreg", "checkpoint"},
    {"train", "latent"},
    {"runs", "findings", "population", "fewtask", "learned_signs"},
    {"sign_pattern", "convergence", "agreement"},
    {"plots", "tiers"},
    {"pipeline"},
    {"cli", "__main__", "__init__"},
]


def _layer(module: str) -> int:
    top = module.split(".")[0]
    return next(level for level, names in enumerate(LAYERS) if top in names)


def _imports(path: Path) -> set[str]:
    """The mamllib modules a source file imports, relative to the package (``data.sampler``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        # The package imports absolutely; a relative import would escape this check.
        assert not (isinstance(node, ast.ImportFrom) and node.level), f"{path}: relative import"
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        found |= {name.removeprefix("mamllib.") for name in names if name.startswith("mamllib.")}
        if isinstance(node, ast.ImportFrom) and node.module == "mamllib":  # from mamllib import plots
            found |= {alias.name for alias in node.names}
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_from_a_layer_above_it(path):
    module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    above = {name for name in _imports(path) if _layer(name) > _layer(module)}
    assert not above, f"{module} (layer {_layer(module)}) imports {sorted(above)} from above"


def test_every_module_has_a_layer():
    for path in MODULES:
        _layer(path.relative_to(PACKAGE).parts[0].removesuffix(".py"))
