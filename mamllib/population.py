"""A population of MAMLs meta-trained as one batched computation.

Several settings of one training configuration, differing in inner rate and seed, train
in lockstep. Each member keeps its own meta-parameters, inner rate(s), Adam state and
task stream, but every outer step runs all members' meta-batches through the network at
once. The task-batched Conv4 already runs a meta-batch of ``T`` tasks as one grouped
computation; a population of ``M`` members is ``M*T`` task copies, copy ``(m, t)``
starting from member ``m``'s meta-parameters. Member ``m``'s loss depends only on its own
meta-parameters, so the summed loss gives each member exactly its own meta-gradient,
and Adam, being elementwise, on the stacked tensors ``[M, *shape]`` is each member's own
Adam.

Every member lives in its own run folder, with the checkpoint, metrics and config that a
run trained alone writes: a member can be resumed alone and a lone run in a population.
A member whose loss diverges is recorded as ``diverged`` and leaves; the others redo that
step without it and go on.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm import tqdm

from mamllib.config import DEFAULT_POPULATION, Config
from mamllib.errors import CheckpointError
from mamllib.data import FewShotDataset, check_dataset, load_dataset
from mamllib.data.sampler import Episodes
from mamllib.maml import MAML, TaskBatched
from mamllib.models import resolve_device
from mamllib.train import (OpenRun, diverges, due, finish_run, finished_run, meta_train, open_run,
                           outer_objective, record_step, stop_early, validate)


def population_key(config: Config) -> Config:
    """What members of one population share: everything but the inner rate(s), the seed and
    the test-time rate (each member is scored at its own)."""
    return config.replace(inner_lr=0.0, tensor_inner_lrs="", seed=0, test_inner_lr=None)


class Population(TaskBatched):
    """``M`` MAMLs of one architecture as stacked meta-parameters ``[M, *shape]``.

    Built from the members' own MAMLs and Adam optimisers (fresh or resumed), whose
    state it stacks; :meth:`write_back` copies each member's slice back into them, so
    that a member is validated, checkpointed and meta-tested exactly as a lone run is.
    """

    def __init__(self, mamls: Sequence[MAML], optimizers: Sequence[torch.optim.Optimizer],
                 outer_lr: float) -> None:
        self.mamls, self.optimizers = list(mamls), list(optimizers)
        first = self.mamls[0]
        self.fmodel, self.recompute_steps = first.fmodel, first.recompute_steps
        members = [m.meta_parameters() for m in self.mamls]
        # A lone MAML's meta-parameters are its learned rates (if any), then the network's.
        self.learned = isinstance(first.inner_lrs, torch.nn.Parameter)
        offset = int(self.learned)
        assert [id(p) for p in members[0][offset:]] == [id(p) for p in first.model.parameters()]
        self.stacked = [torch.stack([params[i].detach() for params in members]).requires_grad_()
                        for i in range(len(members[0]))]
        self.weights = self.stacked[offset:]
        self.rates = self.stacked[0] if self.learned else torch.stack([m.inner_lrs for m in self.mamls])
        self.optimizer = torch.optim.Adam(self.stacked, lr=outer_lr)
        self._stack_optimizer_state(members)

    def __call__(self, *args: Any, **kwargs: Any):
        return self.forward(*args, **kwargs)  # as a MAML module is called

    @property
    def size(self) -> int:
        return len(self.mamls)

    def _stack_optimizer_state(self, members: list[list[torch.nn.Parameter]]) -> None:
        states = [[opt.state.get(p) for p in params] for opt, params in zip(self.optimizers, members)]
        for i, stacked in enumerate(self.stacked):
            per_member = [member[i] for member in states]
            if per_member[0] is None:  # no step taken yet
                continue
            self.optimizer.state[stacked] = {
                key: value.clone() if value.dim() == 0 else torch.stack([s[key] for s in per_member])
                for key, value in per_member[0].items()}  # 0-dim: the step count, the same for all

    def write_back_rates(self) -> None:
        """Copy every member's learned rates into its own MAML (what a step records)."""
        with torch.no_grad():
            for k, maml in enumerate(self.mamls):
                maml.inner_lrs.copy_(self.rates[k])

    def write_back(self) -> None:
        """Copy every member's meta-parameters and Adam state into its own MAML and optimiser."""
        with torch.no_grad():
            for k, (maml, optimizer) in enumerate(zip(self.mamls, self.optimizers)):
                for stacked, param in zip(self.stacked, maml.meta_parameters()):
                    param.copy_(stacked[k])
                    state = self.optimizer.state.get(stacked)
                    if state:
                        optimizer.state[param] = {key: value.clone() if value.dim() == 0 else value[k].clone()
                                                  for key, value in state.items()}

    def task_copies(self, tasks: int) -> list[torch.Tensor]:
        """Each member's meta-parameters as ``tasks / M`` copies, member after member."""
        per_member = tasks // self.size
        return [w.unsqueeze(1).expand(self.size, per_member, *w.shape[1:]).reshape(tasks, *w.shape[1:])
                for w in self.weights]

    def step_rates(self, tasks: int, lrs=None, dtype: torch.dtype | None = None) -> list[torch.Tensor]:
        """Each copy's rate for each tensor, ``[tasks, 1, ...]``: its member's own."""
        if lrs is not None:
            raise ValueError("a population adapts at its members' own rates; score a member alone instead")
        rates = self.rates.to(dtype or self.rates.dtype)
        per_member = tasks // self.size
        return [rates[:, i].repeat_interleave(per_member).view(-1, *[1] * (w.dim() - 1))
                for i, w in enumerate(self.weights)]

    def outer_step(self, config: Config,
                   episodes: Sequence[Episodes]) -> tuple[list[float], list[float], list[int]]:
        """One outer step of every member on its own meta-batch. Returns each member's query
        loss and accuracy, and the members whose loss diverges: when there are any, no step
        is taken (the others redo it without them)."""
        batch = Episodes(*(torch.cat(parts) for parts in zip(*(
            (e.support_x, e.support_y, e.query_x, e.query_y) for e in episodes))))
        out = outer_objective(config, self, batch)
        per_member = out.task_objectives.view(self.size, -1)
        losses = per_member.sum(1) / per_member.shape[1]  # as a lone run averages its tasks
        values = losses.tolist()
        diverged = [k for k, value in enumerate(values) if diverges(config, value)]
        if not diverged:
            self.optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
            self.optimizer.step()
        return values, out.query_accuracy.view(self.size, -1).mean(1).tolist(), diverged


