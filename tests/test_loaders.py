"""The Omniglot and Mini-ImageNet loaders on tiny fake folders built here."""

import pickle

import numpy as np
import pytest
from PIL import Image

from benchmarks.fake_miniimagenet import write_fake_pickles
from mamllib.data.miniimagenet import load_miniimagenet
from mamllib.data.omniglot import load_omniglot
from mamllib.errors import DataError


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MAMLLIB_CACHE", str(tmp_path / "cache"))


def _stroke_png(path, seed, size):
    """An Omniglot-like image: black strokes on white, mode '1'."""
    rng = np.random.default_rng(seed)
    pixels = np.ones((size, size), dtype=bool)
    r, c = rng.integers(10, size - 30, 2)
    pixels[r:r + 20, c:c + 4] = False
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def fake_omniglot(root, alphabets=3, characters=4, drawings=5):
    for p, part in enumerate(("images_background", "images_evaluation")):
        for a in range(alphabets):
            for ch in range(characters):
                for d in range(drawings):
                    # A seed sequence, not hash() of strings: that differs between processes.
                    _stroke_png(root / part / f"Alphabet_{part[7]}{a}" / f"character{ch + 1:02d}" /
                                f"{a}{ch}_{d:02d}.png", seed=[p, a, ch, d], size=105)
    return root


def test_omniglot_reads_torchvision_layout(tmp_path):
    data = load_omniglot(fake_omniglot(tmp_path / "omniglot"))
    total = sum(sp.n_classes for sp in data.splits.values())
    assert total == 2 * 3 * 4
    assert data.splits["train"].images.shape[1:] == (5, 1, 28, 28)
    # Ink is bright on a dark background, like the glyphs.
    image = data.splits["train"].images[0, 0, 0].numpy()
    assert image.mean() < 64 and image.max() > 100
    names = [set(sp.class_names) for sp in data.splits.values()]
    assert not names[0] & names[1] and not names[0] & names[2] and not names[1] & names[2]


def test_omniglot_split_of_the_real_size_is_vinyals(tmp_path):
    from mamllib.data.dataset import split_classes
    from mamllib.data.omniglot import SPLIT_SEED, SPLIT_SIZES

    sizes = {s: len(ix) for s, ix in split_classes(1623, SPLIT_SIZES, SPLIT_SEED).items()}
    assert sizes == {"train": 1200, "val": 100, "test": 323}


def test_omniglot_rotations_quadruple_classes(tmp_path):
    root = fake_omniglot(tmp_path / "omniglot")
    plain, rotated = load_omniglot(root), load_omniglot(root, rotations=True)
    train, turned = plain.splits["train"], rotated.splits["train"]
    assert turned.n_classes == 4 * train.n_classes
    assert np.array_equal(turned.images[train.n_classes].numpy(),
                          np.rot90(train.images[0].numpy(), 1, (-2, -1)))


def test_omniglot_under_omniglot_py_subfolder(tmp_path):
    fake_omniglot(tmp_path / "root" / "omniglot-py")
    assert load_omniglot(tmp_path / "root").name == "omniglot"


@pytest.mark.parametrize("breakage, message", [
    (lambda root: None, "does not exist"),
    (lambda root: (root / "images_background").mkdir(parents=True), "images_evaluation"),
])
def test_omniglot_bad_folders_show_the_expected_layout(tmp_path, breakage, message):
    root = tmp_path / "missing"
    breakage(root)
    with pytest.raises(DataError, match=message) as info:
        load_omniglot(root)
    assert "<alphabet>/<character>/*.png" in str(info.value) and "\n" not in str(info.value)


def _rgb_jpeg(path, seed):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (100, 120, 3), dtype=np.uint8)).save(path)


def fake_ravi(root, classes=(4, 3, 3), per_class=6):
    (root / "images").mkdir(parents=True)
    k = 0
    for split, n in zip(("train", "val", "test"), classes):
        lines = ["filename,label"]
        for c in range(n):
            for i in range(per_class):
                name = f"n{split}{c:03d}{i:05d}.jpg"
                _rgb_jpeg(root / "images" / name, k)
                k += 1
                lines.append(f"{name},n{split}{c:03d}")
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return root


