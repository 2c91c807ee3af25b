import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from kerasbert.data.datasets import LabeledTexts
from kerasbert.reproduction import grids
from kerasbert.reproduction import reports as grid_reports
from kerasbert.training.multitask import TaskData

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_cells_of_each_table():
    assert [c.name for c in grids.table_cells(2, 12)] == [
        "head", "tail", "head_tail", "segments_mean", "segments_max", "segments_attention"]
    table3 = grids.table_cells(3, 12)
    assert len(table3) == 1 + 12 + 6 + 1
    assert {"layer_12", "last4_max", "all_concat"} <= {c.name for c in table3}
    assert set(grid_reports.PAPER_IMDB[3]) <= {c.name for c in table3}
    table4 = grids.table_cells(4, 12)
    assert [c.name for c in table4] == [
        f"lr{lr}_xi{xi}" for lr in ("2.5e-05", "2e-05") for xi in ("1", "0.95", "0.9", "0.85")]
    assert set(grid_reports.PAPER_IMDB[4]) == {c.name for c in table4}
    assert set(grid_reports.PAPER_IMDB[2]) == {c.name for c in grids.table_cells(2, 12)}
    assert table4[1].settings == {"learning_rate": 2.5e-5, "layer_decay": 0.95}
    with pytest.raises(ValueError, match="table"):
        grids.table_cells(9, 12)


def test_cells_of_the_pretraining_and_multitask_tables():
    assert [c.name for c in grids.table_cells(5, 6)] == ["fit", "itpt_fit", "idpt_fit", "cdpt_fit"]
    table6 = grids.table_cells(6, 6, corpora=("itpt", "cdpt"), feature_learning_rate=3e-3)
    assert [c.name for c in table6] == ["feat", "fit", "itpt_fit", "cdpt_fit"]
    assert table6[0].settings == {"classifier": "feature_bilstm", "learning_rate": 3e-3}
    assert [c.pretraining for c in table6] == [None, None, "itpt", "cdpt"]
    table7 = grids.table_cells(7, 6)
    assert [(c.name, c.pretraining, c.multitask) for c in table7] == [
        ("fit", None, False), ("mfit_fit", None, True),
        ("cdpt_fit", "cdpt", False), ("cdpt_mfit_fit", "cdpt", True)]
    assert [c.name for c in grids.table_cells(7, 6, corpora=())] == ["fit", "mfit_fit"]
    with pytest.raises(ValueError, match="corpora"):
        grids.table_cells(5, 6, corpora=("wikipedia",))


def test_cells_of_each_figure():
    figure2 = grids.figure_cells(2)
    assert [c.name for c in figure2] == ["lr2e-05", "lr5e-05", "lr0.0001", "lr0.0004"]
    assert [c.baseline for c in figure2] == [None, "lr2e-05", "lr2e-05", "lr2e-05"]
    assert figure2[3].settings == {"learning_rate": 4e-4}
    figure3 = grids.figure_cells(3, pretraining_steps=300, checkpoint_every=100)
    assert [(c.name, c.pretraining, c.pretraining_step, c.baseline) for c in figure3] == [
        ("step_0", None, 0, None), ("step_100", "itpt", 100, "step_0"),
        ("step_200", "itpt", 200, "step_0"), ("step_300", "itpt", 300, "step_0")]
    figure4 = grids.figure_cells(4, fractions=(0.01, 1.0), examples_per_class=(5,))
    assert [(c.name, c.pretraining, c.train_subset, c.baseline) for c in figure4] == [
        ("fit_frac0.01", None, ("fraction", 0.01), None),
        ("itpt_fit_frac0.01", "itpt", ("fraction", 0.01), "fit_frac0.01"),
        ("fit_frac1", None, ("fraction", 1.0), None),
        ("itpt_fit_frac1", "itpt", ("fraction", 1.0), "fit_frac1"),
        ("fit_pc5", None, ("per_class", 5), None),
        ("itpt_fit_pc5", "itpt", ("per_class", 5), "fit_pc5")]


@pytest.mark.parametrize("options, message", [
    (dict(figure=2, learning_rates=()), "at least one learning rate"),
    (dict(figure=3, pretraining_steps=250, checkpoint_every=100), "multiple of"),
    (dict(figure=3, pretraining_steps=0), "positive integer"),
    (dict(figure=4), "fractions or examples per class"),
    (dict(figure=4, fractions=(0.0,)), r"in \(0, 1\]"),
    (dict(figure=4, fractions=(1.5,)), r"in \(0, 1\]"),
    (dict(figure=4, examples_per_class=(2.5,)), "positive integers"),
    (dict(figure=4, fractions=(0.1, 0.1)), "repeat"),
    (dict(figure=5), "figure"),
])
def test_figure_grids_refuse_nonsense(options, message):
    with pytest.raises(ValueError, match=message):
        grids.figure_cells(**options)


