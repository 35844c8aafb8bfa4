"""The meta-training loop: progress, validation, atomic checkpoints, resume, divergence.

``train(config, run_dir)`` is idempotent: a finished run is returned as it is, an
interrupted one resumes from its last checkpoint (and ends with the same parameters as
an uninterrupted run), and a folder holding another configuration is refused.

With ``patience`` > 0 training stops early once that many validations in a row have not
beaten the best validation accuracy, and the run ends with the best validation's
parameters (which its checkpoint then holds): networks are compared at convergence, not
at a budget that favours the settings that learn fastest. ``stop_on`` says which
accuracy: at the test-time rate, or at the best test rate of either sign (which a
network trained at a rate <= 0 needs: at its own rate it scores at or below chance).
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from mamllib import checkpoint as ckpt
from mamllib.config import TEST_FIELDS, Config
from mamllib.data import FewShotDataset, check_dataset, load_dataset
from mamllib.data.sampler import TrainingSampler
from mamllib.evaluate import (Score, adaptation_rates, best_rate_score, penalty_terms, score, task_pool,
                              training_score)
from mamllib.files import atomic_write_json
from mamllib.maml import MAML, Adapted, build_maml
from mamllib.models import resolve_device
from mamllib.penalty import surrogate

FINISHED = ("completed", "diverged")


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def _fresh_metrics(config: Config, device: torch.device) -> dict[str, Any]:
    return {
        "status": "running", "config_hash": config.training_hash(), "config": config.to_dict(),
        "iterations_done": 0, "diverged_at": None, "best_iteration": None, "stopped_at": None,
        "wall_time_s": 0.0,
        "history": {"iteration": [], "loss": [], "accuracy": []},
        "validation": [], "penalty_terms": [], "inner_lr_trajectory": {"iteration": [], "lrs": []},
        "test": None,
        "environment": {"torch": str(torch.__version__), "python": platform.python_version(),
                        "machine": platform.machine(), "device": _device_name(device)},
    }


def _record(metrics: dict[str, Any], iteration: int, loss: float, acc: float) -> None:
    history = metrics["history"]
    history["iteration"].append(iteration)
    history["loss"].append(loss)
    history["accuracy"].append(acc)


def _record_rates(metrics: dict[str, Any], done: int, maml: MAML) -> None:
    """The learned rates after ``done`` outer steps (0: as initialised)."""
    trajectory = metrics["inner_lr_trajectory"]
    trajectory["iteration"].append(done)
    trajectory["lrs"].append(maml.inner_lrs.detach().cpu().tolist())


def _save(run_dir: Path, maml: MAML, optimizer: torch.optim.Optimizer, sampler: TrainingSampler,
          metrics: dict[str, Any], best: dict[str, torch.Tensor] | None = None) -> None:
    """Checkpoint first, metrics second: metrics never claim more than the checkpoint holds."""
    ckpt.save_checkpoint(run_dir, {
        "config_hash": metrics["config_hash"], "iteration": metrics["iterations_done"],
        "model": maml.state_dict(), "optimizer": optimizer.state_dict(),
        "sampler_rng": sampler.state(), "torch_rng": torch.get_rng_state(), "metrics": metrics,
        **({"best_model": best} if best is not None else {}),
    })
    atomic_write_json(run_dir / ckpt.METRICS, metrics)


def _finished_metrics(run_dir: Path, config: Config) -> dict[str, Any] | None:
    """The metrics of a finished run of this config in ``run_dir``, if there is one."""
    path = run_dir / ckpt.METRICS
    if not path.exists():
        return None
    metrics = ckpt.read_json(path)
    if metrics.get("config_hash") != config.training_hash():
        raise ckpt.CheckpointError(
            f"{run_dir}: holds a run with config hash {metrics.get('config_hash')}, not "
            f"{config.training_hash()}; use another --out folder, or the same settings to resume it")
    return metrics if metrics.get("status") in FINISHED else None


def _test_settings_changed(run_dir: Path, config: Config, metrics: dict[str, Any]) -> bool:
    """Whether a finished run was meta-tested with other test-time settings than ``config``'s."""
    if metrics["status"] != "completed":
        return False
    # Both records must agree with the request: a re-scoring interrupted between writing
    # them leaves them apart, and is then simply done again.
    stored = ckpt.read_run_config(run_dir)
    wanted = {name: getattr(config, name) for name in TEST_FIELDS}
    return (metrics["test"].get("settings") != wanted
            or any(getattr(stored, n) != v for n, v in wanted.items()))


