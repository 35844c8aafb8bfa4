"""Write a Mini-ImageNet-shaped stand-in (random 84x84 RGB images) in the pickle layout.

For measuring speed where the real files are not at hand (a GPU machine cannot fetch
them): same shapes, same 64 / 16 / 20 class split, fewer images per class. Its accuracy
means nothing.

    python benchmarks/fake_miniimagenet.py DIR [--per-class 20]
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np

PAPER_CLASSES = (64, 16, 20)  # train / val / test classes (Ravi & Larochelle)


def write_fake_pickles(root: Path, classes: tuple[int, int, int] = PAPER_CLASSES, per_class: int = 20,
                       seed: int = 0) -> Path:
    """``mini-imagenet-cache-{train,val,test}.pkl`` with random images under ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, n in zip(("train", "val", "test"), classes):
        data = rng.integers(0, 255, (n * per_class, 84, 84, 3), dtype=np.uint8)
        class_dict = {f"n{split}{c}": list(range(c * per_class, (c + 1) * per_class)) for c in range(n)}
        with open(root / f"mini-imagenet-cache-{split}.pkl", "wb") as handle:
            pickle.dump({"image_data": data, "class_dict": class_dict}, handle)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="folder to write the three pickles into")
    parser.add_argument("--per-class", type=int, default=20, help="images per class (default: 20)")
    args = parser.parse_args()
    print(write_fake_pickles(args.root, per_class=args.per_class))


if __name__ == "__main__":
    main()