def test_baselines_name_cells_of_the_same_grid():
    for grid in grids.GRIDS:
        cells = grids.grid_cells(grid, 6, fractions=(0.5,), pretraining_steps=200,
                                 checkpoint_every=100)
        names = [c.name for c in cells]
        assert len(set(names)) == len(names), grid
        assert {c.baseline for c in cells} - {None} <= set(names), grid
        assert any(c.baseline for c in cells), grid
    table4 = {c.name: c.baseline for c in grids.table_cells(4, 6, learning_rates=(1e-4, 5e-5))}
    assert table4["lr5e-05_xi0.9"] == "lr5e-05_xi1"  # ξ against ξ = 1 at the same rate
    assert table4["lr5e-05_xi1"] == "lr0.0001_xi1"
    assert table4["lr0.0001_xi1"] is None
    with pytest.raises(ValueError, match="grid"):
        grids.grid_cells("table9", 6)


def _labeled(labels):
    labels = np.asarray(labels, np.int32)
    return LabeledTexts([f"text {i}" for i in range(len(labels))], labels, ["a", "b", "c"], "toy")


def test_training_subsets_are_nested_and_seeded():
    train = _labeled(np.arange(300) % 3)
    small = grids.training_subset(train, ("fraction", 0.1), seed=4)
    large = grids.training_subset(train, ("fraction", 0.5), seed=4)
    assert len(small) == 30 and len(large) == 150
    assert set(small.texts) < set(large.texts)
    assert grids.training_subset(train, ("fraction", 0.1), seed=4).texts == small.texts
    assert grids.training_subset(train, ("fraction", 0.1), seed=5).texts != small.texts
    assert len(grids.training_subset(train, ("fraction", 1.0), seed=4)) == 300
    two = grids.training_subset(train, ("per_class", 2), seed=4)
    five = grids.training_subset(train, ("per_class", 5), seed=4)
    assert np.bincount(two.labels).tolist() == [2, 2, 2]
    assert np.bincount(five.labels).tolist() == [5, 5, 5]
    assert set(two.texts) < set(five.texts)
    with pytest.raises(ValueError, match="Class 'c'.*1 examples; 2 per class"):
        grids.training_subset(_labeled([0, 0, 1, 1, 2]), ("per_class", 2), seed=0)
    with pytest.raises(ValueError, match="no example at all"):
        grids.training_subset(train, ("fraction", 0.001), seed=0)


def test_epochs_grow_for_small_subsets_up_to_the_minimum_steps():
    assert grids._epochs_for(48, epochs=2, batch_size=24, min_train_steps=50) == 25
    assert grids._epochs_for(4800, epochs=2, batch_size=24, min_train_steps=50) == 2
    assert grids._epochs_for(48, epochs=2, batch_size=24, min_train_steps=0) == 2


TINY = dict(epochs=1, batch_size=16, learning_rate=1e-3, seed=0)


def _tiny_task(lines, train=60, test=20):
    records = [json.loads(line) for line in lines[:train + test]]
    names = sorted({r["label"] for r in records})
    data = LabeledTexts([r["text"] for r in records],
                        np.array([names.index(r["label"]) for r in records], np.int32),
                        names, "trec lines")
    rest, validation = data.subset(range(train), "train").split(0.2, seed=0)
    return TaskData(rest, validation, data.subset(range(train, train + test), "test"),
                    sequence_length=32)


def _trec_lines():
    with open(os.path.join(ROOT, "data", "trec", "train.jsonl")) as source:
        return source.readlines()


