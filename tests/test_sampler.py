import pytest
import torch

from mamllib.data.sampler import EpisodeSampler, TaskPool, TrainingSampler, distinct_task_count, fixed_tasks
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


# --- the few-task regime: a fixed pool of training tasks, and label noise -----------------

def _task_keys(episodes) -> list[tuple]:
    """Each task as its classes and examples (in label order), and its query labels."""
    keys = []
    for t in range(episodes.n_tasks):
        support = _class_ids(episodes.support_x[t]) * 100 + _instance_ids(episodes.support_x[t])
        query = _class_ids(episodes.query_x[t]) * 100 + _instance_ids(episodes.query_x[t])
        keys.append((tuple(support.tolist()), tuple(query.tolist()), tuple(episodes.query_y[t].tolist())))
    return keys


def test_a_pool_is_fixed_by_the_seed_and_the_stream_draws_only_its_tasks(tiny_dataset):
    split = tiny_dataset.splits["train"]
    pool = TaskPool(split, 3, 1, 2, size=5, seed=11)
    members = set(_task_keys(pool.tasks(torch.arange(5))))
    assert len(members) == 5  # distinct tasks
    assert _task_keys(TaskPool(split, 3, 1, 2, size=5, seed=11).tasks(torch.arange(5))) == \
        _task_keys(pool.tasks(torch.arange(5)))
    assert set(_task_keys(TaskPool(split, 3, 1, 2, size=5, seed=12).tasks(torch.arange(5)))) != members
    sampler = TrainingSampler(split, 3, 1, 2, seed=0, pool=pool)
    drawn = [key for _ in range(20) for key in _task_keys(sampler.sample(4))]
    assert set(drawn) == members  # every task comes from the pool, and all of them come back


def test_the_pool_keeps_the_episode_structure(tiny_dataset):
    episodes = TaskPool(tiny_dataset.splits["train"], 5, 2, 3, size=7, seed=0).tasks(torch.arange(7))
    fresh = EpisodeSampler(tiny_dataset.splits["train"], 5, 2, 3, seed=0).sample(7)
    for name in ("support_x", "support_y", "query_x", "query_y"):
        assert getattr(episodes, name).shape == getattr(fresh, name).shape
        assert getattr(episodes, name).dtype == getattr(fresh, name).dtype
    assert torch.equal(episodes.support_y, fresh.support_y) and torch.equal(episodes.query_y, fresh.query_y)
    for t in range(7):
        for label in range(5):
            s = _class_ids(episodes.support_x[t][episodes.support_y[t] == label]).unique()
            q = _class_ids(episodes.query_x[t][episodes.query_y[t] == label]).unique()
            assert s.numel() == 1 and q.tolist() == s.tolist()


def test_a_pool_larger_than_the_distinct_tasks_is_refused(tiny_dataset):
    # 3 classes of 6 instances, 2-way, 1 support + 5 queries: 3*2 class orders x 6 ways per class.
    split = tiny_dataset.splits["train"]
    small = type(split)(split.images[:3], split.class_names[:3])
    assert distinct_task_count(small, 2, 1, 5) == 6 * 6 * 6
    pool = TaskPool(small, 2, 1, 5, size=216, seed=0)  # every distinct task, each once
    assert len(set(_task_keys(pool.tasks(torch.arange(216))))) == 216
    with pytest.raises(DataError, match="train_tasks=217 .* use train_tasks <= 216"):
        TaskPool(small, 2, 1, 5, size=217, seed=0)


def test_label_noise_replaces_only_query_labels_by_other_labels(tiny_dataset):
    split = tiny_dataset.splits["train"]
    clean = TrainingSampler(split, 5, 1, 4, seed=3).sample(200)
    noisy = TrainingSampler(split, 5, 1, 4, seed=3, label_noise=0.3).sample(200)
    for name in ("support_x", "support_y", "query_x"):
        assert torch.equal(getattr(clean, name), getattr(noisy, name))
    wrong = (noisy.query_y != clean.query_y).double().mean().item()
    assert 0.25 < wrong < 0.35  # 4,000 labels: the share is within a few standard errors of 0.3
    assert noisy.query_y.min() >= 0 and noisy.query_y.max() < 5
    # A pool draws its noise once: a task comes back with the same wrong labels.
    pool = TaskPool(split, 5, 1, 4, size=3, seed=0, label_noise=0.5)
    assert torch.equal(pool.tasks(torch.tensor([1, 1])).query_y[0], pool.tasks(torch.tensor([1])).query_y[0])
    assert not torch.equal(pool.query_y, TaskPool(split, 5, 1, 4, size=3, seed=0).query_y)
