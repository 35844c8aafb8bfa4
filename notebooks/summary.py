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
# train-rate x test-rate grid. Bands and intervals are 95%: over the fixed meta-test tasks
# where a setting has one seed, over seeds and tasks (`mamllib.stats.hierarchical_ci`)
# where it has several; each figure says which at its top right.

# %% tags=["parameters"]
profile = "quick"
sweep_status = "book/generated/executions.json"  # written by the sweep: one entry per executed notebook
fingerprint = ""  # changes when any run changed, so the report re-executes this summary

# %%
import matplotlib.pyplot as plt
from myst_nb import glue

from mamllib import findings, plots
from mamllib.evaluate import PENALTY_TASKS
from mamllib.pipeline.paths import work_in_book_root
from mamllib.pipeline.sweep import analysed_settings, read_record, settings_table
from mamllib.runs import load_analyses, read_metrics

# %% [markdown]
# The sweep's own settings, as its record lists them, and the analyses of those whose
# analysis is current (paths relative to the repository root).

# %%
work_in_book_root()  # paths are relative to the repository root, wherever the kernel started
record = read_record(sweep_status)
settings = settings_table(record, profile)
run_dirs = analysed_settings(record, profile)
readouts, relations = load_analyses(run_dirs)
metrics = read_metrics(run_dirs)
print(f"{len(run_dirs)} analysed runs of the {len(settings)} settings of the sweep")

# %% [markdown]
# ## Settings that did not complete
#
# A diverged run is a result (its loss exploded); a failed setting is one whose
# notebook raised. Neither stops the others.

# %%
glue("n_settings", len(settings), display=False)
glue("n_completed", findings.completed_count(settings), display=False)
print(findings.completion_text(settings))

# %% [markdown]
# A fixed training budget: runs still improving when it ends are compared before convergence.

# %%
convergence_text = findings.convergence_text(metrics.values())
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

# %% [markdown]
# Mean accuracy (%) per network, rate and readout; "learned" rows start from their rate.

# %%
findings.readout_accuracy_table(readouts)

# %%
versus_untrained = findings.describe_gap(
    findings.paired_gap(readouts, ("trained", "proto_unadapted"), ("untrained", "proto_unadapted")),
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
signs = findings.sign_preference(readouts)
test_rate_text = findings.describe_sign_preference(signs)
glue("test_rate_text", test_rate_text, display=False)
print(test_rate_text)
findings.sign_preference_table(signs)

# %% [markdown]
# (summary-penalty)=
# ## The penalty along training
#
# At every validation, each run logs the terms of the one-step expansion on the same few
# fixed validation tasks: the query loss, the support-query inner product $\langle g_q, g_s\rangle$
# that a negative rate penalises, both squared gradient norms, and the curvature term.
# The penalty reading predicts that training at a negative rate leaves smaller gradient
# norms than training at rate 0. One network per rate and seed: no interval.

# %%
trajectories = findings.penalty_trajectories(metrics)
print(f"terms logged on the first {PENALTY_TASKS} fixed validation tasks")
if not trajectories.empty:
    plots.penalty_trajectories(trajectories)
    plt.show()
penalty_text = findings.penalty_text(trajectories)
glue("penalty_text", penalty_text, display=False)
print(penalty_text)

# %% [markdown]
# ## Learned inner rates

# %%
for name, trajectory in findings.learned_runs(metrics).items():
    plots.learned_rates(trajectory, title=name)
    plt.show()
# Plain text: the book pastes it into another page, where only text/plain, HTML and
# images cross documents (a Markdown object would show as its repr).
learned_text = findings.learned_rates_text(readouts, metrics)
glue("learned_rates_text", learned_text, display=False)
print(learned_text)

# %% [markdown]
# ## Headline numbers

# %%
for name, value in findings.headline_numbers(readouts).items():
    glue(name, value, display=False)
gap_text = findings.describe_gap(findings.readout_gap(readouts))
adapted_gap_text = findings.describe_gap(findings.readout_gap(readouts, "proto_adapted"),
                                         "the prototypes of the adapted features")
glue("proto_gap_text", gap_text, display=False)
glue("proto_adapted_gap_text", adapted_gap_text, display=False)
print(gap_text, adapted_gap_text, sep="\n")
findings.gap_table(readouts)
