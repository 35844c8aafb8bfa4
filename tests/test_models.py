import torch

from mamllib.models import Conv4


def _per_task_params(model: Conv4, tasks: int) -> list[torch.Tensor]:
    return [p.detach() + 0.1 * torch.randn(tasks, *p.shape) for p in model.parameters()]


def test_task_batched_forward_equals_one_task_at_a_time():
    model = Conv4(1, 5, width=6, image_size=28).double()
    tasks = 3
    x = torch.rand(tasks, 7, 1, 28, 28, dtype=torch.float64)
    fast = [p.double() for p in _per_task_params(model, tasks)]
    names = [n for n, _ in model.named_parameters()]
    batched = torch.func.functional_call(model, dict(zip(names, fast)), (x,))
    for t in range(tasks):
        single = torch.func.functional_call(model, {n: p[t] for n, p in zip(names, fast)}, (x[t],))
        torch.testing.assert_close(batched[t], single)


def test_unbatched_parameters_broadcast_over_tasks():
    model = Conv4(3, 4, width=5, image_size=84)
    x = torch.rand(2, 6, 3, 84, 84)
    assert model.features(x).shape == (2, 6, 5 * 5 * 5)
    torch.testing.assert_close(model(x)[1], model(x[1]))


def test_batch_norm_uses_each_tasks_own_statistics():
    # Shifting one task's inputs must not change the other task's outputs.
    model = Conv4(1, 5, width=4)
    x = torch.rand(2, 5, 1, 28, 28)
    shifted = x.clone()
    shifted[0] += 3.0
    torch.testing.assert_close(model(x)[1], model(shifted)[1])


def test_feature_dimension_matches_head():
    assert Conv4(1, 5, width=32, image_size=28).feature_dim == 32
    assert Conv4(3, 5, width=32, image_size=84).feature_dim == 800
