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


def _block_layouts(monkeypatch, run) -> list[bool]:
    """Whether each batch norm's input was channels-last, over the calls ``run`` makes."""
    seen, batch_norm = [], torch.nn.functional.batch_norm

    def recording(x, *args, **kwargs):
        seen.append(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())
        return batch_norm(x, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(torch.nn.functional, "batch_norm", recording)
        run()
    return seen


def test_evaluation_steps_run_channels_last_and_meta_training_steps_do_not(monkeypatch):
    from mamllib.maml import MAML, sgd_steps

    torch.manual_seed(0)
    maml = MAML(Conv4(1, 5, width=4), 0.1)
    x, y = torch.rand(2, 5, 1, 28, 28), torch.arange(5).repeat(2, 1)

    def steps(track_graph):
        fast = [w.requires_grad_() for w in maml.task_copies(2)]
        rates = maml.step_rates(2, None)
        return lambda: sgd_steps(maml.fmodel, fast, rates, x, y, 1, track_graph=track_graph)

    # channels-last batch norm sums less precisely: no meta-gradient goes through it
    assert _block_layouts(monkeypatch, steps(track_graph=True)) == [False] * 4
    assert _block_layouts(monkeypatch, steps(track_graph=False)) == [True] * 4
    with torch.no_grad():
        assert _block_layouts(monkeypatch, lambda: maml.model(x)) == [True] * 4


def test_an_evaluation_step_in_either_layout_gives_the_same_weights_to_float32_resolution():
    from mamllib.maml import MAML, sgd_steps

    torch.manual_seed(0)
    maml = MAML(Conv4(1, 5, width=8), 0.1)
    x, y = torch.rand(3, 5, 1, 28, 28), torch.arange(5).repeat(3, 1)
    start = [w.detach() for w in maml.task_copies(3)]

    def step(track_graph):
        fast = [w.clone().requires_grad_() for w in start]
        return sgd_steps(maml.fmodel, fast, maml.step_rates(3, None), x, y, 1, track_graph=track_graph)

    for evaluated, trained in zip(step(False), step(True)):
        scale = trained.abs().max().item()
        torch.testing.assert_close(evaluated.detach(), trained.detach(), rtol=0, atol=1e-4 * scale)


def test_only_the_last_block_is_flattened_for_logits_and_features():
    model = Conv4(1, 5, width=4)
    x = torch.rand(2, 5, 1, 28, 28)
    every = model.activations(x)
    assert len(every) == 4 and len(model.activations(x, every_block=False)) == 1
    torch.testing.assert_close(model.activations(x, every_block=False)[0], every[-1])
    torch.testing.assert_close(model(x, output="features"), every[-1])
    torch.testing.assert_close(model(x), model(x, output="activations")[1])
