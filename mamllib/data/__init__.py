"""Datasets as class -> images arrays in fixed splits, and the episode sampler."""

from __future__ import annotations

from mamllib.config import Config
from mamllib.data.dataset import FewShotDataset, Split
from mamllib.data.sampler import check_pool_size, check_task_shape


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


def check_dataset(config: Config, dataset: FewShotDataset) -> None:
    """Refuse a task shape that any split cannot supply, before anything is written."""
    for name, split in dataset.splits.items():
        check_task_shape(split, config.n_way, config.k_shot, config.n_query, name)
    check_pool_size(dataset.splits["train"], config.n_way, config.k_shot, config.n_query, config.train_tasks)


__all__ = ["FewShotDataset", "Split", "check_dataset", "load_dataset"]
