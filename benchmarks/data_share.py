"""How much of a meta-training step is data preparation (sampling a meta-batch)?

Measured in one process, interleaved, on the `quick` configuration: the median time to
sample a meta-batch and move it to the device, against the median time of a whole
training step (sampling + inner loop + meta-gradient + Adam). Prints a Markdown table.

    .venv/bin/python benchmarks/data_share.py [--profile quick] [--repeats 30] [--device cuda] [--data-root DIR]
"""  # noqa: E501

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from mamllib.config import profile
from mamllib.data import load_dataset
from mamllib.data.sampler import EpisodeSampler
from mamllib.maml import build_maml
from mamllib.models import resolve_device


def measure(profile_name: str, repeats: int, device: str | None = None, data_root: str | None = None) -> dict:
    """Median sampling and step times; ``device`` and ``data_root`` override the profile's."""
    overrides = {k: v for k, v in (("device", device), ("data_root", data_root)) if v}
    config = profile(profile_name, **overrides)
    device = resolve_device(config.device)
    dataset = load_dataset(config)
    maml = build_maml(config, dataset).to(device)
    optimizer = torch.optim.Adam(maml.meta_parameters(), lr=config.outer_lr)
    sampler = EpisodeSampler(dataset.splits["train"], config.n_way, config.k_shot, config.n_query, 0)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    sample_times, step_times = [], []
    for i in range(repeats + 3):
        start = time.perf_counter()
        episodes = sampler.sample(config.meta_batch).to(device)
        sync()
        sampled = time.perf_counter()
        out = maml(episodes, config.inner_steps, first_order=config.first_order)
        optimizer.zero_grad()
        out.query_loss.backward()
        optimizer.step()
        sync()
        done = time.perf_counter()
        if i >= 3:  # warm-up
            sample_times.append(sampled - start)
            step_times.append(done - start)
    sample, step = statistics.median(sample_times), statistics.median(step_times)
    return {"sample_ms": 1e3 * sample, "step_ms": 1e3 * step, "share": sample / step, "device": str(device),
            "tasks_per_s": config.meta_batch / step}


def markdown(profile_name: str, result: dict[str, float]) -> str:
    return "\n".join([
        "| profile | device | sample meta-batch (ms) | whole step (ms) | data share "
        "| meta-training tasks/s |",
        "|---|---|---|---|---|---|",
        f"| {profile_name} | {result['device']} ({platform.machine()}, {torch.get_num_threads()} threads) "
        f"| {result['sample_ms']:.2f} | {result['step_ms']:.1f} | {100 * result['share']:.2f}% "
        f"| {result['tasks_per_s']:.1f} |"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--repeats", type=int, default=30,
                        help="timed steps after 3 warm-up steps (default: 30)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: the profile's (auto)")
    parser.add_argument("--data-root", help="dataset folder, for the omniglot/miniimagenet profiles")
    args = parser.parse_args()
    print(markdown(args.profile, measure(args.profile, args.repeats, args.device, args.data_root)))


if __name__ == "__main__":
    main()
