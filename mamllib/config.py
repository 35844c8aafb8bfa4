"""One run's configuration: fields, named profiles, validation and a stable hash."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mamllib.errors import ConfigError

DATASETS = ("glyphs", "omniglot", "miniimagenet")
DEVICES = ("auto", "cpu", "cuda")
OBJECTIVES = ("maml", "surrogate")
# What meta-trains: MAML or one of the baselines it is compared with (the `method` field's
# help says what each is). Kept here so that the command line starts without importing torch.
METHODS = ("maml", "anil", "zeroing", "proto_maml", "protonet")
# The other fields a method needs: a Prototypical Network has no inner step, in training or
# at test time (where no step scores by its own rule).
METHOD_FIELDS = {"protonet": {"inner_steps": 0, "test_inner_steps": 0}}
FLOAT32_MAX = 3.4028234663852886e38
# The training inner rates of the full tier's main sweep (and of `sweep` by default). Every
# analysis re-scores each trained network at these rates at test time (RATE_GRID), so the
# full tier's train x test grid is square. Kept here so that the command line starts
# without importing torch.
DEFAULT_RATES = (-0.4, -0.1, -0.01, 0.0, 0.01, 0.1, 0.4)
RATE_GRID = DEFAULT_RATES
# The test rates of either sign among which a network's best is chosen on validation tasks:
# by early stopping with stop_on="best_rate", and by the few-task experiment's "best" view.
# The main sweep's rates and +-0.03, which the few-task experiment trains at.
BEST_RATE_GRID = (-0.4, -0.1, -0.03, -0.01, 0.0, 0.01, 0.03, 0.1, 0.4)
# What early stopping watches: the validation accuracy at the test-time rate, or at the best
# rate of BEST_RATE_GRID (a network trained at a rate <= 0 can score at chance, or below it,
# at its own rate and well at another).
STOP_ON = ("rate", "best_rate")
# Settings trained as one batched computation (mamllib.population) by `train --rates`
# and the report, by device. On 2 CPU cores a population is 7-18% slower than the same
# settings one after another (benchmarks/RESULTS.md): the step is compute-bound and larger
# batches outgrow the caches, so there each setting trains alone. On a GPU, which a Conv4
# on 28x28 images leaves idle, batching is the point; 8 is not measured here (no GPU).
DEFAULT_POPULATION = {"cpu": 1, "cuda": 8}
# The report's tiers: the default fits a laptop's budget, the full one runs every setting,
# for a cluster, and the sweep one holds the main sweep alone, at one seed, as the report did
# at commit d266885 (what each trains: mamllib.tiers.TIERS). Kept here so that the command
# line starts without torch.
REPORT_TIERS = ("default", "full", "sweep")
# Fields that change a finished run's meta-test result without changing its training.
TEST_FIELDS = ("test_inner_lr", "test_inner_steps", "test_tasks")
# Fields that change only what the analysis of a run computes (not its meta-test score):
# a page asks for them, whatever the run was trained or scored with.
CURVE_FIELDS = ("curve_tasks", "curve_steps")
# Training fields added after runs were first recorded: at these defaults they stay out of
# the training hash, so that the runs trained before them keep their hash and their folder.
LATER_FIELDS = {"train_tasks": 0, "label_noise": 0.0, "patience": 0, "tensor_inner_lrs": "", "method": "maml"}
# With early stopping, how validation scores decides where training stops: these fields
# then shape training too, and enter the training hash when they differ from their
# defaults (so that runs early-stopped at the defaults keep their hash).
STOPPING_FIELDS = ("val_every", "val_tasks", "test_inner_lr", "test_inner_steps", "stop_on")


def _eval_only(default: Any, help: str) -> Any:
    """A field that does not change what is trained: how it is scored, stored or computed."""
    return field(default=default, metadata={"help": help, "training": False})


def _training(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help, "training": True})


@dataclass(frozen=True)
class Config:
    """Everything that defines a MAML run. Profiles below set sensible combinations."""

    dataset: str = _training("glyphs", "glyphs (embedded), omniglot or miniimagenet")
    data_root: str = _eval_only("", "folder of omniglot/miniimagenet files (default data/<dataset>)")
    rotations: bool = _training(False, "add 90/180/270-degree rotations as new classes")
    n_way: int = _training(5, "classes per task")
    k_shot: int = _training(1, "support examples per class")
    n_query: int = _training(5, "query examples per class")
    width: int = _training(32, "filters per conv layer of the Conv4")
    inner_lr: float = _training(0.4, "training inner (adaptation) learning rate; any real value")
    learn_inner_lr: bool = _training(False, "learn one inner rate per parameter tensor (Meta-SGD style)")
    tensor_inner_lrs: str = _training("", "fixed inner rates, one per parameter tensor in the network's "
                                          "order (blocks.0.conv_weight, blocks.0.conv_bias, "
                                          "blocks.0.bn_weight, ..., head_weight, head_bias), "
                                          "comma-separated; they replace inner_lr (empty: inner_lr for "
                                          "every tensor)")
    inner_steps: int = _training(1, "inner steps during meta-training")
    first_order: bool = _training(False, "first-order MAML (no second derivatives)")
    method: str = _training("maml", "maml; or a baseline on the same backbone and budget: anil (the "
                                     "inner loop adapts the head only; Raghu et al. 2020), zeroing (the "
                                     "head starts every inner loop at zero: Kao et al. 2022's zeroing "
                                     "trick), proto_maml (the head starts at the task's prototypes, W=2c, "
                                     "b=-|c|^2, then adapts; Triantafillou et al. 2020), protonet (that "
                                     "head without an inner loop: Prototypical Networks, Snell et al. "
                                     "2017; needs inner_steps=0)")
    objective: str = _training("maml", "maml (the exact one-step-or-more objective) or surrogate "
                                       "(L_q - a <g_q, g_s>, its first-order Taylor expansion; "
                                       "one inner step)")
    outer_lr: float = _training(1e-3, "Adam learning rate of the outer loop")
    meta_batch: int = _training(8, "tasks per outer step")
    iterations: int = _training(800, "outer steps")
    seed: int = _training(0, "seed of initialisation and training tasks")
    train_tasks: int = _training(0, "a fixed pool of this many meta-training tasks, drawn once from the seed "
                                    "(0: a fresh task every time)")
    label_noise: float = _training(0.0, "fraction of meta-training query labels replaced by another label "
                                        "at random, from 0 up to (not including) 1; never validation or test")
    patience: int = _training(0, "early stopping: end training after this many validations without a "
                                 "better validation accuracy, and keep the best one's parameters "
                                 "(iterations is then the cap; 0: train all iterations)")
    max_loss: float = _training(100.0, "a query loss above this many nats (chance is ln n_way) or a "
                                       "non-finite one ends the run as diverged")
    val_every: int = _eval_only(100, "iterations between validations")
    val_tasks: int = _eval_only(100, "validation tasks (fixed seed)")
    checkpoint_every: int = _eval_only(50, "iterations between checkpoints")
    test_inner_lr: float | None = _eval_only(None, "test-time inner rate (default: the training rate, "
                                                   "or the learned rates)")
    test_inner_steps: int = _eval_only(1, "inner steps at validation and test time")
    log_penalty: bool = _eval_only(True, "log the terms of the penalty expansion (method=maml) on a few "
                                         "fixed validation tasks at every validation (metrics.json: "
                                         "penalty_terms)")
    stop_on: str = _eval_only("rate", "what early stopping watches: the validation accuracy at the test-time "
                                      "rate (rate) or at the best test rate of either sign (best_rate)")
    test_tasks: int = _eval_only(600, "meta-test tasks (fixed seed)")
    curve_tasks: int = _eval_only(0, "the analysis also scores MAML on this many of the meta-test tasks "
                                     "(the first) at a fine grid of test rates of both signs, magnitudes "
                                     "1.6 halved down to about 0.003 (0: not at all)")
    curve_steps: str = _eval_only("1", "inner step counts at which that grid is scored, comma-separated "
                                       "(e.g. 1,5,10)")
    eval_chunk: int = _eval_only(10, "tasks adapted at once during evaluation (10: the fastest on a 2-core "
                                     "CPU, whose caches larger batches outgrow; benchmarks/RESULTS.md)")
    device: str = _eval_only("auto", "auto (CUDA when present), cpu or cuda")
    recompute_inner_steps: bool = _eval_only(
        False, "rebuild each inner step's graph in the backward pass instead of keeping it: "
               "only the fast weights between steps stay in memory, ~20-25% slower, identical results")

    def __post_init__(self) -> None:
        validate(self)
        if self.tensor_inner_lrs:  # one spelling per list of rates: "1e-1, 0.2" is "0.1,0.2"
            object.__setattr__(self, "tensor_inner_lrs",
                               ",".join(repr(float(word)) for word in self.tensor_inner_lrs.split(",")))

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def training_hash(self) -> str:
        """Hash of the fields that shape training; a checkpoint is valid only for it."""
        training = {f.name: getattr(self, f.name) for f in fields(self) if f.metadata["training"]
                    and not (f.name in LATER_FIELDS and getattr(self, f.name) == LATER_FIELDS[f.name])}
        if self.tensor_inner_lrs:  # they replace inner_lr: it trains nothing
            del training["inner_lr"]
        if self.patience:
            training.update({f.name: getattr(self, f.name) for f in fields(self)
                             if f.name in STOPPING_FIELDS and getattr(self, f.name) != f.default})
        return hashlib.sha256(json.dumps(training, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def resolved_data_root(self) -> Path:
        return Path(self.data_root or f"data/{self.dataset}")


PROFILES: dict[str, dict[str, Any]] = {
    # Seconds: for tests and for trying the pipeline end to end.
    "smoke": dict(width=8, meta_batch=2, n_query=2, iterations=6, val_every=3, val_tasks=4,
                  checkpoint_every=2, test_tasks=10, eval_chunk=10),
    # The default (the Config defaults): embedded glyphs, 5-way 1-shot, Conv4-32, meta-batch
    # 8, 5 queries, one inner step; about two minutes on a 2-core CPU, ~95% meta-test.
    "quick": dict(),
    # Finn et al. (2017) on Mini-ImageNet; needs the files and, realistically, a GPU.
    "paper": dict(dataset="miniimagenet", width=32, inner_steps=5, test_inner_steps=10,
                  inner_lr=0.01, meta_batch=4, n_query=15, iterations=60000, val_every=1000,
                  val_tasks=300, checkpoint_every=1000, eval_chunk=20),
}


def profile(name: str, **overrides: Any) -> Config:
    """The named profile with ``overrides`` applied (each validated)."""
    if name not in PROFILES:
        raise ConfigError(f"profile={name!r} is unknown; choose one of {', '.join(PROFILES)}")
    return Config(**{**PROFILES[name], **overrides})


def from_dict(values: dict[str, Any], source: str = "config") -> Config:
    """A Config from a mapping (a JSON file, a metrics.json), refusing unknown keys."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: expected a JSON object of config fields, not {type(values).__name__}")
    known = {f.name for f in fields(Config)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown field {unknown[0]!r}; known fields: {', '.join(sorted(known))}")
    return Config(**values)


def field_kind(f: dataclasses.Field) -> str:
    """``int``, ``float``, ``bool`` or ``str``: the base type of a Config field. Annotations
    are strings here (``from __future__ import annotations``); ``float | None`` is a float
    that may be unset."""
    return str(f.type).split(" ")[0]


def method_fields(method: str) -> dict[str, Any]:
    """The config fields that make a run ``method`` (its name and what it needs)."""
    return {"method": method, **METHOD_FIELDS.get(method, {})}


def curve_steps(config: Config) -> tuple[int, ...]:
    """The step counts of the analysis's fine test-rate grid, in increasing order."""
    return tuple(sorted({int(word) for word in config.curve_steps.split(",")}))


def tensor_rates(config: Config) -> list[float] | None:
    """The fixed per-tensor inner rates of ``config``, or None when one rate serves all."""
    return [float(word) for word in config.tensor_inner_lrs.split(",")] if config.tensor_inner_lrs else None


def _is_finite_number(word: str) -> bool:
    try:
        return abs(float(word)) <= FLOAT32_MAX
    except ValueError:
        return False


def _require(condition: bool, name: str, value: Any, allowed: str) -> None:
    if not condition:
        raise ConfigError(f"{name}={value!r} is not allowed; {allowed}")


def validate(config: Config) -> None:
    """Check every field's type and range; the first problem raises ConfigError."""
    for f in fields(config):
        value = getattr(config, f.name)
        kind = {"int": int, "float": float, "bool": bool, "str": str}.get(field_kind(f))
        if value is None and "None" in str(f.type):
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is float and number:
            # Rates and thresholds become float32 tensors: larger magnitudes overflow.
            _require(abs(value) <= FLOAT32_MAX, f.name, value,  # false for nan and inf too
                     "use a finite number of magnitude at most 3.4e38")
            continue
        if kind is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            raise ConfigError(f"{f.name}={value!r} has the wrong type; expected {kind.__name__}")
    _require(config.dataset in DATASETS, "dataset", config.dataset, f"choose one of {', '.join(DATASETS)}")
    _require(config.objective in OBJECTIVES, "objective", config.objective,
             f"choose one of {', '.join(OBJECTIVES)}")
    if config.objective == "surrogate":
        _require(config.inner_steps == 1 and not config.first_order, "objective", config.objective,
                 "the surrogate is the expansion of one second-order step: "
                 "use inner_steps=1 without first_order")
    _require(config.method in METHODS, "method", config.method, f"choose one of {', '.join(METHODS)}")
    if config.method == "protonet":
        _require(config.inner_steps == 0, "inner_steps", config.inner_steps,
                 "method=protonet has no inner loop in training: use inner_steps=0 "
                 "(test_inner_steps=0 scores by the prototype rule itself)")
        _require(not config.learn_inner_lr, "learn_inner_lr", config.learn_inner_lr,
                 "method=protonet has no inner loop in training, so no rate to learn")
    if config.method != "maml":
        _require(config.objective == "maml", "objective", config.objective,
                 f"method={config.method} trains its own objective; the surrogate expands MAML's")
    _require(config.device in DEVICES, "device", config.device, f"choose one of {', '.join(DEVICES)}")
    _require(0 <= config.seed < 2**32, "seed", config.seed, "use a seed from 0 to 4294967295")
    _require(config.n_way >= 2, "n_way", config.n_way, "use at least 2 classes per task")
    _require(config.k_shot >= 1, "k_shot", config.k_shot, "use at least 1 support example per class")
    _require(config.n_query >= 1, "n_query", config.n_query, "use at least 1 query per class")
    for name in ("width", "meta_batch", "iterations", "val_every", "val_tasks", "checkpoint_every",
                 "test_tasks", "eval_chunk"):
        _require(getattr(config, name) >= 1, name, getattr(config, name), "use a positive integer")
    for name in ("inner_steps", "test_inner_steps"):
        _require(getattr(config, name) >= 0, name, getattr(config, name), "use 0 or more steps")
    if config.tensor_inner_lrs:
        _require(not config.learn_inner_lr, "tensor_inner_lrs", config.tensor_inner_lrs,
                 "fixed per-tensor rates cannot be learned: leave it empty with learn_inner_lr")
        _require(all(_is_finite_number(word) for word in config.tensor_inner_lrs.split(",")),
                 "tensor_inner_lrs", config.tensor_inner_lrs,
                 "use finite numbers separated by commas, one per parameter tensor")
    _require(config.curve_tasks >= 0, "curve_tasks", config.curve_tasks, "use 0 (no curve) or more tasks")
    _require(all(word.strip().isdigit() and int(word) >= 1 for word in config.curve_steps.split(",")),
             "curve_steps", config.curve_steps, "use step counts of 1 or more separated by commas: 1,5,10")
    _require(config.train_tasks >= 0, "train_tasks", config.train_tasks,
             "use 0 (a fresh task every time) or a positive pool size")
    _require(0 <= config.label_noise < 1, "label_noise", config.label_noise,
             "use a fraction from 0 up to 1 (not 1)")
    _require(config.patience >= 0, "patience", config.patience,
             "use 0 (no early stopping) or a positive number of validations")
    _require(config.stop_on in STOP_ON, "stop_on", config.stop_on, f"choose one of {', '.join(STOP_ON)}")
    _require(config.outer_lr > 0, "outer_lr", config.outer_lr, "use a positive Adam learning rate")
    _require(config.max_loss > 0, "max_loss", config.max_loss, "use a positive threshold")
