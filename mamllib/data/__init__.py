"""Datasets as class -> images arrays in fixed splits, and the episode sampler."""

from __future__ import annotations

from mamllib.config import Config
from mamllib.data.dataset import FewShotDataset, Split


def load_dataset(config: Config) -> FewShotDataset:
    """The dataset a configuration names, from the cache or its local folder."""
    if config.dataset == "glyphs":
        from mamllib.data.glyphs import load_glyphs

        return load_glyphs(rotations=config.rotations)
    if config.dataset == "omniglot":
        from mamllib.data.omniglot import load_omniglot

        return load_omniglot(config.resolved_data_root, rotations=config.rotations)
    from mamllib.data.miniimagenet import load_miniimagenet

    return load_miniimagenet(config.resolved_data_root, rotations=config.rotations)


__all__ = ["FewShotDataset", "Split", "load_dataset"]
