"""The command line: --help everywhere, and bad input -> one line, exit 2, nothing written."""

import json
from pathlib import Path

import pytest
import torch

from mamllib.cli import main


def run(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own exits (--help, usage errors)
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", [[], ["train"], ["evaluate"], ["analyze"], ["data"], ["sweep"],
                                     ["report"], ["notebook"]])
def test_every_command_has_help(command, capsys):
    code, out, _ = run([*command, "--help"], capsys)
    assert code == 0 and "usage:" in out
    # Help text is %-formatted by argparse: a stray % shows up as a dumped dict or as %%.
    assert "%%" not in out and "option_strings" not in out


def test_train_and_evaluate_end_to_end(tmp_path, capsys, glyphs):
    out_dir = tmp_path / "neg"
    code, out, _ = run(["train", "--profile", "smoke", "--inner-lr", "-0.4", "--out", str(out_dir)], capsys)
    assert code == 0 and "meta-test accuracy" in out and "95% CI" in out
    assert json.loads((out_dir / "metrics.json").read_text())["config"]["inner_lr"] == -0.4
    code, out, _ = run(["evaluate", str(out_dir), "--test-inner-lr", "0.4"], capsys)
    assert code == 0 and "test rate 0.4" in out and "95% CI, 10 tasks" in out


def test_train_without_out_uses_the_folder_the_sweep_and_notebooks_use(tmp_path, capsys, glyphs,
                                                                       monkeypatch):
    from mamllib.pipeline.sweep import setting_folder, sweep_settings

    monkeypatch.chdir(tmp_path)
    assert run(["train", "--profile", "smoke", "--inner-lr", "-0.1"], capsys)[0] == 0
    setting = sweep_settings("smoke", rates=(-0.1,), learned=False, runs_root="runs")[0]
    assert (setting_folder(setting.parameters) / "metrics.json").is_file()
    assert setting_folder(setting.parameters) == Path("runs") / "smoke" / "maml-lr-0.1-seed0"


def _trained(tmp_path, capsys):
    out_dir = tmp_path / "trained"
    assert run(["train", "--profile", "smoke", "--out", str(out_dir)], capsys)[0] == 0
    return out_dir


def _corrupt(tmp_path, capsys):
    out_dir = _trained(tmp_path, capsys)
    (out_dir / "checkpoint.pt").write_bytes(b"garbage")
    return ["evaluate", str(out_dir)]


