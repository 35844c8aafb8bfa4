"""What a report tier builds: the settings of every experiment of the book, in one place.

Training is most of a report's time, and on 2 CPU cores every network costs what it
costs (benchmarks/RESULTS.md). The default tier therefore builds the book a reader
regenerates on a laptop, in no more time than the report of commit d266885 took before
the seeds and the few-task experiment came in; it says on the book's first page what it
leaves out. The full tier runs everything, and is meant for a cluster. The sweep tier holds
what the report of d266885 held, the main sweep alone: the like-for-like content of the
speed targets, and the quickest square train x test rate grid.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

from mamllib.config import DEFAULT_RATES, METHODS, REPORT_TIERS, Config, method_fields
from mamllib.config import profile as make_profile
from mamllib.errors import UserError
from mamllib.fewtask import Plan, pools_text
from mamllib.findings import rate_list, word_list
from mamllib.formats import METHOD_LABELS


@dataclass(frozen=True)
class Tier:
    """The settings of one report: the main sweep's training rates and seeds (each with
    its learned-rate setting), the seeds of the learned-rate runs whose signs are
    compared, the few-task grid, the rates at which the penalty check trains the
    surrogate objective (none: not trained), the seeds at which the learned sign
    pattern is trained as fixed rates (:mod:`mamllib.sign_pattern`; each needs the main
    sweep and a learned-rate run at that seed), and the seeds at which the main sweep's
    rates are trained to convergence as well (:mod:`mamllib.convergence`), and the
    few-task grids with label noise in the meta-training queries (a second axis: fewer
    pools and rates, one grid per noise level), and the baselines trained on MAML's budget
    (:data:`mamllib.config.METHODS`) at one rate of the main sweep and some of its seeds,
    to compare with MAML's runs there."""

    sweep_rates: tuple[float, ...]
    sweep_seeds: tuple[int, ...]
    learned_seeds: tuple[int, ...]
    few_tasks: Plan
    surrogate_rates: tuple[float, ...]
    pattern_seeds: tuple[int, ...] = ()
    converged_seeds: tuple[int, ...] = ()
    noisy_tasks: tuple[Plan, ...] = ()
    baselines: tuple[str, ...] = ()
    baseline_rate: float = 0.1
    baseline_seeds: tuple[int, ...] = (0,)  # main-sweep seeds at which the baselines train too
    curve_tasks: int = 0  # the main sweep's fine test-rate curve: on how many test tasks
    curve_steps: str = "1"  # and at which step counts (Config.curve_steps)

    def sweep_overrides(self) -> dict[str, Any]:
        """The config fields the tier sets on the main sweep's settings (its test-rate curve)."""
        return {"curve_tasks": self.curve_tasks, "curve_steps": self.curve_steps} if self.curve_tasks else {}

    def __post_init__(self) -> None:
        unknown = set(self.baselines) - (set(METHODS) - {"maml"})
        if unknown:
            raise ValueError(f"baselines {sorted(unknown)} are not baselines of mamllib.config.METHODS")
        if self.baselines and self.baseline_rate not in self.sweep_rates:
            raise ValueError(f"baseline_rate {self.baseline_rate} has no main-sweep run to compare with")
        stray = set(self.pattern_seeds) - (set(self.sweep_seeds) & set(self.learned_seeds))
        if stray:
            raise ValueError(f"pattern_seeds {sorted(stray)} lack a main-sweep or learned-rate seed")
        stray = set(self.converged_seeds) - set(self.sweep_seeds)
        if stray:
            raise ValueError(f"converged_seeds {sorted(stray)} lack a main-sweep seed")
        stray = set(self.baseline_seeds) - set(self.sweep_seeds) if self.baselines else set()
        if stray:
            raise ValueError(f"baseline_seeds {sorted(stray)} have no main-sweep run to compare with")

    def with_sweep(self, rates: Sequence[float] | None = None, seeds: Sequence[int] | None = None) -> "Tier":
        """The tier with its main sweep's rates and seeds replaced (None: kept), and the
        experiments that compare with the main sweep kept to the seeds it still trains."""
        rates = self.sweep_rates if rates is None else tuple(rates)
        seeds = self.sweep_seeds if seeds is None else tuple(seeds)
        return replace(self, sweep_rates=rates, sweep_seeds=seeds,
                       pattern_seeds=tuple(s for s in self.pattern_seeds if s in seeds),
                       converged_seeds=tuple(s for s in self.converged_seeds if s in seeds),
                       baseline_seeds=tuple(s for s in self.baseline_seeds if s in seeds),
                       baselines=self.baselines if self.baseline_rate in rates
                       and set(self.baseline_seeds) & set(seeds) else ())

    def baseline_configs(self, profile: str) -> list[Config]:
        """The baselines' runs: each method at the baseline rate and each baseline seed."""
        return [make_profile(profile, inner_lr=self.baseline_rate, seed=seed, **method_fields(method))
                for method in self.baselines for seed in self.baseline_seeds]


