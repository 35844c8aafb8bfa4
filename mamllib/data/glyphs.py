"""`glyphs`: the embedded few-shot dataset, rendered from the fonts matplotlib ships.

Omniglot and Mini-ImageNet cannot be downloaded here, so the default dataset is made
from the DejaVu and STIX font families inside matplotlib's package data:

* one class per Unicode character that at least ``MIN_FACES`` font faces draw;
* characters grouped by Unicode block into "alphabets", as Omniglot groups characters;
* near-duplicate characters (homoglyphs such as Latin ``A`` and Greek ``Alpha``) are
  dropped, since no learner could tell them apart;
* ``INSTANCES`` instances per class, cycling through the faces that draw the character,
  each with a seeded random affine deformation (rotation, shear, scale, shift);
* 28x28 grayscale, ink bright on a black background.

Everything is seeded and rendered by the FreeType that matplotlib bundles and by
Pillow's integer resampling, so the bytes are identical on every machine with the
pinned versions. The result is cached on disk under a hash of everything that feeds it.
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from pathlib import Path

import matplotlib
import numpy as np
import PIL
from fontTools import unicodedata as font_unicodedata
from matplotlib.ft2font import FT2Font
from PIL import Image

from mamllib.data.dataset import FewShotDataset, Split, cache_dir, cached_arrays, split_classes

GLYPHS_VERSION = 1
IMAGE_SIZE = 28
INSTANCES = 20
MIN_FACES = 4
# 1,600 classes split like Omniglot's background/evaluation: 1,100 / 200 / 300.
SPLIT_SIZES = {"train": 1100, "val": 200, "test": 300}
SPLIT_SEED = 20170309
RENDER_SEED = 1623
# Render at 3x and downsample: Pillow's box filter gives smooth, anti-aliased strokes.
CANVAS = 3 * IMAGE_SIZE
GLYPH_BOX = 2.2 * IMAGE_SIZE
# Two characters whose canonical renderings have a cosine similarity above this are
# the same shape for a learner (homoglyphs, or a letter and its math-italic twin).
DUPLICATE_COSINE = 0.9
MIN_INK_PIXELS = 12
# SHA-256 of the rendered ``images`` array with the pinned matplotlib and Pillow; the
# tests check it, so any change of recipe or renderer must bump GLYPHS_VERSION with it.
IMAGES_SHA256 = "1465cdae09f5a620139564ba27a09857bfce07fe212e6afe4c3b3b530c4f8dff"
FACE_PREFIXES = ("DejaVuSans", "DejaVuSerif", "STIXGeneral")
EXCLUDED_CATEGORIES = ("C", "Z", "M")  # controls/format/private, spaces, combining marks


def font_files() -> list[Path]:
    """The font faces glyphs are drawn from, in a fixed order."""
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return sorted(p for p in folder.glob("*.ttf") if p.name.startswith(FACE_PREFIXES))


def _version_hash() -> str:
    """Hash of the generator version, the renderers' versions and the font bytes."""
    digest = hashlib.sha256()
    recipe = (GLYPHS_VERSION, IMAGE_SIZE, INSTANCES, MIN_FACES, sorted(SPLIT_SIZES.items()),
              SPLIT_SEED, RENDER_SEED, DUPLICATE_COSINE, matplotlib.__version__, PIL.__version__)
    digest.update(repr(recipe).encode())
    for path in font_files():
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _render(font: FT2Font, codepoint: int) -> np.ndarray:
    """The character's ink as uint8, cropped to its bounding box (may be empty)."""
    font.set_size(64, 72)
    font.set_text(chr(codepoint), 0.0)
    font.draw_glyphs_to_bitmap(antialiased=True)
    ink = np.asarray(font.get_image())
    rows, cols = np.nonzero(ink)
    if rows.size == 0:
        return ink[:0, :0]
    return ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]


def _affine(rng: np.random.Generator) -> tuple[float, ...]:
    """Seeded inverse affine map (output -> input pixel) about the canvas centre."""
    angle = np.deg2rad(rng.uniform(-12, 12))
    shear = rng.uniform(-0.2, 0.2)
    scale = rng.uniform(0.8, 1.05)
    shift = rng.uniform(-0.08, 0.08, size=2) * CANVAS
    forward = scale * np.array([[np.cos(angle), -np.sin(angle)],
                                [np.sin(angle), np.cos(angle)]]) @ np.array([[1, shear], [0, 1]])
    inverse = np.linalg.inv(forward)
    centre = np.array([CANVAS / 2, CANVAS / 2])
    offset = centre - inverse @ (centre + shift)
    coefficients = (*inverse[0], offset[0], *inverse[1], offset[1])
    # Rounded so that last-ulp differences of libm across machines cannot move a pixel.
    return tuple(round(float(c), 6) for c in coefficients)


