"""RESULTS.md keeps the CPU body and a CUDA part apart, so that each run rewrites only its own."""

from benchmarks.bench import CUDA_BEGIN, CUDA_END, memory_per_added_step, memory_table, merge_results


def test_a_cpu_run_keeps_the_cuda_part_and_a_cuda_run_keeps_the_cpu_body():
    first = merge_results("", "# CPU one", "cpu")
    assert first == "# CPU one\n" and CUDA_BEGIN not in first
    with_cuda = merge_results(first, "# On CUDA: H100\nfast", "cuda")
    assert with_cuda.startswith("# CPU one\n") and f"{CUDA_BEGIN}\n# On CUDA: H100\nfast\n{CUDA_END}" in with_cuda
    rerun = merge_results(with_cuda, "# CPU two", "cpu")
    assert rerun.startswith("# CPU two\n") and "# CPU one" not in rerun and "fast" in rerun
    again = merge_results(rerun, "# On CUDA: H200", "cuda")
    assert again.count(CUDA_BEGIN) == 1 and "H100" not in again and again.startswith("# CPU two\n")


def test_memory_per_added_step_is_the_least_squares_slope():
    assert memory_per_added_step({1: 10.0, 2: 12.0, 5: 18.0, 10: 28.0}) == 2.0
    lines, slopes = memory_table("t", {"a": {1: 10.0, 2: 12.0}, "b": {1: 5.0, 2: 5.0}})
    assert slopes == {"a": 2.0, "b": 0.0} and lines[-2] == "| MB per added step (fit) | 2.0 | 0.0 |"
