"""Mini-ImageNet from a local folder, in either of its two common layouts.

* Ravi & Larochelle (2017): ``images/*.jpg`` with ``train.csv``, ``val.csv``, ``test.csv``
  (header ``filename,label``);
* the pickle cache: ``mini-imagenet-cache-{train,val,test}.pkl``, each a dict with
  ``image_data`` (``[N, 84, 84, 3]`` uint8) and ``class_dict`` (label -> row indices).

The split files define the 64 / 16 / 20 classes. Images become 84x84 RGB.
"""

from __future__ import annotations

import csv
import pickle
from functools import partial
from pathlib import Path

import numpy as np

from mamllib.data.dataset import SPLITS, FewShotDataset, Split
from mamllib.data.folders import cached, decode, fingerprint, layout_error, stack_classes
from mamllib.errors import DataError

IMAGE_SIZE = 84
LAYOUT = ("either images/ with train.csv, val.csv and test.csv (filename,label), or "
          "mini-imagenet-cache-{train,val,test}.pkl")


def _pickle_path(root: Path, split: str) -> Path:
    return root / f"mini-imagenet-cache-{split}.pkl"


def _from_pickles(root: Path) -> dict[str, Split]:
    splits = {}
    for split in SPLITS:
        path = _pickle_path(root, split)
        try:
            with path.open("rb") as handle:
                stored = pickle.load(handle)
            data, classes = np.asarray(stored["image_data"]), dict(stored["class_dict"])
        except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError,
                ImportError) as exc:
            raise DataError(f"miniimagenet: {path} is not a Mini-ImageNet cache pickle "
                            f"(needs image_data and class_dict): {type(exc).__name__}") from None
        if data.dtype != np.uint8 or data.ndim != 4 or data.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
            raise DataError(f"miniimagenet: {path}: image_data is {data.dtype} of shape {data.shape}, "
                            f"expected uint8 [N, {IMAGE_SIZE}, {IMAGE_SIZE}, 3]")
        splits[split] = Split.from_numpy(_class_images(path, data, classes), sorted(classes))
    return splits


def _class_images(path: Path, data: np.ndarray, classes: dict) -> np.ndarray:
    """``[C, I, 3, H, W]`` from the rows ``class_dict`` lists per class (equal counts: the fewest)."""
    if not classes:
        raise DataError(f"miniimagenet: {path}: class_dict lists no classes")
    try:
        rows = [np.asarray(classes[name], dtype=np.int64) for name in sorted(classes)]
        per_class = min(len(r) for r in rows)
        return data[np.stack([r[:per_class] for r in rows])].transpose(0, 1, 4, 2, 3)
    except (IndexError, ValueError, TypeError) as exc:
        raise DataError(f"miniimagenet: {path}: class_dict holds rows that are not indices of "
                        f"image_data's {len(data)} images ({type(exc).__name__})") from None


def _read_csv(path: Path) -> dict[str, list[str]]:
    by_label: dict[str, list[str]] = {}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or not {"filename", "label"} <= set(reader.fieldnames):
                raise DataError(f"miniimagenet: {path} needs a header line 'filename,label'")
            for row in reader:
                if not row["filename"] or not row["label"]:
                    raise DataError(f"miniimagenet: {path} line {reader.line_num} lacks a filename "
                                    f"or a label")
                by_label.setdefault(row["label"], []).append(row["filename"])
    except UnicodeDecodeError:
        raise DataError(f"miniimagenet: {path} is not a UTF-8 text file of filename,label lines") from None
    if not by_label:
        raise DataError(f"miniimagenet: {path} lists no images")
    return by_label


def _from_csv(root: Path) -> dict[str, Split]:
    splits = {}
    for split in SPLITS:
        by_label = _read_csv(root / f"{split}.csv")
        names = sorted(by_label)
        files = [[root / "images" / f for f in by_label[n]] for n in names]
        missing = next((f for fs in files for f in fs if not f.is_file()), None)
        if missing is not None:
            raise DataError(f"miniimagenet: {split}.csv names {missing.name}, which is not in "
                            f"{root / 'images'}")

        def build(files=files, split=split):
            images = stack_classes(files, partial(decode, size=IMAGE_SIZE, mode="RGB"),
                                   "miniimagenet", f"decoding miniimagenet {split}")
            return {"images": images}

        flat = sorted(f for fs in files for f in fs)
        images = cached(f"miniimagenet-{split}", fingerprint(flat, root), build)["images"]
        splits[split] = Split.from_numpy(images, names)
    return splits


def load_miniimagenet(root: Path, rotations: bool = False) -> FewShotDataset:
    """Mini-ImageNet at 84x84 RGB from whichever layout ``root`` holds."""
    root = Path(root)
    if not root.is_dir():
        raise layout_error("miniimagenet", root, "the folder does not exist", LAYOUT)
    if all(_pickle_path(root, s).is_file() for s in SPLITS):
        splits = _from_pickles(root)
    elif (root / "images").is_dir() and all((root / f"{s}.csv").is_file() for s in SPLITS):
        splits = _from_csv(root)
    else:
        raise layout_error("miniimagenet", root, "neither layout is complete", LAYOUT)
    if rotations:
        splits = {s: Split.from_numpy(sp.images.numpy(), sp.class_names, True) for s, sp in splits.items()}
    return FewShotDataset("miniimagenet", splits, source=str(root))
