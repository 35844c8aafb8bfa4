import pytest
import torch

from mamllib.data.sampler import EpisodeSampler, fixed_tasks
from mamllib.errors import DataError


def _class_ids(x: torch.Tensor) -> torch.Tensor:
    """Class id encoded in channel 0 of the synthetic splits (see conftest)."""
    return (x[..., 0, 0, 0] * 255).round().long()


def _instance_ids(x: torch.Tensor) -> torch.Tensor:
    return (x[..., 1, 0, 0] * 255).round().long()


@pytest.mark.parametrize("split, ids", [("train", range(0, 10)), ("val", range(100, 106)),
                                         ("test", range(200, 208))])
def test_tasks_only_use_classes_of_their_split(tiny_dataset, split, ids):
    sampler = EpisodeSampler(tiny_dataset.splits[split], 5, 2, 3, seed=0)
    for _ in range(20):
        ep = sampler.sample(4)
        used = (set(_class_ids(ep.support_x).flatten().tolist())
                | set(_class_ids(ep.query_x).flatten().tolist()))
        assert used <= set(ids)


def test_episode_structure(tiny_dataset):
    ep = EpisodeSampler(tiny_dataset.splits["train"], 5, 2, 3, seed=0).sample(4)
    assert ep.support_x.shape == (4, 10, 2, 28, 28) and ep.query_x.shape == (4, 15, 2, 28, 28)
    for t in range(4):
        support_classes = _class_ids(ep.support_x[t])
        query_classes = _class_ids(ep.query_x[t])
        # One class per label, the same class for a label in support and query, N distinct classes.
        for label in range(5):
            s = support_classes[ep.support_y[t] == label].unique()
            q = query_classes[ep.query_y[t] == label].unique()
            assert s.numel() == 1 and q.tolist() == s.tolist()
        assert support_classes.unique().numel() == 5
        # Support and query instances of a class never overlap.
        for label in range(5):
            s = set(_instance_ids(ep.support_x[t][ep.support_y[t] == label]).tolist())
            q = set(_instance_ids(ep.query_x[t][ep.query_y[t] == label]).tolist())
            assert len(s) == 2 and len(q) == 3 and not s & q


def test_same_seed_same_tasks_other_seed_other_tasks(tiny_dataset):
    split = tiny_dataset.splits["train"]
    a = EpisodeSampler(split, 5, 1, 2, seed=3).sample(6)
    b = EpisodeSampler(split, 5, 1, 2, seed=3).sample(6)
    c = EpisodeSampler(split, 5, 1, 2, seed=4).sample(6)
    assert torch.equal(a.query_x, b.query_x)
    assert not torch.equal(a.query_x, c.query_x)


def test_fixed_tasks_do_not_depend_on_chunking(tiny_dataset):
    split = tiny_dataset.splits["test"]
    whole = torch.cat([e.query_x for e in fixed_tasks(split, "test", 5, 1, 2, 12, chunk=12)])
    pieces = torch.cat([e.query_x for e in fixed_tasks(split, "test", 5, 1, 2, 12, chunk=5)])
    assert torch.equal(whole, pieces)


def test_sampler_state_round_trip(tiny_dataset):
    sampler = EpisodeSampler(tiny_dataset.splits["train"], 3, 1, 1, seed=0)
    state = sampler.state()
    first = sampler.sample(2)
    sampler.set_state(state)
    assert torch.equal(sampler.sample(2).support_x, first.support_x)


def test_impossible_task_shapes_are_refused(tiny_dataset):
    with pytest.raises(DataError, match="n_way=11"):
        EpisodeSampler(tiny_dataset.splits["train"], 11, 1, 1, seed=0)
    with pytest.raises(DataError, match="k_shot \\+ n_query = 7"):
        EpisodeSampler(tiny_dataset.splits["train"], 5, 3, 4, seed=0)