def _rescore(run_dir: Path, config: Config, metrics: dict[str, Any], dataset: FewShotDataset,
             device: torch.device, log) -> dict[str, Any]:
    """Meta-test a finished run again with ``config``'s test-time settings, and record them."""
    maml = build_maml(config, dataset).to(device)
    ckpt.load_state(maml, ckpt.load_checkpoint(run_dir, config.training_hash()), run_dir)
    result = _meta_test(config, maml, dataset, device, metrics)
    atomic_write_json(run_dir / ckpt.METRICS, metrics)
    ckpt.write_run_config(run_dir, config)
    log(f"{run_dir}: already trained; meta-tested again with the new test-time settings: {result}")
    return metrics


def _meta_test(config: Config, maml: MAML, dataset: FewShotDataset, device: torch.device,
               metrics: dict[str, Any]) -> Score:
    """Score on the fixed meta-test tasks, recorded in ``metrics['test']``."""
    started = time.perf_counter()
    result = score(config, maml, dataset, "test", config.test_tasks, device)
    on_training_tasks = training_score(config, maml, dataset, device)
    metrics["wall_time_s"] += time.perf_counter() - started
    metrics.update(status="completed", test={
        **result.to_dict(), "test_inner_lr": adaptation_rates(config, maml).cpu().tolist(),
        "test_inner_steps": config.test_inner_steps,
        "settings": {name: getattr(config, name) for name in TEST_FIELDS}},
        train_tasks_score=on_training_tasks.to_dict())
    return result


@dataclass
class OpenRun:
    """One run in training: its folder, network, optimiser, task stream and metrics."""

    config: Config
    run_dir: Path
    maml: MAML
    optimizer: torch.optim.Optimizer
    sampler: TrainingSampler
    metrics: dict[str, Any]
    best: dict[str, torch.Tensor] | None = None  # early stopping: the best validation's parameters

    def save(self) -> None:
        _save(self.run_dir, self.maml, self.optimizer, self.sampler, self.metrics, self.best)


