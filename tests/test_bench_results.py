"""RESULTS.md keeps the CPU body and a CUDA part apart, so that each run rewrites only its own."""

from benchmarks.bench import (CUDA_BEGIN, CUDA_END, memory_per_added_step, memory_table, merge_results,
                              target_lines)
from benchmarks import cpu_step
from benchmarks.population import BASELINE_COMMIT, BASELINE_LABEL, NANNY_LABEL


def test_a_cpu_run_keeps_the_cuda_part_and_a_cuda_run_keeps_the_cpu_body():
    first = merge_results("", "# CPU one", "cpu")
    assert first == "# CPU one\n" and CUDA_BEGIN not in first
    with_cuda = merge_results(first, "# On CUDA: H100\nfast", "cuda")
    assert (with_cuda.startswith("# CPU one\n")
            and f"{CUDA_BEGIN}\n# On CUDA: H100\nfast\n{CUDA_END}" in with_cuda)
    rerun = merge_results(with_cuda, "# CPU two", "cpu")
    assert rerun.startswith("# CPU two\n") and "# CPU one" not in rerun and "fast" in rerun
    again = merge_results(rerun, "# On CUDA: H200", "cuda")
    assert again.count(CUDA_BEGIN) == 1 and "H100" not in again and again.startswith("# CPU two\n")


def test_memory_per_added_step_is_the_least_squares_slope():
    assert memory_per_added_step({1: 10.0, 2: 12.0, 5: 18.0, 10: 28.0}) == 2.0
    lines, slopes = memory_table("t", {"a": {1: 10.0, 2: 12.0}, "b": {1: 5.0, 2: 5.0}})
    assert slopes == {"a": 2.0, "b": 0.0} and lines[-2] == "| MB per added step (fit) | 2.0 | 0.0 |"


def test_damaged_cuda_markers_are_refused_not_guessed():
    import pytest

    for damaged in (f"# CPU\n{CUDA_BEGIN}\n# On CUDA", f"# CPU\n{CUDA_END}\n{CUDA_BEGIN}\nx",
                    f"# CPU\n{CUDA_BEGIN}\na\n{CUDA_END}\n{CUDA_BEGIN}\nb\n{CUDA_END}\n"):
        with pytest.raises(ValueError, match="markers are damaged"):
            merge_results(damaged, "# CPU two", "cpu")


def test_text_after_the_cuda_part_stays_with_the_cpu_body():
    merged = merge_results(f"# CPU\n\n{CUDA_BEGIN}\nold\n{CUDA_END}\ntrailing note\n", "# On CUDA: new",
                           "cuda")
    assert "trailing note" in merged and "old" not in merged and "new" in merged


def test_targets_say_n_a_when_a_reference_failed_parity():
    ratios = {"quick": {"higher_loop": None, "func": 1.7},
              "miniimagenet-shaped": {"higher_loop": None, "func": 1.1}}
    share = {"share": 0.01}
    slopes = {"ours": 25.0, "ours_recompute": 1.0, "higher_loop": 4.0}
    lines = target_lines(ratios, share, slopes,
                         {"quick": {"higher_loop"}, "miniimagenet-shaped": {"higher_loop"}})
    assert lines[0].startswith("- ours / higher_loop on quick >= 2x: n/a") and "**not met**" in lines[0]
    assert lines[1] == "- ours / best torch.func on quick >= 1x: 1.70x, met"
    assert not any("miniimagenet" in line for line in lines)
    assert "n/a (higher_loop failed parity)" in lines[-1]
    fine = target_lines({**ratios, "quick": {"higher_loop": 2.1, "func": 1.7}}, share, slopes,
                        {"quick": set(), "miniimagenet-shaped": set()})
    assert ("2.10x, met" in fine[0] and "recomputed steps 1.0 MB, met" in fine[-1]
            and "25.0 MB, **not met**" in fine[-1])
    speedups = {"analysis": {"ours, one after another": 2.9},
                "training": {"one after another": 1.0, "one population": 1.3, "two at a time": 1.4,
                             NANNY_LABEL: 0.5},
                "allocator": {cpu_step.GLIBC: 90.0, cpu_step.OURS: 60.0}}
    with_speedups = target_lines(ratios, share, slopes, {"quick": set(), "miniimagenet-shaped": set()},
                                 speedups)
    assert "analysis of a run at most a third of the reference's time: 2.90x faster, **not met**" in \
        "\n".join(with_speedups)
    assert 'fastest arrangement "two at a time", 1.40x' in "\n".join(with_speedups)
    assert "malloc setting of Dask's workers 0.50x" in "\n".join(with_speedups)
    assert "a step with mamllib's allocator: 1.50x faster than with glibc's" in "\n".join(with_speedups)
    assert f"{BASELINE_COMMIT}'s own" not in "\n".join(with_speedups)  # no row: a shallow clone
    speedups["analysis"][BASELINE_LABEL] = 0.8  # the reference took 0.8x the baseline commit's time
    against = "\n".join(target_lines(ratios, share, slopes, {"quick": set(), "miniimagenet-shaped": set()},
                                     speedups))
    assert f"at most a third of {BASELINE_COMMIT}'s own (fewer readouts): 3.62x faster, met" in against
    speedups["setting"] = {"ours": 1.3}
    trained = "\n".join(target_lines(ratios, share, slopes, {"quick": set(), "miniimagenet-shaped": set()},
                                     speedups))
    assert f"one `quick` setting trained end to end: 1.30x faster than {BASELINE_COMMIT}'s code" in trained