def _place(ink: np.ndarray, coefficients: tuple[float, ...] | None) -> np.ndarray:
    """Scale the ink to the glyph box, centre it, deform it, downsample to 28x28."""
    height, width = ink.shape
    factor = GLYPH_BOX / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    glyph = Image.fromarray(ink).resize(size, Image.Resampling.BILINEAR)
    canvas = Image.new("L", (CANVAS, CANVAS))
    canvas.paste(glyph, ((CANVAS - size[0]) // 2, (CANVAS - size[1]) // 2))
    if coefficients is not None:
        canvas = canvas.transform(canvas.size, Image.Transform.AFFINE, coefficients,
                                  Image.Resampling.BILINEAR)
    return np.asarray(canvas.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX))


def _candidates(fonts: list[FT2Font]) -> dict[int, list[int]]:
    """Codepoint -> indices of the faces that draw it, for drawable characters."""
    coverage: dict[int, list[int]] = {}
    for face, font in enumerate(fonts):
        for codepoint in font.get_charmap():
            category = unicodedata.category(chr(codepoint))
            if codepoint < 0x10000 and not category.startswith(EXCLUDED_CATEGORIES):
                coverage.setdefault(codepoint, []).append(face)
    return {c: faces for c, faces in sorted(coverage.items()) if len(faces) >= MIN_FACES}


def _distinct(codepoints: list[int], canonical: np.ndarray) -> list[int]:
    """Greedy pass in codepoint order dropping characters that look like a kept one."""
    vectors = canonical.reshape(len(codepoints), -1).astype(np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    similar = (vectors @ vectors.T) > DUPLICATE_COSINE
    kept = np.zeros(len(codepoints), dtype=bool)
    for i in range(len(codepoints)):
        kept[i] = not similar[i, kept].any()
    return [c for c, k in zip(codepoints, kept) if k]


def _select_classes(fonts: list[FT2Font]) -> tuple[list[int], dict[int, list[int]]]:
    """The ``sum(SPLIT_SIZES)`` characters the dataset uses, and the faces of each."""
    coverage = _candidates(fonts)
    canonical, usable = [], []
    for codepoint, faces in coverage.items():
        ink = _render(fonts[faces[0]], codepoint)
        if np.count_nonzero(ink > 127) >= MIN_INK_PIXELS:
            usable.append(codepoint)
            canonical.append(_place(ink, None))
    distinct = _distinct(usable, np.stack(canonical))
    wanted = sum(SPLIT_SIZES.values())
    if len(distinct) < wanted:
        raise RuntimeError(f"glyphs: only {len(distinct)} distinct characters, need {wanted}")
    # An even spread over the distinct characters keeps every block represented.
    picks = np.linspace(0, len(distinct) - 1, wanted).round().astype(int)
    chosen = [distinct[i] for i in picks]
    return chosen, {c: coverage[c] for c in chosen}


def _render_class(fonts: list[FT2Font], codepoint: int, faces: list[int], index: int) -> np.ndarray:
    """``INSTANCES`` deformed renderings of one character, cycling over its faces."""
    rng = np.random.default_rng([RENDER_SEED, index])
    order = rng.permutation(faces)
    images = []
    for instance in range(INSTANCES):
        ink = _render(fonts[order[instance % len(order)]], codepoint)
        images.append(_place(ink, _affine(rng)))
    return np.stack(images)


def build_glyphs() -> dict[str, np.ndarray]:
    """Render the whole dataset (about 30 s on one core); returns the arrays to cache."""
    from tqdm import tqdm

    fonts = [FT2Font(str(path)) for path in font_files()]
    codepoints, faces = _select_classes(fonts)
    images = np.stack([
        _render_class(fonts, c, faces[c], i)
        for i, c in enumerate(tqdm(codepoints, desc="rendering glyphs", disable=None))
    ])
    alphabets = np.array([font_unicodedata.block(chr(c)) for c in codepoints])
    return {"images": images, "codepoints": np.array(codepoints), "alphabets": alphabets}


def glyphs_cache_path() -> Path:
    return cache_dir() / f"glyphs-v{GLYPHS_VERSION}-{_version_hash()}.npz"


def load_glyphs(rotations: bool = False) -> FewShotDataset:
    """The glyphs dataset, rendered on first use and read from the cache afterwards."""
    path = glyphs_cache_path()
    stored = cached_arrays(path, build_glyphs, keys=("images", "codepoints", "alphabets"))
    images, codepoints, alphabets = stored["images"], stored["codepoints"], stored["alphabets"]
    names = [f"{alphabet}/U+{c:04X}" for alphabet, c in zip(alphabets, codepoints)]
    assignment = split_classes(len(names), SPLIT_SIZES, SPLIT_SEED)
    splits = {
        split: Split.from_numpy(images[idx][:, :, None], [names[i] for i in idx], rotations)
        for split, idx in assignment.items()
    }
    return FewShotDataset(name="glyphs", splits=splits, source=str(path))


__all__ = ["load_glyphs", "build_glyphs", "glyphs_cache_path", "IMAGE_SIZE", "SPLIT_SIZES"]


if __name__ == "__main__":  # pragma: no cover - a manual way to (re)build the cache
    print(load_glyphs().describe())
    print(os.fspath(glyphs_cache_path()))