def is_trained(config: Config, run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a finished run of ``config``, meta-tested with its test-time
    settings (read from the run's files; nothing is loaded or written)."""
    try:
        finished = _finished_metrics(run_dir, config)
        return finished is not None and not _test_settings_changed(run_dir, config, finished)
    except ckpt.CheckpointError:
        return False


def finished_run(config: Config, run_dir: Path, dataset: FewShotDataset, device: torch.device,
                 log=print) -> dict[str, Any] | None:
    """The metrics of a finished run of ``config`` in ``run_dir`` (meta-tested again first
    when asked for other test-time settings), or None when it still has to train."""
    finished = _finished_metrics(run_dir, config)
    if finished is not None and not _test_settings_changed(run_dir, config, finished):
        log(f"{run_dir}: already {finished['status']}; nothing to do")
        return finished
    if finished is not None:
        return _rescore(run_dir, config, finished, dataset, device, log)
    return None


def open_run(config: Config, run_dir: Path, dataset: FewShotDataset, device: torch.device,
             log=print) -> OpenRun:
    """A fresh run in ``run_dir``, or the interrupted one there resumed from its checkpoint."""
    maml = build_maml(config, dataset).to(device)
    optimizer = torch.optim.Adam(maml.meta_parameters(), lr=config.outer_lr)
    sampler = training_sampler(config, dataset)
    metrics, best = _fresh_metrics(config, device), None
    if (run_dir / ckpt.CHECKPOINT).exists():
        state = ckpt.load_checkpoint(run_dir, config.training_hash())
        ckpt.load_state(maml, state, run_dir)
        ckpt.load_state(optimizer, state, run_dir, key="optimizer")
        sampler.set_state(state["sampler_rng"])
        torch.set_rng_state(state["torch_rng"])
        metrics, best = state["metrics"], state.get("best_model")
        log(f"{run_dir}: resuming at iteration {metrics['iterations_done']}")
    if config.learn_inner_lr and not metrics["inner_lr_trajectory"]["iteration"]:
        metrics["inner_lr_trajectory"]["names"] = maml.rate_names()  # the tensor each rate steps
        _record_rates(metrics, 0, maml)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt.write_run_config(run_dir, config)
    return OpenRun(config, run_dir, maml, optimizer, sampler, metrics, best)


def training_sampler(config: Config, dataset: FewShotDataset) -> TrainingSampler:
    """The run's meta-training task stream: fresh tasks, or draws from its fixed pool."""
    return TrainingSampler(dataset.splits["train"], config.n_way, config.k_shot, config.n_query, config.seed,
                           task_pool(config, dataset), config.label_noise)


def finish_run(run: OpenRun, dataset: FewShotDataset, device: torch.device, log=print) -> dict[str, Any]:
    """Meta-test a run that trained to the end and save it; a diverged run is only reported."""
    metrics = run.metrics
    if metrics["status"] == "diverged":
        atomic_write_json(run.run_dir / ckpt.METRICS, metrics)
        log(f"{run.run_dir}: diverged at iteration {metrics['diverged_at']} "
            f"(loss above {run.config.max_loss:g} or not finite)")
        return metrics
    if run.best is not None:  # early stopping keeps the best validation's parameters
        run.maml.load_state_dict(run.best)
        trajectory = metrics["inner_lr_trajectory"]  # learned rates: end with the ones kept
        kept = [k for k, done in enumerate(trajectory["iteration"]) if done <= metrics["best_iteration"]]
        trajectory["iteration"] = [trajectory["iteration"][k] for k in kept]
        trajectory["lrs"] = [trajectory["lrs"][k] for k in kept]
    result = _meta_test(run.config, run.maml, dataset, device, metrics)
    run.save()
    stopped = f" (stopped early at iteration {metrics['stopped_at']})" if metrics.get("stopped_at") else ""
    log(f"{run.run_dir}: meta-test accuracy {result}{stopped}")
    return metrics


def diverges(config: Config, loss: float) -> bool:
    """A query loss that ends the run: not finite, or above ``max_loss``."""
    return not math.isfinite(loss) or loss > config.max_loss


def record_step(run: OpenRun, iteration: int, loss: float, acc: float) -> int:
    """Record outer step ``iteration`` (its loss, accuracy and learned rates); returns the
    number of steps done."""
    _record(run.metrics, iteration, loss, acc)
    run.metrics["iterations_done"] = done = iteration + 1
    if run.config.learn_inner_lr:
        _record_rates(run.metrics, done, run.maml)
    return done


def due(done: int, every: int, config: Config) -> bool:
    """Whether something done every ``every`` steps (and at the end) is due after ``done``."""
    return done % every == 0 or done == config.iterations


def validate(run: OpenRun, dataset: FewShotDataset, device: torch.device) -> None:
    """Score the validation tasks; with early stopping, keep the parameters of the best
    (by :func:`stopping_accuracy`). With ``stop_on="best_rate"`` also record the test rate
    of either sign that scores best and its accuracy. With ``log_penalty``, log the terms
    of the penalty expansion on a few of the tasks too (``penalty_terms``): how training
    at each rate moves the gradient norms and their alignment."""
    config, history = run.config, run.metrics["validation"]
    if config.stop_on == "best_rate":
        val, rate, best = best_rate_score(config, run.maml, dataset, "val", config.val_tasks, device)
        entry = {"iteration": run.metrics["iterations_done"], **val.to_dict(),
                 "best_rate": rate, "best_rate_accuracy": best.accuracy}
    else:
        val = score(config, run.maml, dataset, "val", config.val_tasks, device)
        entry = {"iteration": run.metrics["iterations_done"], **val.to_dict()}
    watched = stopping_accuracy(config, entry)
    if config.patience and all(watched > stopping_accuracy(config, v) for v in history):
        run.best = {name: t.detach().clone() for name, t in run.maml.state_dict().items()}
        run.metrics["best_iteration"] = run.metrics["iterations_done"]
    history.append(entry)
    if config.log_penalty and config.method == "maml":  # the expansion of MAML's own objective
        run.metrics["penalty_terms"].append(
            {"iteration": run.metrics["iterations_done"], **penalty_terms(config, run.maml, dataset, device)})


def stopping_accuracy(config: Config, entry: dict[str, Any]) -> float:
    """The validation accuracy early stopping watches: at the test-time rate, or at the best
    rate of either sign (``stop_on``)."""
    return entry["best_rate_accuracy"] if config.stop_on == "best_rate" else entry["accuracy"]


def stops_early(run: OpenRun) -> bool:
    """Whether ``patience`` validations in a row have not beaten the best one (read from the
    recorded validations, so a resumed run decides as the uninterrupted one did)."""
    accuracies = [stopping_accuracy(run.config, v) for v in run.metrics["validation"]]
    if not run.config.patience or not accuracies:
        return False
    best = accuracies.index(max(accuracies))
    return len(accuracies) - 1 - best >= run.config.patience


def stop_early(run: OpenRun) -> bool:
    """Record an early stop when one is due; returns whether the run stops."""
    if stops_early(run):
        run.metrics["stopped_at"] = run.metrics["iterations_done"]
        return True
    return False


def train(config: Config, run_dir: Path, dataset: FewShotDataset | None = None,
          log=print) -> dict[str, Any]:
    """Meta-train (or resume, or return a finished run) and meta-test; returns metrics."""
    run_dir = Path(run_dir)
    device = resolve_device(config.device)
    dataset = dataset or load_dataset(config)
    check_dataset(config, dataset)
    finished = finished_run(config, run_dir, dataset, device, log)
    if finished is not None:
        return finished
    run = open_run(config, run_dir, dataset, device, log)
    meta_train(run, dataset, device)
    return finish_run(run, dataset, device, log)


def outer_objective(config: Config, learner, episodes) -> Adapted:
    """The meta-training objective of ``config`` on a meta-batch: MAML's or the surrogate's."""
    if config.objective == "surrogate":
        return surrogate(learner, episodes)
    return learner(episodes, config.inner_steps, first_order=config.first_order)


def meta_train(run: OpenRun, dataset: FewShotDataset, device: torch.device) -> None:
    """Outer loop from ``metrics['iterations_done']`` to ``config.iterations``."""
    config, metrics = run.config, run.metrics
    start = metrics["iterations_done"]
    bar = tqdm(range(start, config.iterations), initial=start, total=config.iterations,
               desc="meta-training", disable=None)
    clock = time.perf_counter()
    for iteration in bar:
        if stop_early(run):
            break
        out = outer_objective(config, run.maml, run.sampler.sample(config.meta_batch).to(device))
        loss = out.query_loss.item()
        if diverges(config, loss):
            metrics.update(status="diverged", diverged_at=iteration)
            break
        run.optimizer.zero_grad(set_to_none=True)
        out.query_loss.backward()
        run.optimizer.step()
        done = record_step(run, iteration, loss, out.query_accuracy.mean().item())
        bar.set_postfix(loss=f"{loss:.3f}", acc=f"{metrics['history']['accuracy'][-1]:.2f}")
        if due(done, config.val_every, config):
            validate(run, dataset, device)
        if due(done, config.checkpoint_every, config):
            metrics["wall_time_s"] += time.perf_counter() - clock
            clock = time.perf_counter()
            run.save()
    metrics["wall_time_s"] += time.perf_counter() - clock
    bar.close()
