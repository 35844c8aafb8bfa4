# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Summary of the sweep
#
# Every trained setting of the sweep, side by side: MAML and each readout against the
# training inner rate, how often the readouts agree with MAML, how the adapted head
# lines up with the prototypes, how much adaptation changes each layer, and the
# train-rate x test-rate grid. Bands are 95% confidence intervals over the 600 fixed
# meta-test tasks.

# %% tags=["parameters"]
profile = "quick"
sweep_status = "executions.json"   # written by the sweep: one entry per executed notebook
fingerprint = ""  # changes when any run changed, so the report re-executes this summary

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from myst_nb import glue

from mamllib import latent, plots
from mamllib.runs import load_analyses, still_rising
from mamllib.sweep import analysed_settings, recorded_settings

status_path = Path(sweep_status)
if not status_path.exists():
    raise FileNotFoundError(f"{status_path.resolve()}: no sweep record here; run `python -m mamllib sweep` "
                            "first, or set sweep_status to its executions.json")
record = json.loads(status_path.read_text())
settings = pd.DataFrame([{"setting": name, **entry["parameters"], "status": entry["status"],
                          "wall_time_s": entry["wall_time_s"]}
                         for name, entry in recorded_settings(record, profile).items()])
run_dirs = analysed_settings(record, profile)
if not run_dirs:
    raise ValueError(f"{status_path}: no setting of profile {profile!r} has a current analysis yet")
readouts, relations = load_analyses(run_dirs)
print(f"{len(run_dirs)} analysed runs of the {len(settings)} settings of the sweep")

# %% [markdown]
# ## Settings that did not complete
#
# A diverged run is a result (its loss exploded); a failed setting is one whose
# notebook raised. Neither stops the others.

# %%
problems = settings[settings.status != "completed"] if len(settings) else settings
if len(problems):
    display(problems[["setting", "inner_lr", "learn_inner_lr", "seed", "status"]])
else:
    print("Every setting completed.")
glue("n_settings", len(settings), display=False)
glue("n_completed", int((settings.status == "completed").sum()) if len(settings) else 0, display=False)

# %%
# A fixed training budget: runs still improving when it ends are compared before convergence.
metrics = {d: json.loads((d / "metrics.json").read_text()) for d in run_dirs}
fixed = [m for m in metrics.values() if not m["config"]["learn_inner_lr"]]
trend = {m["config"]["inner_lr"]: still_rising(m["validation"]) for m in fixed}  # None: too few validations
rising = sorted({m["config"]["inner_lr"] for m in fixed if still_rising(m["validation"])})
iterations = sorted({m["iterations_done"] for m in metrics.values()})
if rising:
    convergence_text = (f"Validation accuracy was still rising at the end of training "
                        f"({'/'.join(map(str, iterations))} iterations) for the networks trained at "
                        f"{latent.rate_list(rising)}: the comparison across training rates is at a fixed "
                        "training budget, not at convergence.")
elif any(value is None for value in trend.values()):
    convergence_text = "Too few validations to tell whether the runs had converged when training stopped."
else:
    convergence_text = "No fixed-rate run's validation accuracy was still rising at the end of training."
glue("convergence_text", convergence_text, display=False)
print(convergence_text)

# %% [markdown]
# ## Accuracy of every readout against the training rate
#
# "Untrained" is each run's network at its initialisation (the same seed, so the same
# network for every rate), adapted at that run's rate: the baseline that tells what
# meta-training added to the features and to the adaptation.

# %%
plots.accuracy_vs_rate(readouts)
plt.show()
plots.accuracy_vs_rate(readouts, model="untrained")
plt.show()

# %%
# Mean accuracy (%) per network, rate and readout; "learned" rows start from their rate.
scored = readouts[readouts.part == "readouts"]
(100 * scored.groupby(["model", "learned_inner_lr", "train_inner_lr", "readout"]).accuracy.mean()
 .unstack("readout")).round(1)

# %%
versus_untrained = latent.describe_gap(
    latent.paired_gap(readouts, ("trained", "proto_unadapted"), ("untrained", "proto_unadapted")),
    "the un-adapted prototypes of the trained networks", "those of the untrained network")
glue("trained_vs_untrained_text", versus_untrained, display=False)
print(versus_untrained)

# %% [markdown]
# ## Agreement with MAML, and the head against the prototypes

# %%
plots.agreement_vs_rate(readouts)
plt.show()
plots.alignment_vs_rate(relations)
plt.show()

# %% [markdown]
# ## Representation change: CKA before versus after adaptation

# %%
plots.cka_vs_rate(relations)
plt.show()

# %% [markdown]
# ## Training rate x test-time rate

# %%
plots.rate_heatmap(readouts)
plt.show()
signs = latent.test_rate_signs(readouts)
test_rate_text = latent.describe_test_rates(signs)
glue("test_rate_text", test_rate_text, display=False)
print(test_rate_text)
(100 * signs).round(1).rename(columns={"gap": "best negative - best positive", "ci95": "paired CI95"}) \
    .assign(best_negative=signs.best_negative, best_positive=signs.best_positive)

# %% [markdown]
# ## Learned inner rates

# %%
from IPython.display import Markdown

learned = [d for d, m in metrics.items() if m["config"]["learn_inner_lr"]]
learned_texts = []
for run_dir in learned:
    trajectory = metrics[run_dir]["inner_lr_trajectory"]
    plots.learned_rates(trajectory, title=run_dir.name)
    plt.show()
    rates = latent.learned_rate_summary(trajectory)
    learned_text = (f"Learned freely per tensor from {rates['start']:g}, the {rates['n_moved']} inner rates of "
                    f"{run_dir.name} that moved ended with mean {rates['mean']:.3f}, ranging from "
                    f"{rates['min']:.3f} to {rates['max']:.3f}; {100 * rates['negative_share']:.0f}% of them "
                    "are negative.")
    if rates["unmoved"]:
        learned_text += (f" The rates of {', '.join(rates['unmoved'])} never moved beyond float32 round-off: those "
                         "tensors have no inner gradient, so neither do their rates.")
    maml_accuracy = readouts[(readouts.run == run_dir.name) & (readouts.part == "readouts")
                             & (readouts.model == "trained") & (readouts.readout == "maml")].accuracy.mean()
    learned_text += f" Adapted with its learned rates, this network's MAML meta-test accuracy is {maml_accuracy:.1%}."
    learned_texts.append(learned_text)
learned_text = " ".join(learned_texts) or "This sweep has no learned-rate setting."
# Plain text: the book pastes it into another page, where only text/plain, HTML and
# images cross documents (a Markdown object would show as its repr).
glue("learned_rates_text", learned_text, display=False)
Markdown(learned_text)

# %% [markdown]
# ## Headline numbers

# %%
by_rate = latent.accuracy_by_training_rate(readouts)
for name, value in latent.headline_numbers(readouts).items():
    glue(name, value, display=False)
gaps = latent.readout_gap(readouts)
gap_text = latent.describe_gap(gaps)
adapted_gap_text = latent.describe_gap(latent.readout_gap(readouts, "proto_adapted"),
                                       "the prototypes of the adapted features")
glue("proto_gap_text", gap_text, display=False)
glue("proto_adapted_gap_text", adapted_gap_text, display=False)
print(gap_text, adapted_gap_text, sep="\n")
(100 * by_rate.join(gaps.rename(columns={"gap": "proto_unadapted - maml", "ci95": "paired CI95"}))).round(1)
