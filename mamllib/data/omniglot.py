"""Omniglot from a local folder in torchvision's layout, Vinyals et al.'s split.

Layout (``omniglot-py/`` may sit in between, as torchvision downloads it)::

    ROOT/images_background/<alphabet>/<character>/*.png
    ROOT/images_evaluation/<alphabet>/<character>/*.png

All 1,623 characters of both folders are pooled and split by one seeded permutation
into 1,200 training characters (Vinyals et al. 2016), 100 validation and 323 test
characters; a folder with fewer characters is split in the same proportions. Images
become 28x28 with bright ink on black, like the embedded glyphs.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from mamllib.data.dataset import FewShotDataset, Split, split_classes
from mamllib.data.folders import cached, decode, fingerprint, layout_error, stack_classes

IMAGE_SIZE = 28
SPLIT_SIZES = {"train": 1200, "val": 100, "test": 323}
SPLIT_SEED = 1
BACKGROUND, EVALUATION = "images_background", "images_evaluation"
LAYOUT = f"{BACKGROUND}/ and {EVALUATION}/ holding <alphabet>/<character>/*.png"


def _base(root: Path) -> Path:
    if not root.is_dir():
        raise layout_error("omniglot", root, "the folder does not exist", LAYOUT)
    for candidate in (root, root / "omniglot-py"):
        if (candidate / BACKGROUND).is_dir() and (candidate / EVALUATION).is_dir():
            return candidate
    raise layout_error("omniglot", root, f"no {BACKGROUND}/ and {EVALUATION}/ folders", LAYOUT)


def character_folders(root: Path) -> list[Path]:
    """Every character folder, background first, in sorted order."""
    base = _base(root)
    folders = [c for part in (BACKGROUND, EVALUATION)
               for alphabet in sorted((base / part).iterdir()) if alphabet.is_dir()
               for c in sorted(alphabet.iterdir()) if c.is_dir()]
    if not folders or any(not any(c.glob("*.png")) for c in folders):
        raise layout_error("omniglot", root, "a character folder without .png files (or none at all)", LAYOUT)
    return folders


def load_omniglot(root: Path, rotations: bool = False) -> FewShotDataset:
    """Omniglot at 28x28, decoded once and cached; ``rotations`` adds 90-degree turns as classes."""
    root = Path(root)
    folders = character_folders(root)
    files = [sorted(c.glob("*.png")) for c in folders]
    base = _base(root)

    def build():
        images = stack_classes(files, partial(decode, size=IMAGE_SIZE, mode="L", invert=True),
                               "omniglot", "decoding omniglot")
        return {"images": images}

    images = cached("omniglot", fingerprint([f for fs in files for f in fs], base), build)["images"]
    names = [f"{c.parent.name}/{c.name}" for c in folders]
    assignment = split_classes(len(names), SPLIT_SIZES, SPLIT_SEED)
    splits = {s: Split.from_numpy(images[idx], [names[i] for i in idx], rotations)
              for s, idx in assignment.items()}
    return FewShotDataset("omniglot", splits, source=str(base))