def test_miniimagenet_ravi_layout(tmp_path):
    data = load_miniimagenet(fake_ravi(tmp_path / "mini"))
    assert {s: sp.n_classes for s, sp in data.splits.items()} == {"train": 4, "val": 3, "test": 3}
    assert data.splits["val"].images.shape[1:] == (6, 3, 84, 84)
    assert data.channels == 3 and data.image_size == 84


def test_miniimagenet_pickle_layout_keeps_pixels(tmp_path):
    root = write_fake_pickles(tmp_path / "mini", classes=(4, 3, 3), per_class=6)
    data = load_miniimagenet(root)
    with open(root / "mini-imagenet-cache-train.pkl", "rb") as handle:
        stored = pickle.load(handle)
    first = stored["image_data"][stored["class_dict"]["ntrain0"][0]]
    assert np.array_equal(data.splits["train"].images[0, 0].numpy(), first.transpose(2, 0, 1))


def test_miniimagenet_errors(tmp_path):
    with pytest.raises(DataError, match="neither layout"):
        (tmp_path / "empty").mkdir()
        load_miniimagenet(tmp_path / "empty")
    root = fake_ravi(tmp_path / "broken")
    (root / "val.csv").write_text("file,class\nx.jpg,a\n")
    with pytest.raises(DataError, match="filename,label"):
        load_miniimagenet(root)
    bad = tmp_path / "badpickle"
    bad.mkdir()
    for split in ("train", "val", "test"):
        (bad / f"mini-imagenet-cache-{split}.pkl").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="not a Mini-ImageNet cache pickle"):
        load_miniimagenet(bad)


def _edit_pickle(root, split, edit):
    path = root / f"mini-imagenet-cache-{split}.pkl"
    stored = pickle.loads(path.read_bytes())
    edit(stored)
    path.write_bytes(pickle.dumps(stored))


@pytest.mark.parametrize("edit, message", [
    (lambda s: s["class_dict"].update(nval0=[0, 999]), "not indices of image_data's 18 images"),
    (lambda s: s.update(class_dict={}), "class_dict lists no classes"),
    (lambda s: s.update(image_data=s["image_data"].astype(np.float32)), "expected uint8"),
])
def test_miniimagenet_damaged_pickles_name_the_problem(tmp_path, edit, message):
    root = write_fake_pickles(tmp_path / "mini", classes=(4, 3, 3), per_class=6)
    _edit_pickle(root, "val", edit)
    with pytest.raises(DataError, match=message):
        load_miniimagenet(root)


@pytest.mark.parametrize("content, message", [
    (b"filename,label\n\xff\xfe.jpg,a\n", "not a UTF-8 text file"),
    (b"filename,label\nx.jpg\n", "line 2 lacks a filename or a label"),
    (b"filename,label\n,a\n", "line 2 lacks a filename or a label"),
])
def test_miniimagenet_damaged_csv_names_the_line(tmp_path, content, message):
    root = fake_ravi(tmp_path / "mini")
    (root / "val.csv").write_bytes(content)
    with pytest.raises(DataError, match=message):
        load_miniimagenet(root)


def test_a_dataset_too_small_for_tasks_says_so(tmp_path):
    from mamllib.data.sampler import check_task_shape

    with pytest.raises(DataError, match="too few for the 3 splits"):
        load_omniglot(fake_omniglot(tmp_path / "two", alphabets=1, characters=1))
    data = load_omniglot(fake_omniglot(tmp_path / "small", alphabets=1, characters=4))
    smallest = min(data.splits, key=lambda s: data.splits[s].n_classes)
    with pytest.raises(DataError, match="a task needs at least 2"):
        check_task_shape(data.splits[smallest], 2, 1, 1, smallest)


def test_a_damaged_cache_file_is_built_again(tmp_path):
    from mamllib.data.dataset import cached_arrays

    path, builds = tmp_path / "cache" / "x.npz", []

    def build():
        builds.append(1)
        return {"a": np.arange(3)}

    assert cached_arrays(path, build)["a"].tolist() == [0, 1, 2]
    assert cached_arrays(path, build)["a"].tolist() == [0, 1, 2] and len(builds) == 1  # read back
    path.write_bytes(path.read_bytes()[:20])  # an interrupted copy
    assert cached_arrays(path, build)["a"].tolist() == [0, 1, 2] and len(builds) == 2
    assert cached_arrays(path, build, keys=("a", "b"))["a"].tolist() == [0, 1, 2] and len(builds) == 3