# Costs on a 2-core CPU (benchmarks/REPORT_TIME.md has the measured report): a main-sweep
# or learned-rate run ~70 s of training and ~30 s of page with one job at a time (~100 s
# and ~44 s with make report's two jobs of one thread each, so ~50 s and ~22 s of wall
# time), a surrogate run ~210 s, a few-task network 15-40 s on 4 tasks (the default report
# of df90671), and, timed before mamllib set the allocator (mamllib.allocator), 40-130 s on
# 16 and 35-140 s on fresh tasks (early stopping on the best test rate: each validation
# scores nine test rates). The default's few-task grid is therefore the one pool where the
# prediction applies; the fresh-task end of the axis is the main sweep's. Its baselines
# train in 45-70 s (Protonet fastest, the zeroing trick slowest; Proto-MAML, whose
# meta-gradient runs through the prototypes too, took about 1.5x MAML's time); the default
# trains all but Proto-MAML, at seed 0 and the best rate of the sweep in earlier builds.
# The main sweep has three seeds (the statistics over seeds need them): at four rates
# (eight runs and ten pages more than one seed) the report of 969 s (two jobs) would take
# some 1590 s against d266885's 1503 s, so the default trains the three rates around zero
# that the few-task experiment trains too, and leaves 0.4 (at seed 0 in earlier builds the
# second-best fixed rate, after 0.1) to the full tier. Measured from a fresh clone: 1295 s
# against d266885's 1367 s on the same host (0.95x; training 848 s of it).
TIERS: dict[str, Tier] = {
    "default": Tier(sweep_rates=(-0.1, 0.0, 0.1), sweep_seeds=(0, 1, 2), learned_seeds=(0, 1, 2),
                    few_tasks=Plan(pools=(4,), rates=(-0.1, 0.0, 0.1), seeds=(0, 1, 2)),
                    surrogate_rates=(), baselines=("anil", "zeroing", "protonet"), curve_tasks=50),
    "full": Tier(sweep_rates=DEFAULT_RATES, sweep_seeds=(0, 1, 2), learned_seeds=(0, 1, 2),
                 few_tasks=Plan(pools=(4, 16, 32, 64, 256, 1024, 0),
                                rates=(-0.4, -0.1, -0.03, -0.01, 0.0, 0.01, 0.03, 0.1, 0.4),
                                seeds=(0, 1, 2, 3, 4)),
                 # inside the surrogate's faithful range (cosine >= 0.95: -0.056 to 0.018 in the default
                 # build's penalty check, so 0.02 would lie outside it) and outside it
                 surrogate_rates=(-0.1, -0.01, 0.01, 0.1), pattern_seeds=(0, 1, 2),
                 converged_seeds=(0, 1, 2),
                 noisy_tasks=tuple(Plan(pools=(4, 64, 0), rates=(-0.1, -0.01, 0.0, 0.01, 0.1),
                                        seeds=(0, 1, 2), label_noise=noise) for noise in (0.2, 0.4)),
                 baselines=("anil", "zeroing", "proto_maml", "protonet"), baseline_seeds=(0, 1, 2),
                 curve_tasks=600,
                 curve_steps="1,5,10"),
}
# The main sweep alone, as the report of commit d266885 held it (the content the issue's
# timing targets compare): every rate of the full tier's main sweep and learned rates at
# seed 0, the theory pages and the summary; no few-task experiment, baselines or test-rate
# curve. For a reader who wants the square train x test rate grid quickly. Measured from a
# fresh clone with make report's two jobs: 698 s against d266885's 1444 s on the same host
# (0.48x; training 407 s of job time).
NO_FEW_TASKS = Plan(pools=(), rates=(), seeds=())
TIERS["sweep"] = Tier(sweep_rates=DEFAULT_RATES, sweep_seeds=(0,), learned_seeds=(0,),
                      few_tasks=NO_FEW_TASKS, surrogate_rates=(), baseline_seeds=())