@pytest.mark.slow
def test_figure_2_grid_runs_each_rate_and_reports_curves(tmp_path):
    tasks = {"trec": _tiny_task(_trec_lines())}
    results = grids.run_grid("figure2", "tiny", tasks, str(tmp_path / "seed_0"), num_layers=2,
                             learning_rates=(1e-3, 3e-2), **{**TINY, "epochs": 2})
    assert [c.name for c, _ in results] == ["lr0.001", "lr0.03"]
    metrics = json.loads((tmp_path / "seed_0" / "lr0.03" / "metrics.json").read_text())
    assert metrics["settings"]["learning_rate"] == 3e-2
    assert [set(e) >= {"loss", "val_error"} for e in metrics["epochs"]] == [True, True]
    assert len(metrics["test"]["per_example_correct"]) == 20
    report = open(grid_reports.write_report("figure2", {0: results}, str(tmp_path))).read()
    assert "| lr0.03 | lr0.001 |" in report
    assert (tmp_path / "learning_rate_curves.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_figure_3_grid_pretrains_once_and_fine_tunes_each_snapshot(tmp_path):
    lines = _trec_lines()
    tasks = {"trec": _tiny_task(lines)}
    corpus = tmp_path / "corpus.jsonl"
    grids.write_corpus([json.loads(l)["text"] for l in lines[:60]], str(corpus))
    pretraining = dict(steps=4, warmup_steps=1, batch_size=8, sequence_length=32,
                       checkpoint_every=2, nsp=False)
    run = lambda seed: grids.run_grid(
        "figure3", "tiny", tasks, str(tmp_path / f"seed_{seed}"), num_layers=2,
        corpora={"itpt": [(str(corpus), 1.0)]}, pretraining=pretraining,
        pretraining_dir=str(tmp_path / "pretraining"), **{**TINY, "seed": seed})
    results = {0: run(0), 1: run(1)}
    assert [c.name for c, _ in results[0]] == ["step_0", "step_2", "step_4"]
    snapshots = tmp_path / "pretraining" / "itpt_snapshots" / "snapshots"
    assert sorted(os.listdir(snapshots)) == ["step_2", "step_4"]
    for seed in (0, 1):
        step_2 = json.loads((tmp_path / f"seed_{seed}" / "step_2" / "metrics.json").read_text())
        assert step_2["settings"]["backbone"] == str(snapshots / "step_2")
        assert step_2["settings"]["seed"] == seed
    step_0 = json.loads((tmp_path / "seed_0" / "step_0" / "metrics.json").read_text())
    assert step_0["settings"]["backbone"] == "tiny"
    pretrained = json.loads(
        (tmp_path / "pretraining" / "itpt_snapshots" / "metrics.json").read_text())
    assert pretrained["settings"]["backbone_snapshots"] is True
    report = open(grid_reports.write_report("figure3", results, str(tmp_path))).read()
    assert "| step_4 | step_0 |" in report and "paired Student-t interval" in report
    assert "| cell | seed 0 | seed 1 |" in report
    assert (tmp_path / "error_vs_pretraining_steps.png").exists()


@pytest.mark.slow
def test_figure_4_grid_trains_fit_and_itpt_fit_on_nested_subsets(tmp_path):
    lines = _trec_lines()
    tasks = {"trec": _tiny_task(lines, train=80)}
    corpus = tmp_path / "corpus.jsonl"
    grids.write_corpus([json.loads(l)["text"] for l in lines[:80]], str(corpus))
    pretraining = dict(steps=2, warmup_steps=1, batch_size=8, sequence_length=32,
                       checkpoint_every=2, nsp=False)
    results = grids.run_grid(
        "figure4", "tiny", tasks, str(tmp_path / "seed_0"), num_layers=2,
        corpora={"itpt": [(str(corpus), 1.0)]}, pretraining=pretraining,
        fractions=(0.25, 1.0), min_train_steps=6, **TINY)
    assert [c.name for c, _ in results] == [
        "fit_frac0.25", "itpt_fit_frac0.25", "fit_frac1", "itpt_fit_frac1"]
    small = json.loads((tmp_path / "seed_0" / "fit_frac0.25" / "metrics.json").read_text())
    whole = json.loads((tmp_path / "seed_0" / "itpt_fit_frac1" / "metrics.json").read_text())
    assert small["settings"]["epochs"] == 6  # 16 examples: 1 step per epoch, 6 steps at least
    # Few-shot cells train without the task's validation carve and keep the last epoch.
    assert "validation" not in small and "best_epoch" not in small
    assert results[0][1]["trec"]["train_subset"]["examples"] == 16
    assert whole["settings"]["epochs"] == 2  # 64 examples: 4 steps per epoch
    assert whole["settings"]["backbone"] == str(tmp_path / "seed_0" / "pretraining" / "itpt"
                                                / "backbone")
    report = open(grid_reports.write_report("figure4", {0: results}, str(tmp_path))).read()
    assert "| itpt_fit_frac0.25 | fit_frac0.25 |" in report
    classes = results[0][1]["trec"]["train_subset"]["classes"]
    assert f"fraction=0.25, examples=16, classes={classes}/6, epochs=6" in report
    assert (tmp_path / "error_vs_training_fraction.png").exists()


@pytest.mark.slow
def test_reproduce_runs_a_grid_over_seeds_resumes_and_reports(tmp_path):
    data = _write_task(tmp_path / "data", _trec_lines(), 80, 20)
    grid = tmp_path / "grid"
    command = [sys.executable, os.path.join(ROOT, "recipes", "reproduce.py"), "--table=4",
               f"--dataset={data}", "--backbone=tiny", "--epochs=1", "--batch_size=16",
               "--sequence_length=32", "--learning_rates=1e-3", "--seed=0",
               f"--output_dir={grid}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    cell = json.loads((grid / "seed_0" / "lr0.001_xi0.85" / "metrics.json").read_text())
    assert cell["settings"]["layer_decay"] == 0.85 and cell["settings"]["seed"] == 0
    assert len(cell["test"]["per_example_correct"]) == 20
    written = os.path.getmtime(grid / "seed_0" / "lr0.001_xi1" / "metrics.json")
    # Started again with a seed added, it runs only the new seed's cells.
    second = subprocess.run(command[:-2] + ["--seed=0,1", command[-1]], capture_output=True,
                            text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    assert os.path.getmtime(grid / "seed_0" / "lr0.001_xi1" / "metrics.json") == written
    report = (grid / "report.md").read_text()
    assert "| lr0.001_xi0.95 |" in report and "**" in report and " ± " in report
    assert "| cell | seed 0 | seed 1 |" in report
    assert "| lr0.001_xi0.85 | lr0.001_xi1 |" in report
    assert (grid / "error_vs_decay.png").read_bytes()[:4] == b"\x89PNG"
    cell = json.loads((grid / "seed_1" / "lr0.001_xi0.85" / "metrics.json").read_text())
    assert cell["settings"]["seed"] == 1
    # A seed list that leaves out seeds the directory holds would drop them from the report.
    fewer = subprocess.run(command[:-2] + ["--seed=1", command[-1]], capture_output=True,
                           text=True, timeout=900)
    assert fewer.returncode == 1 and "leaves out [0]" in fewer.stderr, fewer.stderr[-2000:]
    # Cells of the earlier one-seed layout are refused, not silently re-run.
    old = tmp_path / "old"
    (old / "lr0.001_xi1").mkdir(parents=True)
    (old / "lr0.001_xi1" / "run.json").write_text("{}")
    refused = subprocess.run(command[:-1] + [f"--output_dir={old}"], capture_output=True,
                             text=True, timeout=900)
    assert refused.returncode == 1 and "earlier one-seed layout" in refused.stderr
    # Another grid (or a shorter list) into the same directory would drop these cells
    # from the report: refused before anything is written.
    other = subprocess.run(command[:2] + ["--figure=2"] + command[3:-2] + ["--seed=0,1",
                           command[-1]], capture_output=True, text=True, timeout=900)
    assert other.returncode == 1 and "does not run (lr0.001_xi0.85" in other.stderr, (
        other.stderr[-2000:])
    assert sorted(os.listdir(grid)) == ["error_vs_decay.png", "report.md", "seed_0", "seed_1",
                                        "training_curves.png"]


@pytest.mark.slow
@pytest.mark.parametrize("flags, message", [
    (["--table=4", "--figure=2"], "exactly one of --table and --figure"),
    (["--figure=2", "--seeds=2", "--seed=1"], "--seeds=N or --seed=LIST, not both"),
    (["--figure=2", "--seed=1,1"], "distinct non-negative seeds"),
    (["--figure=2", "--seeds=0"], "--seeds must be at least 1"),
    (["--figure=4", "--fractions=0.5", "--examples_per_class=x"], "examples_per_class must be"),
    (["--figure=4", "--fractions=0.1,2"], r"fractions must be in \(0, 1\]"),
    (["--figure=3", "--pretrain_steps=250", "--checkpoint_every=100"], "multiple of"),
    (["--figure=4", "--examples_per_class=50"], "Class 'ABBR' of .* has 2 examples"),
    (["--figure=4", "--fractions=0.5", "--min_train_steps=-3"], "min_train_steps must be 0"),
    (["--table=7"], "name the other tasks with --multitask_datasets"),
])
def test_reproduce_refuses_nonsense_flags_in_one_line(tmp_path, flags, message):
    data = _write_task(tmp_path / "data", _trec_lines(), 40, 10)
    command = [sys.executable, os.path.join(ROOT, "recipes", "reproduce.py"), f"--dataset={data}",
               "--backbone=tiny", f"--output_dir={tmp_path / 'grid'}", *flags]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "reproduce.py: error:" in line
              or line.startswith("FATAL Flags parsing error")]
    assert len(errors) == 1 and re.search(message, errors[0]), result.stderr[-2000:]
    assert "Traceback" not in result.stderr and not (tmp_path / "grid").exists()


def _write_task(directory, lines, train, test):
    directory.mkdir()
    (directory / "train.jsonl").write_text("".join(lines[:train]))
    (directory / "test.jsonl").write_text("".join(lines[train:train + test]))
    return directory


@pytest.mark.slow
def test_reproduce_table_6_pretrains_once_per_corpus_and_resumes(tmp_path):
    with open(os.path.join(ROOT, "data", "trec", "train.jsonl")) as source:
        lines = source.readlines()
    data = _write_task(tmp_path / "trec", lines, 80, 20)
    grid = tmp_path / "grid"
    command = [sys.executable, os.path.join(ROOT, "recipes", "reproduce.py"), "--table=6",
               f"--dataset={data}", "--backbone=tiny", "--epochs=1", "--batch_size=16",
               "--sequence_length=32", "--learning_rate=1e-3", "--pretrain_steps=4",
               "--pretrain_warmup_steps=1", "--pretrain_batch_size=8", "--checkpoint_every=2",
               "--pretrain_sequence_length=32", f"--cross_domain_corpus={data}/train.jsonl@1",
               f"--cross_domain_corpus={data}/test.jsonl@1", f"--output_dir={grid}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = (grid / "report.md").read_text()
    for row in ("BERT-Feat", "BERT-FiT", "BERT-ITPT-FiT", "BERT-CDPT-FiT"):
        assert f"| {row} |" in report
    assert "| BERT-FiT |" in report and "4.20" in report  # the paper's TREC BERT-Feat figure
    feat = json.loads((grid / "seed_0" / "feat" / "metrics.json").read_text())
    assert feat["settings"]["classifier"] == "feature_bilstm" and "test" in feat
    itpt = json.loads((grid / "seed_0" / "itpt_fit" / "metrics.json").read_text())
    assert itpt["settings"]["backbone"] == str(grid / "pretraining" / "itpt" / "backbone")
    corpus = (grid / "corpora" / "in_task.jsonl").read_text().splitlines()
    assert len(corpus) == 80  # the whole training text, validation carve included
    pretrained = json.loads((grid / "pretraining" / "cdpt" / "metrics.json").read_text())
    assert pretrained["final_step"] == 4
    written = {p: os.path.getmtime(p) for p in (grid / "pretraining" / "cdpt" / "metrics.json",
                                                 grid / "seed_0" / "cdpt_fit" / "metrics.json")}
    again = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: os.path.getmtime(p) for p in written} == written


@pytest.mark.slow
def test_reproduce_table_7_runs_single_and_multi_task_cells(tmp_path):
    with open(os.path.join(ROOT, "data", "trec", "train.jsonl")) as source:
        lines = source.readlines()
    first = _write_task(tmp_path / "trec", lines, 60, 20)
    # A second task: the same questions labelled by whether they ask for a number.
    binary = [json.dumps({"text": json.loads(l)["text"], "label": str(json.loads(l)["label"] == "NUM")})
              + "\n" for l in lines[100:180]]
    second = _write_task(tmp_path / "isnum", binary, 60, 20)
    grid = tmp_path / "grid"
    command = [sys.executable, os.path.join(ROOT, "recipes", "reproduce.py"), "--table=7",
               f"--dataset={first}", f"--multitask_datasets={second}", "--backbone=tiny",
               "--epochs=1", "--batch_size=16", "--sequence_length=32", "--learning_rate=1e-3",
               f"--output_dir={grid}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = (grid / "report.md").read_text()
    assert "| method | trec: ours | trec: paper | isnum: ours | isnum: paper |" in report
    assert "| BERT-MFiT-FiT |" in report and "| BERT-CDPT-FiT |" not in report
    for task in ("trec", "isnum"):
        assert "test" in json.loads((grid / "seed_0" / "fit" / task / "metrics.json").read_text())
    joint = json.loads((grid / "seed_0" / "mfit_fit" / "metrics.json").read_text())
    assert set(joint["finetuned"]) == {"trec", "isnum"}
