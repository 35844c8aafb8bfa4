"""The Conv4 backbone of Finn et al. (2017), written so that tasks can be batched.

Every parameter may carry an optional leading *task* dimension. With plain parameters
the network is the usual Conv4; with parameters of shape ``[T, *shape]`` (one fast-weight
copy per task, as the MAML inner loop produces) the ``T`` tasks run in one pass:
convolutions become grouped convolutions and batch norm normalises each task's
channels with that task's own batch statistics. This is what lets one inner-loop step
adapt a whole meta-batch at once instead of looping over tasks.

Inputs are ``[B, C, H, W]`` (one task) or ``[T, B, C, H, W]`` (``T`` tasks, the same
``B`` in each); parameters are plain or carry that same ``T``. Internally activations
live as ``[B, T*C, H, W]``.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from mamllib.errors import ConfigError


# Activations live channels-last wherever no gradient is taken through them and in an
# evaluation's inner steps (:func:`evaluating`): on a CPU, batch norm and max-pooling of the
# task-grouped layout run several times faster so (an evaluation's support gradient ~1.7x).
# Meta-training and the penalty check keep torch's default layout: channels-last batch norm
# sums less precisely in float32 (its output's error ~10x the default layout's), and a
# meta-gradient through it had ~3000x the round-off (1.5e-3 of its scale against 5.5e-7 on
# `quick`), although a step whose query pass ran channels-last was ~15% faster (with its
# double backward channels-last too, ~20% slower). An analysis's predictions came out the
# same in both layouts, on every readout of 200 test tasks.
_EVALUATING = contextvars.ContextVar("evaluating", default=False)


@contextmanager
def evaluating(flag: bool = True) -> Iterator[None]:
    """With ``flag``, the gradients taken inside only adapt a network for evaluation (no
    meta-gradient and no Taylor check goes through them): the activations may then live
    channels-last."""
    token = _EVALUATING.set(flag)
    try:
        yield
    finally:
        _EVALUATING.reset(token)


def _channels_last() -> bool:
    return not torch.is_grad_enabled() or _EVALUATING.get()


def _flat_over_tasks(param: torch.Tensor, tasks: int, unbatched_dim: int) -> torch.Tensor:
    """``[T, *shape]`` or ``shape`` -> ``[T*shape[0], *shape[1:]]`` (grouped-conv layout)."""
    if param.dim() == unbatched_dim:
        param = param.unsqueeze(0).expand(tasks, *param.shape)
    return param.reshape(tasks * param.shape[1], *param.shape[2:])


class ConvBlock(nn.Module):
    """conv3x3 -> batch norm on batch statistics -> ReLU -> 2x2 max-pool (Finn et al. 2017).

    ``smooth=True`` swaps in softplus and average pooling: a twice-differentiable network
    for checking Taylor expansions, whose higher-order terms ReLU and max-pool kinks spoil.
    """

    def __init__(self, in_channels: int, out_channels: int, smooth: bool = False) -> None:
        super().__init__()
        self.smooth = smooth
        conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv_weight = nn.Parameter(conv.weight.detach().clone())
        self.conv_bias = nn.Parameter(conv.bias.detach().clone())
        self.bn_weight = nn.Parameter(torch.ones(out_channels))
        self.bn_bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, tasks: int, reference: int = 0) -> torch.Tensor:
        """``x``: ``[B, tasks*C_in, H, W]`` -> ``[B, tasks*C_out, H/2, W/2]``. With
        ``reference`` > 0 batch norm uses the statistics of the first ``reference`` examples
        of the batch (a task's support set) for all of them."""
        weight = _flat_over_tasks(self.conv_weight, tasks, 4)
        bias = _flat_over_tasks(self.conv_bias.unsqueeze(-1), tasks, 2).squeeze(-1)
        x = F.conv2d(x, weight, bias, padding=1, groups=tasks)
        gamma = _flat_over_tasks(self.bn_weight.unsqueeze(-1), tasks, 2).squeeze(-1)
        beta = _flat_over_tasks(self.bn_bias.unsqueeze(-1), tasks, 2).squeeze(-1)
        # No running statistics: MAML normalises with the statistics of the batch at
        # hand, at training and at test time alike (Finn et al. 2017).
        if reference:
            stats = x[:reference]
            x = F.batch_norm(x, stats.mean((0, 2, 3)), stats.var((0, 2, 3), unbiased=False), gamma, beta,
                             training=False)
        else:
            x = F.batch_norm(x, None, None, gamma, beta, training=True)
        if self.smooth:
            return F.avg_pool2d(F.softplus(x), 2)
        # relu(maxpool(x)) == maxpool(relu(x)); pooling first runs ReLU on 4x fewer values.
        return F.relu(F.max_pool2d(x, 2))


class Conv4(nn.Module):
    """Four conv blocks (``features``) followed by a linear head (``head``).

    Args:
        in_channels: 1 for grayscale (glyphs, Omniglot), 3 for RGB (Mini-ImageNet).
        n_way: number of output classes of the head.
        width: filters per conv layer (Finn et al. use 32 on Mini-ImageNet, 64 on Omniglot).
        image_size: side of the square input, to size the head.
        smooth: softplus and average pooling instead of ReLU and max-pooling.
    """

    def __init__(self, in_channels: int, n_way: int, width: int = 32, image_size: int = 28,
                 smooth: bool = False) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            ConvBlock(in_channels if i == 0 else width, width, smooth) for i in range(4)
        )
        side = image_size
        for _ in range(4):
            side //= 2
        self.feature_dim = width * side * side
        head = nn.Linear(self.feature_dim, n_way)
        self.head_weight = nn.Parameter(head.weight.detach().clone())
        self.head_bias = nn.Parameter(head.bias.detach().clone())

    def activations(self, x: torch.Tensor, reference: int = 0,
                    every_block: bool = True) -> list[torch.Tensor]:
        """Each block's output, flattened: ``[B, D_l]`` for one task, ``[T, B, D_l]`` for ``T``;
        ``reference`` > 0: batch norm with the statistics of each task's first ``reference``
        examples (:class:`ConvBlock`). Without ``every_block``, the last block's only (the
        others are not flattened: a copy each, from the channels-last layout)."""
        single = x.dim() == 4
        if single:
            x = x.unsqueeze(0)
        tasks, batch = x.shape[:2]
        h = x.transpose(0, 1).reshape(batch, tasks * x.shape[2], *x.shape[3:])
        if _channels_last():
            h = h.contiguous(memory_format=torch.channels_last)
        outputs = []
        for index, block in enumerate(self.blocks, start=1):
            h = block(h, tasks, reference)
            if every_block or index == len(self.blocks):
                flat = h.reshape(batch, tasks, -1).transpose(0, 1)
                outputs.append(flat[0] if single else flat)
        return outputs

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate representation: ``[B, D]`` for one task, ``[T, B, D]`` for ``T``."""
        return self.activations(x, every_block=False)[-1]

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """The linear head on given features (``[B, D]`` or ``[T, B, D]``)."""
        weight, bias = self.head_weight, self.head_bias
        if features.dim() == 2 and weight.dim() == 2:
            return F.linear(features, weight, bias)
        if features.dim() == 2:
            features = features.unsqueeze(0).expand(weight.shape[0], *features.shape)
        if weight.dim() == 2:
            weight = weight.unsqueeze(0).expand(features.shape[0], *weight.shape)
            bias = bias.unsqueeze(0).expand(features.shape[0], *bias.shape)
        return torch.baddbmm(bias.unsqueeze(1), features, weight.transpose(1, 2))

    def forward(self, x: torch.Tensor, output: str = "logits", reference: int = 0):
        """Logits; ``output="features"`` for the representation, ``"activations"`` for
        ``(every block's output, logits)`` from one pass; ``reference`` as in
        :meth:`activations`.

        The choice is an argument of ``forward`` because a `higher`-patched copy of the
        model only sees fast weights inside ``forward``.
        """
        activations = self.activations(x, reference, every_block=output == "activations")
        if output == "features":
            return activations[-1]
        logits = self.classify(activations[-1])
        return (activations, logits) if output == "activations" else logits


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when it is there and the CPU otherwise."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' is not allowed: no CUDA device is available; use auto or cpu")
    return torch.device(name)