def train_population(configs: Sequence[Config], run_dirs: Sequence[Path],
                     dataset: FewShotDataset | None = None, max_size: int | None = None,
                     log=print) -> list[dict[str, Any]]:
    """Train every ``(config, run_dir)`` as :func:`mamllib.train.train` would, and to the same
    end, the ones still to train in populations of at most ``max_size`` (members that share
    :func:`population_key` and the iteration they start from; by default the size measured
    best for their device, ``DEFAULT_POPULATION``). Returns each run's metrics; a
    run folder that cannot be used (another config's, a damaged checkpoint) is left as it is,
    ``{"status": "refused", "error": message}``, and the others train."""
    if len(configs) != len(run_dirs):
        raise ValueError("one run folder per config")
    results: dict[int, dict[str, Any]] = {}
    pending: dict[tuple, list[tuple[int, OpenRun]]] = {}
    datasets: dict[tuple, FewShotDataset] = {}
    first_of: dict[Path, int] = {}  # a folder asked for twice is trained once
    for index, (config, run_dir) in enumerate(zip(configs, map(Path, run_dirs))):
        folder = run_dir.resolve()
        if folder in first_of:
            if configs[first_of[folder]].training_hash() != config.training_hash():
                results[index] = {"status": "refused", "error": (
                    f"{run_dir}: also the folder of another setting of this call (learned rates, for one, "
                    f"are named by their seed only); train them one at a time with --out")}
            continue
        first_of[folder] = index
        data_key = (config.dataset, config.resolved_data_root, config.rotations)
        if data_key not in datasets:
            datasets[data_key] = dataset or load_dataset(config)
        data = datasets[data_key]
        check_dataset(config, data)
        device = resolve_device(config.device)
        try:
            finished = finished_run(config, run_dir, data, device, log)
            run = open_run(config, run_dir, data, device, log) if finished is None else None
        except CheckpointError as exc:  # this folder cannot be used; the others still train
            results[index] = {"status": "refused", "error": str(exc)}
            continue
        if finished is not None:
            results[index] = finished
            continue
        group = (population_key(config), run.metrics["iterations_done"], data_key)
        pending.setdefault(group, []).append((index, run))
    for (key, _, data_key), members in pending.items():
        device = resolve_device(key.device)
        # The baselines' inner loops (other head starts, head-only steps) are MAML's alone.
        size = 1 if key.method != "maml" else max_size or DEFAULT_POPULATION.get(device.type, 1)
        for start in range(0, len(members), size):
            chunk = members[start:start + size]
            if len(chunk) == 1:  # alone: the lone run's own loop
                meta_train(chunk[0][1], datasets[data_key], device)
            else:
                _train_together([run for _, run in chunk], datasets[data_key], device)
            for index, run in chunk:
                results[index] = finish_run(run, datasets[data_key], device, log)
    return [results.get(index) or results[first_of[Path(run_dirs[index]).resolve()]]
            for index in range(len(configs))]


