"""The batched `higher` inner loop against hand-written per-task references."""

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from mamllib.data.sampler import Episodes
from mamllib.maml import MAML
from mamllib.models import Conv4

TASKS, N, K, Q = 3, 4, 2, 3


def _reference_meta_loss(model: Conv4, lrs: torch.Tensor, episodes: Episodes, steps: int,
                         first_order: bool) -> torch.Tensor:
    """One task at a time, with torch.autograd.grad(create_graph=True): the textbook MAML."""
    names = [n for n, _ in model.named_parameters()]
    total = 0.0
    for t in range(TASKS):
        fast = list(model.parameters())
        for _ in range(steps):
            logits = functional_call(model, dict(zip(names, fast)), (episodes.support_x[t],))
            loss = F.cross_entropy(logits, episodes.support_y[t])
            grads = torch.autograd.grad(loss, fast, create_graph=not first_order)
            fast = [p - lr * g for p, lr, g in zip(fast, lrs, grads)]
        logits = functional_call(model, dict(zip(names, fast)), (episodes.query_x[t],))
        total = total + F.cross_entropy(logits, episodes.query_y[t])
    return total / TASKS


def _maml(lr: float, learn: bool = False) -> MAML:
    torch.manual_seed(3)
    return MAML(Conv4(1, N, width=5), lr, learn).double()


@pytest.mark.parametrize("lr", [0.4, -0.4, 0.0])
@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("first_order", [False, True])
def test_meta_gradient_matches_per_task_autograd_reference(lr, steps, first_order, make_episodes):
    maml, episodes = _maml(lr), make_episodes(seed=1)
    params = list(maml.model.parameters())
    ours = torch.autograd.grad(maml(episodes, steps, first_order=first_order).query_loss, params)
    reference = torch.autograd.grad(
        _reference_meta_loss(maml.model, maml.inner_lrs, episodes, steps, first_order), params)
    for a, b in zip(ours, reference):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_first_and_second_order_differ_when_the_rate_is_not_zero(make_episodes):
    maml, episodes = _maml(0.4), make_episodes(seed=1)
    params = list(maml.model.parameters())
    second = torch.autograd.grad(maml(episodes, 1).query_loss, params)
    first = torch.autograd.grad(maml(episodes, 1, first_order=True).query_loss, params)
    assert max((a - b).abs().max().item() for a, b in zip(first, second)) > 1e-6


def test_learned_rates_get_the_reference_gradient(make_episodes):
    maml, episodes = _maml(0.1, learn=True), make_episodes(seed=1)
    with torch.no_grad():
        maml.inner_lrs.copy_(torch.linspace(-0.3, 0.3, len(maml.inner_lrs)))
    ours = torch.autograd.grad(maml(episodes, 2).query_loss, maml.inner_lrs)[0]
    reference = torch.autograd.grad(
        _reference_meta_loss(maml.model, maml.inner_lrs, episodes, 2, False), maml.inner_lrs)[0]
    torch.testing.assert_close(ours, reference, rtol=1e-9, atol=1e-11)
    assert maml.inner_lrs in maml.meta_parameters()


def test_zero_rate_leaves_the_weights_unchanged(make_episodes):
    maml, episodes = _maml(0.0), make_episodes(seed=1)
    fast = maml.adapt(episodes.support_x, episodes.support_y, steps=3)
    for p, f in zip(maml.model.parameters(), fast):
        torch.testing.assert_close(f, p.expand_as(f))


def test_evaluation_mode_keeps_no_graph_and_matches_training_mode(make_episodes):
    maml, episodes = _maml(0.4), make_episodes(seed=1)
    tracked = maml(episodes, 2)
    untracked = maml(episodes, 2, track_graph=False)
    assert not untracked.query_logits.requires_grad
    torch.testing.assert_close(tracked.query_logits.detach(), untracked.query_logits)


def test_fast_weights_of_a_finished_meta_batch_are_freed(make_episodes):
    # `higher` keeps every fast-weight list it is given when it tracks higher grads;
    # our patched model must not, or memory grows by megabytes per iteration.
    import gc
    import weakref

    maml, episodes = _maml(0.4), make_episodes(seed=1)
    first = maml(episodes, 2)
    ref = weakref.ref(first.fast_params[0])
    del first
    maml(episodes, 2)
    gc.collect()
    assert ref() is None


def _meta_gradients(maml: MAML, episodes: Episodes, steps: int, first_order: bool = False):
    wrt = maml.meta_parameters()
    return torch.autograd.grad(maml(episodes, steps, first_order=first_order).query_loss, wrt)


@pytest.mark.parametrize("learn,first_order", [(False, False), (True, False), (False, True)])
def test_recomputed_steps_give_the_same_meta_gradient(learn, first_order, make_episodes):
    episodes = make_episodes(seed=1)
    kept, recomputed = _maml(0.3, learn), _maml(0.3, learn)
    recomputed.recompute_steps = True
    for a, b in zip(_meta_gradients(kept, episodes, 3, first_order),
                    _meta_gradients(recomputed, episodes, 3, first_order)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13)


def _bytes_kept_for_backward(maml: MAML, episodes: Episodes, steps: int, first_order: bool = False) -> int:
    """Bytes autograd saves for the backward pass (unpacked views counted once per save)."""
    kept = []

    def pack(tensor):
        kept.append(tensor.numel() * tensor.element_size())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        maml(episodes, steps, first_order=first_order)
    return sum(kept)


def test_recomputed_steps_keep_far_less_per_added_step(make_episodes):
    episodes = make_episodes(seed=1)
    kept, recomputed = _maml(0.3), _maml(0.3)
    recomputed.recompute_steps = True
    per_step = {name: _bytes_kept_for_backward(m, episodes, 4) - _bytes_kept_for_backward(m, episodes, 2)
                for name, m in (("kept", kept), ("recomputed", recomputed))}
    assert per_step["recomputed"] * 5 < per_step["kept"]


@pytest.mark.parametrize("lrs", [torch.tensor(0.3), torch.linspace(-0.2, 0.4, 18)])
def test_one_step_weights_equal_one_adaptation_step(lrs, make_episodes):
    maml, episodes = _maml(0.1), make_episodes(seed=1)
    start, gradients = maml.inner_gradients(episodes.support_x, episodes.support_y)
    adapted = maml.adapt(episodes.support_x, episodes.support_y, 1, lrs, track_graph=False)
    for a, b in zip(maml.one_step_weights(gradients, lrs, start), adapted):
        torch.testing.assert_close(a, b)


def test_first_order_builds_no_graph_of_the_inner_gradient(make_episodes):
    # Second order keeps the graph of each inner gradient for the meta-gradient; first
    # order treats the gradient as a constant and must not build that graph at all.
    episodes = make_episodes(seed=1)
    maml = _maml(0.3)
    second, first = (_bytes_kept_for_backward(maml, episodes, 2, order) for order in (False, True))
    assert first < 0.7 * second