assert tuple(TIERS) == REPORT_TIERS
# The smoke profile's: every part present, each as small as it can be; two main-sweep seeds,
# so that the pages that pool a rate's seeds (the full tier's three) run in every smoke build.
SMOKE = Tier(sweep_rates=(-0.1, 0.4), sweep_seeds=(0, 1), learned_seeds=(0, 1),
             few_tasks=Plan(pools=(3, 0), rates=(-0.1, 0.1), seeds=(0, 1)), surrogate_rates=(-0.1,),
             pattern_seeds=(0,), converged_seeds=(0,),
             noisy_tasks=(Plan(pools=(3,), rates=(-0.1, 0.1), seeds=(0, 1), label_noise=0.3),),
             baselines=("zeroing", "protonet"), baseline_rate=0.4, baseline_seeds=(0, 1), curve_tasks=10,
             curve_steps="1,2")


# The sweep tier's smoke build: its parts (none of the few-task experiment), each tiny.
SMOKE_SWEEP = replace(TIERS["sweep"], sweep_rates=SMOKE.sweep_rates)


def tier(profile: str, name: str = "default") -> Tier:
    """The settings a report of ``profile`` builds: the tier's, or tiny ones for smoke."""
    if name not in TIERS:
        raise UserError(f"tier={name!r} is unknown; choose one of {', '.join(TIERS)}")
    if profile == "smoke":
        return SMOKE_SWEEP if name == "sweep" else SMOKE
    return TIERS[name]


def _added(built: tuple, full: tuple) -> list:
    return [value for value in full if value not in built]


