"""The trained baselines MAML is compared with: each tested for what defines it.

ANIL steps the head only; the zeroing trick starts every inner loop from a zero head;
Proto-MAML from the task's prototype head, through which the meta-gradient flows; and a
Prototypical Network is that head with no inner step, trained on Snell et al.'s loss.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mamllib.config import METHODS, profile
from mamllib.errors import ConfigError
from mamllib.latent import dot_product_predictions
from mamllib.maml import HEAD_TENSORS, MAML, task_losses
from mamllib.models import Conv4
from mamllib.train import train


def _maml(method: str, rate: float = 0.3, seed: int = 0, tensor_rates=None) -> MAML:
    torch.manual_seed(seed)
    return MAML(Conv4(1, 4, width=8), rate, tensor_rates=tensor_rates, method=method).double()


def _meta_gradient(maml: MAML, episodes, steps: int = 1) -> list[torch.Tensor]:
    out = maml(episodes, steps)
    return list(torch.autograd.grad(out.query_loss, maml.meta_parameters()))


def _snell_loss(maml: MAML, episodes) -> torch.Tensor:
    """Prototypical Networks' loss: cross-entropy of minus the squared Euclidean distance of
    each query's features to each class's mean support features."""
    support, query = maml.model.features(episodes.support_x), maml.model.features(episodes.query_x)
    one_hot = F.one_hot(episodes.support_y).double()
    prototypes = one_hot.transpose(1, 2) @ support / one_hot.sum(1).unsqueeze(-1)
    return task_losses(-torch.cdist(query, prototypes) ** 2, episodes.query_y).mean()


def test_anil_steps_the_head_only_and_its_meta_gradient_is_maml_with_a_frozen_body(make_episodes):
    anil, episodes = _maml("anil"), make_episodes(seed=2)
    names = anil.rate_names()
    fast = anil.adapt(episodes.support_x, episodes.support_y, 2)
    for name, before, after in zip(names, anil.model.parameters(), fast):
        if name in HEAD_TENSORS:
            assert not torch.allclose(after, before.expand_as(after))
        else:  # exactly the meta-parameters: never stepped
            assert torch.equal(after, before.expand_as(after))
    # MAML with rate 0 on every body tensor differentiates the body too; the same result.
    frozen = _maml("maml", tensor_rates=[0.0 if n not in HEAD_TENSORS else 0.3 for n in names])
    for a, b in zip(_meta_gradient(anil, episodes, 2), _meta_gradient(frozen, episodes, 2)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("rate", [0.4, -0.4])
def test_the_zeroing_trick_starts_from_a_zero_head_and_one_step_is_the_dot_product_rule(rate, make_episodes):
    maml, episodes = _maml("zeroing", rate), make_episodes(seed=3)
    head = [getattr(maml.model, name) for name in HEAD_TENSORS]
    assert all(not tensor.requires_grad and not tensor.any() for tensor in head)
    assert len(maml.meta_parameters()) == len(maml.rate_names()) - 2  # the head is not meta-learned
    logits = maml(episodes, 1, track_graph=False).query_logits
    with torch.no_grad():
        support, query = maml.model.features(episodes.support_x), maml.model.features(episodes.query_x)
    # The latent tests' theorem: one step from zero is the dot-product prototype rule.
    expected = dot_product_predictions(support, episodes.support_y, query, 4, sign=float(np.sign(rate)))
    np.testing.assert_array_equal(logits.argmax(-1).numpy(), expected)


def test_proto_maml_starts_from_the_prototype_head_and_without_steps_is_a_prototypical_network(make_episodes):
    proto, episodes = _maml("proto_maml"), make_episodes(seed=4)
    out = proto(episodes, 0)
    # 2 c.x - |c|^2 = |x|^2 - |x - c|^2: the same softmax as Snell et al.'s -|x - c|^2.
    torch.testing.assert_close(out.query_loss, _snell_loss(proto, episodes), rtol=1e-10, atol=1e-12)
    snell = torch.autograd.grad(_snell_loss(proto, episodes), proto.meta_parameters())
    for a, b in zip(_meta_gradient(proto, episodes, 0), snell):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    # With a step, the meta-gradient reaches the body through the prototypes as well.
    stepped = _meta_gradient(proto, episodes, 1)
    assert all(g.abs().sum() > 0 for g in stepped)


def test_one_step_shortcut_starts_where_each_method_starts(make_episodes):
    # The analysis scores a grid of rates from one support gradient at the start weights.
    episodes = make_episodes(seed=5)
    for method in METHODS:
        maml = _maml(method)
        start, gradients = maml.inner_gradients(episodes.support_x, episodes.support_y)
        adapted = maml.adapt(episodes.support_x, episodes.support_y, 1, torch.tensor(-0.2), track_graph=False)
        for a, b in zip(maml.one_step_weights(gradients, torch.tensor(-0.2), start), adapted):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("changes, field", [({"method": "reptile"}, "method"),
                                             ({"method": "protonet"}, "inner_steps"),
                                             ({"method": "protonet", "inner_steps": 0,
                                               "learn_inner_lr": True}, "learn_inner_lr"),
                                             ({"method": "anil", "objective": "surrogate"}, "objective")])
def test_a_method_that_cannot_train_so_is_a_one_line_error(changes, field):
    with pytest.raises(ConfigError, match=f"^{field}=") as error:
        profile("smoke", **changes)
    assert "\n" not in str(error.value)


def test_each_method_is_hashed_apart():
    # (MAML keeps the hash it had before methods existed: test_config's literal hashes.)
    base = profile("smoke")
    hashes = {profile("smoke", method=m, **({"inner_steps": 0} if m == "protonet" else {})).training_hash()
              for m in METHODS}
    assert len(hashes) == len(METHODS) and base.training_hash() in hashes


@pytest.mark.parametrize("method", [m for m in METHODS if m != "maml"])
def test_each_baseline_trains_end_to_end_and_keeps_what_defines_it(method, tmp_path, glyphs):
    steps = {"inner_steps": 0, "test_inner_steps": 0} if method == "protonet" else {}
    config = profile("smoke", method=method, inner_lr=0.4, **steps)
    metrics = train(config, tmp_path / method, glyphs, log=lambda *_: None)
    assert metrics["status"] == "completed" and 0 <= metrics["test"]["accuracy"] <= 1
    assert metrics["penalty_terms"] == []  # the expansion is of MAML's objective, not logged
    from mamllib.runs import load_run

    maml = load_run(tmp_path / method, glyphs).maml
    if method != "anil":  # the head is never used, so never trained
        assert not any(getattr(maml.model, n).any() for n in HEAD_TENSORS)