def _train_together(runs: list[OpenRun], dataset: FewShotDataset, device: torch.device) -> None:
    """The outer loop of :func:`mamllib.train.meta_train` for a population of runs that
    start at the same iteration; a diverging member is recorded and leaves, and so does one
    that stops early."""
    config = runs[0].config
    alive = list(runs)
    population = _population(alive, config)
    start = runs[0].metrics["iterations_done"]
    bar = tqdm(range(start, config.iterations), initial=start, total=config.iterations,
               desc=f"meta-training {len(runs)} runs", disable=None)
    clock = time.perf_counter()
    for iteration in bar:
        going_on = [run for run in alive if not stop_early(run)]
        if len(going_on) < len(alive):  # validation wrote their parameters back
            alive = going_on
            if not alive:
                break
            population = _population(alive, config)
        episodes = [run.sampler.sample(config.meta_batch).to(device) for run in alive]
        losses, accuracies, diverged = population.outer_step(config, episodes)
        while diverged:  # record who diverged; the others redo the step without them
            for k in diverged:
                alive[k].metrics.update(status="diverged", diverged_at=iteration)
            population.write_back()
            keep = [k for k in range(len(alive)) if k not in diverged]
            alive, episodes = [alive[k] for k in keep], [episodes[k] for k in keep]
            if not alive:
                break
            population = _population(alive, config)
            losses, accuracies, diverged = population.outer_step(config, episodes)
        if not alive:
            break
        if config.learn_inner_lr:
            population.write_back_rates()  # each step's rates go into the run's trajectory
        for run, loss, acc in zip(alive, losses, accuracies):
            done = record_step(run, iteration, loss, acc)
        bar.set_postfix(runs=len(alive), loss=f"{sum(losses) / len(alive):.3f}")
        if due(done, config.val_every, config) or due(done, config.checkpoint_every, config):
            population.write_back()
        if due(done, config.val_every, config):
            for run in alive:
                validate(run, dataset, device)
        if due(done, config.checkpoint_every, config):
            # Each member's share of the population's time, so that a sweep's total adds up.
            share = (time.perf_counter() - clock) / len(alive)
            clock = time.perf_counter()
            for run in alive:
                run.metrics["wall_time_s"] += share
                run.save()
    if alive:
        population.write_back()
        share = (time.perf_counter() - clock) / len(alive)
        for run in alive:
            run.metrics["wall_time_s"] += share
    bar.close()


def _population(runs: list[OpenRun], config: Config) -> Population:
    return Population([run.maml for run in runs], [run.optimizer for run in runs], config.outer_lr)