def tier_text(profile: str, name: str, sweep_rates: Sequence[float] | None = None,
              sweep_seeds: Sequence[int] | None = None, learned: bool = True) -> str:
    """Which tier built the book, what it holds, and what the full tier adds; the main
    sweep's rates, seeds and learned-rate setting as the report ran them, where its
    command line replaced the tier's."""
    smoke = profile == "smoke"
    built, full = tier(profile, name).with_sweep(sweep_rates, sweep_seeds), TIERS["full"]
    grid = built.few_tasks
    signs = (f"the learned rates' signs are compared over {len(built.learned_seeds)} seeds"
             if len(built.learned_seeds) > 1 else "the learned rates come from one seed")
    patterns = (f"the learned sign pattern is trained as fixed rates at {_seeds(built.pattern_seeds)}"
                if built.pattern_seeds else "the learned sign pattern is not trained as fixed rates")
    converged = (f"the main sweep is trained to convergence too at {_seeds(built.converged_seeds)}"
                 if built.converged_seeds else "the main sweep is trained for a fixed budget only")
    noise = (f"label noise of {_percents(built.noisy_tasks)} is tried on pools of "
             f"{pools_text({p for plan in built.noisy_tasks for p in plan.pools})}"
             if built.noisy_tasks else "no label noise is tried")
    curve = (f"the main sweep's networks are scored at a fine grid of test rates on {built.curve_tasks} test "
             f"tasks with {_steps(built.curve_steps)}" if built.curve_tasks
             else "no fine grid of test rates is scored")
    stepless = " (Prototypical Networks take no inner step)" if "protonet" in built.baselines else ""
    baselines = (f"{_baselines(built.baselines)} train at rate {built.baseline_rate:g}{stepless}, "
                 f"{_seeds(built.baseline_seeds)}" if built.baselines else "no baseline is trained")
    few_tasks = (f"the few-task experiment has pools of {pools_text(grid.pools)}, training rates "
                 f"{rate_list(grid.rates)} and {_seeds(grid.seeds)}" if grid.pools
                 else "no few-task network is trained")
    surrogates = rate_list(built.surrogate_rates)
    plural = "s" if len(built.surrogate_rates) > 1 else ""
    surrogate = "the penalty check " + (f"trains the surrogate objective at rate{plural} {surrogates}"
                                        if surrogates else "does not train the surrogate objective")
    opening = ("This is a smoke build, for testing only: every experiment ran on a tiny grid; the main sweep"
               if smoke else f"This book was built by the {name} tier: the main sweep")
    text = (f"{opening} trains at rates "
            f"{rate_list(built.sweep_rates)}{' and with learned rates' if learned else ''}, "
            f"{_seeds(built.sweep_seeds)}; {signs}; "
            f"{few_tasks}; {noise}; {patterns}; {converged}; "
            f"{baselines}; {curve}; {surrogate}.")
    if smoke or name == "full":
        return text
    additions = [("main-sweep rates", rate_list(_added(built.sweep_rates, full.sweep_rates))),
                 ("main-sweep seeds", rate_list(_added(built.sweep_seeds, full.sweep_seeds))),
                 ("learned-rate seeds", rate_list(_added(built.learned_seeds, full.learned_seeds))),
                 ("few-task pools of", pools_text(_added(grid.pools, full.few_tasks.pools))),
                 ("few-task rates", rate_list(_added(grid.rates, full.few_tasks.rates))),
                 ("few-task seeds", rate_list(_added(grid.seeds, full.few_tasks.seeds))),
                 ("surrogate training at rates",
                  rate_list(_added(built.surrogate_rates, full.surrogate_rates))),
                 ("the sign-pattern test at seeds",
                  rate_list(_added(built.pattern_seeds, full.pattern_seeds))),
                 ("the main sweep at convergence at seeds",
                  rate_list(_added(built.converged_seeds, full.converged_seeds))),
                 ("few-task label noise of", _percents(_added(built.noisy_tasks, full.noisy_tasks))),
                 ("", _baselines(_added(built.baselines, full.baselines))),
                 ("every baseline at seeds", rate_list(_added(built.baseline_seeds, full.baseline_seeds))),
                 ("", f"the fine test-rate grid on {full.curve_tasks} test tasks with "
                      f"{_steps(full.curve_steps)}"
                  if (full.curve_tasks, full.curve_steps) != (built.curve_tasks, built.curve_steps) else "")]
    listed = "; ".join(f"{what} {values}".strip() for what, values in additions if values)
    default = TIERS["default"]
    sized = ("It holds what the report of commit d266885 held, the main sweep alone; the default tier "
             f"(make report) trains the main sweep at rates {rate_list(default.sweep_rates)} and "
             f"{_seeds(default.sweep_seeds)} and adds the few-task experiment, the baselines and a fine grid "
             "of test rates"
             if name == "sweep" else
             "It is sized so that a 2-core machine builds it in about the time the report took before these "
             "experiments came in")
    # Glued text is not Markdown: no backticks.
    return (f"{text} {sized} (benchmarks/REPORT_TIME.md has the timings measured). The full tier "
            f"(make report TIER=full, meant for a cluster) adds {listed}.")


def _steps(counts: str) -> str:
    words = counts.split(",")
    return f"{word_list(words)} inner step{'' if words == ['1'] else 's'}"


def _baselines(methods: Sequence[str]) -> str:
    if not methods:
        return ""
    return f"the baseline{'s' if len(methods) > 1 else ''} {word_list(METHOD_LABELS[m] for m in methods)}"


def _percents(plans: Sequence[Plan]) -> str:
    return word_list(f"{100 * plan.label_noise:g}%" for plan in plans)


def _seeds(seeds: tuple[int, ...]) -> str:
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"{len(seeds)} seeds"