def _truncated(tmp_path, capsys):
    # An interrupted run (metrics say "running") whose checkpoint was cut short.
    out_dir = _trained(tmp_path, capsys)
    metrics = json.loads((out_dir / "metrics.json").read_text())
    (out_dir / "metrics.json").write_text(json.dumps({**metrics, "status": "running"}))
    data = (out_dir / "checkpoint.pt").read_bytes()
    (out_dir / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    return ["train", "--profile", "smoke", "--out", str(out_dir)]


def _mismatched(tmp_path, capsys):
    out_dir = _trained(tmp_path, capsys)
    return ["train", "--profile", "smoke", "--inner-lr", "0.1", "--out", str(out_dir)]


def _config_file(content):
    def make(tmp_path, capsys):
        path = tmp_path / "config.json"
        path.write_text(content)
        return ["train", "--profile", "smoke", "--config", str(path), "--out", str(tmp_path / "out")]
    return make


def _config_bytes(content: bytes):
    def make(tmp_path, capsys):
        (tmp_path / "config.json").write_bytes(content)
        return ["train", "--profile", "smoke", "--config", str(tmp_path / "config.json"),
                "--out", str(tmp_path / "out")]
    return make


def _checkpoint_edited(edit, command="evaluate"):
    def make(tmp_path, capsys):
        out_dir = _trained(tmp_path, capsys)
        state = torch.load(out_dir / "checkpoint.pt", weights_only=True)
        edit(state)
        torch.save(state, out_dir / "checkpoint.pt")
        if command == "train":  # an interrupted run, so that train resumes from the checkpoint
            metrics = json.loads((out_dir / "metrics.json").read_text())
            (out_dir / "metrics.json").write_text(json.dumps({**metrics, "status": "running"}))
            return ["train", "--profile", "smoke", "--out", str(out_dir)]
        return [command, str(out_dir)]
    return make


def _run_config(content):
    def make(tmp_path, capsys):
        out_dir = _trained(tmp_path, capsys)
        (out_dir / "config.json").write_text(content)
        return ["analyze", str(out_dir)]
    return make


def _out_is_a_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("keep me")
    return ["train", "--profile", "smoke", "--out", str(tmp_path / "afile")]


def _small_omniglot_pool(tmp_path, capsys):
    """A tiny Omniglot (40 characters of 5 drawings, 30 of them for training): 2-way tasks
    with 1 support and 4 queries are 30*29 class orders x 5 support choices per class squared."""
    from PIL import Image

    for part in ("images_background", "images_evaluation"):
        for a in range(4):
            for ch in range(5):
                for d in range(5):
                    path = tmp_path / "omni" / part / f"Alphabet{a}" / f"character{ch + 1:02d}" / f"{d}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    Image.new("1", (105, 105), color=bool((a + ch + d) % 2)).save(path)
    return ["train", "--profile", "smoke", "--dataset", "omniglot", "--data-root", str(tmp_path / "omni"),
            "--n-way", "2", "--n-query", "4", "--train-tasks", "1000000", "--out", str(tmp_path / "out")]


def _plain(*argv):
    return lambda tmp_path, capsys: [a.replace("OUT", str(tmp_path / "out")) for a in argv]


BAD_INPUTS = {
    "unknown profile": (_plain("train", "--profile", "fast", "--out", "OUT"), "profile='fast'"),
    "unknown dataset": (_plain("train", "--dataset", "mnist", "--out", "OUT"), "dataset='mnist'"),
    "N-way larger than a split": (_plain("train", "--profile", "smoke", "--n-way", "250", "--out", "OUT"),
                                  "n_way=250"),
    "K+Q larger than instances": (_plain("train", "--profile", "smoke", "--k-shot", "5", "--n-query", "16",
                                         "--out", "OUT"),
                                  "k_shot + n_query = 21"),
    "non-numeric rate": (_plain("train", "--inner-lr", "fast", "--out", "OUT"),
                         "--inner-lr: 'fast' is not a number"),
    "non-finite rate": (_plain("train", "--inner-lr", "nan", "--out", "OUT"), "inner_lr=nan"),
    "one-way tasks": (_plain("train", "--n-way", "1", "--out", "OUT"), "n_way=1"),
    "zero iterations": (_plain("train", "--iterations", "0", "--out", "OUT"), "iterations=0"),
    "missing data folder": (_plain("train", "--dataset", "omniglot", "--data-root", "/nonexistent/omniglot",
                                   "--out", "OUT"),
                            "images_background"),
    "missing miniimagenet folder": (_plain("train", "--profile", "paper", "--data-root", "/nonexistent/mini",
                                           "--out", "OUT"),
                                    "mini-imagenet-cache"),
    "not a run folder": (_plain("evaluate", "/nonexistent/run"), "does not exist"),
    "corrupt checkpoint": (_corrupt, "corrupt checkpoint"),
    "truncated checkpoint on resume": (_truncated, "corrupt checkpoint"),
    "mismatched checkpoint": (_mismatched, "config hash"),
    "malformed config file": (_config_file("{not json"), "not valid JSON"),
    "unknown config field": (_config_file('{"inner_rate": 0.1}'), "unknown field 'inner_rate'"),
    "wrongly typed config field": (_config_file('{"n_way": "five"}'), "n_way='five' has the wrong type"),
    "unknown command option": (_plain("train", "--inner-rate", "0.1"), "unrecognized arguments"),
    "rate beyond float32": (_plain("train", "--inner-lr", "1e300", "--out", "OUT"), "inner_lr=1e+300"),
    "seed beyond 32 bits": (_plain("train", "--seed", "99999999999999999999", "--out", "OUT"),
                            "seed=99999999999999999999"),
    "config file not text": (_config_bytes(b"\xff\xfe{}"), "not a UTF-8 text file"),
    "config file is a folder": (lambda tmp_path, capsys: ["train", "--config", str(tmp_path), "--out",
                                                          str(tmp_path / "out")],
                                "cannot be read"),
    "checkpoint weights that do not fit": (_checkpoint_edited(lambda state: state.update(model={})),
                                           "model state does not fit"),
    "checkpoint without optimizer state": (_checkpoint_edited(lambda state: state.pop("optimizer"), "train"),
                                           "missing optimizer"),
    "run config not an object": (_run_config('{"config": null}'), "has no 'config' object"),
    "output folder is a file": (_out_is_a_file, "this path cannot be read or written"),
    "non-finite grid rate": (_plain("analyze", "/nonexistent/run", "--grid", "nan"),
                             "'nan' is not a finite number"),
    "negative pool size": (_plain("train", "--profile", "smoke", "--train-tasks", "-1", "--out", "OUT"),
                           "train_tasks=-1"),
    "label noise of 1": (_plain("train", "--profile", "smoke", "--label-noise", "1", "--out", "OUT"),
                         "label_noise=1.0"),
    "negative patience": (_plain("train", "--profile", "smoke", "--patience", "-2", "--out", "OUT"),
                          "patience=-2"),
    "pool larger than the split can make": (_small_omniglot_pool, "train_tasks=1000000 is more than"),
    "per-tensor rates not numbers": (_plain("train", "--profile", "smoke", "--tensor-inner-lrs", "-0.1,x",
                                            "--out", "OUT"), "tensor_inner_lrs='-0.1,x'"),
    "per-tensor rates that do not fit the network": (
        _plain("train", "--profile", "smoke", "--tensor-inner-lrs", "-0.1,0.2", "--out", "OUT"),
        "tensor_inner_lrs has 2 rates; this network has 18"),
    "notebook parameters not an object": (_plain("notebook", "maml_run", "--out", "OUT/x.ipynb",
                                                 "--parameters", "[1]"),
                                          "expected a JSON object"),
}


def _snapshot(root):
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_one_line_exit_2_nothing_written(case, tmp_path, capsys, glyphs):
    make, expected = BAD_INPUTS[case]
    argv = make(tmp_path, capsys)
    capsys.readouterr()
    before = _snapshot(tmp_path)
    code, out, err = run(argv, capsys)
    assert code == 2
    assert expected in err
    assert len(err.strip().splitlines()) == 1, err
    assert _snapshot(tmp_path) == before
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present, so device=cuda is valid")
def test_cuda_requested_without_cuda(tmp_path, capsys, glyphs):
    code, _, err = run(["train", "--profile", "smoke", "--device", "cuda", "--out", str(tmp_path / "o")],
                       capsys)
    assert code == 2 and "no CUDA device" in err and not (tmp_path / "o").exists()


def test_analyze_writes_csvs_and_prints_the_summary(tmp_path, capsys, glyphs):
    out_dir = _trained(tmp_path, capsys)
    code, out, _ = run(["analyze", str(out_dir), "--grid", "-0.2", "0", "0.4"], capsys)
    assert code == 0
    for readout in ("maml", "head_only", "proto_unadapted", "proto_adapted", "logreg", "cosine_nn"):
        assert readout in out
    assert "-0.2:" in out and "agrees with MAML" in out
    import pandas as pd

    readouts = pd.read_csv(out_dir / "analysis" / "readouts.csv")
    assert set(readouts.model) == {"trained", "untrained"} and readouts.task.nunique() == 10


@pytest.mark.parametrize("make, message", [
    (lambda tmp_path: tmp_path / "nowhere", "does not exist"),
    (lambda tmp_path: tmp_path, "config.json: missing"),
])
def test_analyze_bad_run_folders(tmp_path, capsys, make, message):
    code, _, err = run(["analyze", str(make(tmp_path))], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_analyze_refuses_a_diverged_run(tmp_path, capsys, glyphs):
    out_dir = tmp_path / "diverged"
    assert run(["train", "--profile", "smoke", "--inner-lr", "50", "--out", str(out_dir)], capsys)[0] == 0
    code, _, err = run(["analyze", str(out_dir)], capsys)
    assert code == 2 and "diverged" in err


def test_negative_rates_in_any_notation_are_values_not_options():
    from mamllib.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["train", "--inner-lr", "-1e-3"]).inner_lr == -1e-3
    assert parser.parse_args(["analyze", "RUN", "--grid", "-1E-2", "-.5", "0"]).grid == [-0.01, -0.5, 0.0]
    assert parser.parse_args(["sweep", "--rates", "-4e-1", "0.1"]).rates == [-0.4, 0.1]
    assert parser.parse_args(["train", "--tensor-inner-lrs", "-0.05,0.1"]).tensor_inner_lrs == "-0.05,0.1"


def test_result_files_follow_the_umask_at_write_time(tmp_path, capsys, glyphs):
    import os

    previous = os.umask(0o027)  # set after import: the files must follow the umask of the moment
    try:
        out_dir = _trained(tmp_path, capsys)
    finally:
        os.umask(previous)
    for name in ("metrics.json", "config.json", "checkpoint.pt"):
        assert (out_dir / name).stat().st_mode & 0o777 == 0o640
