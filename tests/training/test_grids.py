import json
import os
import subprocess
import sys

import pytest

from kerasbert.reproduction import reports as grid_reports
from kerasbert.reproduction import grids

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


def _run(error, epochs=2):
    return {"validation": {"error": error + 0.01},
            "test": {"error": error},
            "epochs": [{"loss": 1.0 / (e + 1)} for e in range(epochs)]}


def test_report_of_table_6_has_paper_figures_and_relative_reduction(tmp_path):
    cells = grids.table_cells(6, 6, corpora=("itpt",))
    results = [(c, {"trec": _run(e)}) for c, e in zip(cells, (0.05, 0.04, 0.03))]
    report = open(grid_reports.write_report(6, results, str(tmp_path), "cmd", "trec")).read()
    assert "| BERT-Feat | 5.00 | 4.20 | – |" in report
    assert "| BERT-FiT | 4.00 | 2.80 | +20.0 % |" in report
    assert "| BERT-ITPT-FiT | **3.00** | 3.20 | +40.0 % | backbone=pretraining/itpt/backbone |" in report
    assert (tmp_path / "error_per_cell.png").read_bytes()[:4] == b"\x89PNG"
    other = open(grid_reports.write_report(6, results, str(tmp_path), "", "mydata")).read()
    assert "no figures for mydata" in other


def test_report_of_table_3_compares_layers_only_at_the_papers_depth(tmp_path):
    for num_layers, shown in ((12, "| layer_1 | 11.00 | 11.07 |"), (6, "| layer_1 | 11.00 | – |")):
        cells = grids.table_cells(3, num_layers)
        results = [(c, {"trec": _run(0.111 - 0.001 * i)}) for i, c in enumerate(cells)]
        report = open(grid_reports.write_report(3, results, str(tmp_path))).read()
        assert shown in report
        assert "| last4_concat |" in report and "5.43 |" in report  # sets compare by name
        assert ("left out beside this 6-layer encoder" in report) == (num_layers == 6)


def test_report_of_table_4_lays_out_rates_by_decay(tmp_path):
    cells = grids.table_cells(4, 6, learning_rates=(1e-4, 2e-5))
    results = [(c, {"trec": _run(e / 100)}) for c, e in zip(cells, range(8, 0, -1))]
    report = open(grid_reports.write_report(4, results, str(tmp_path))).read()
    assert "| lr | ξ=1.00 | ξ=0.95 | ξ=0.90 | ξ=0.85 |" in report
    assert "| 0.0001 | 8.00 | 7.00 | 6.00 | 5.00 |" in report
    assert "| 2e-05 | 4.00 | 3.00 | 2.00 | **1.00** |" in report
    assert "| lr2e-05_xi0.95 | 3.00 | 5.40 |" in report  # the paper's cell beside ours
    assert (tmp_path / "error_vs_decay.png").exists()


def test_report_of_table_7_has_a_column_pair_per_task(tmp_path):
    cells = grids.table_cells(7, 6, corpora=())
    fit = {"imdb": _run(0.06), "trec": _run(0.03)}
    mfit = {"imdb": {**_run(0.05), "joint": _run(0.07)},
            "trec": {"validation": {"error": 0.02}, "joint": _run(0.04)}}
    report = open(grid_reports.write_report(7, list(zip(cells, (fit, mfit))), str(tmp_path))).read()
    assert "| method | imdb: ours | imdb: paper | trec: ours | trec: paper |" in report
    assert "| BERT-FiT | 6.00 (tes.) | 5.40 | 3.00 (tes.) | 2.80 |" in report
    assert "| BERT-MFiT-FiT | **5.00** (tes.) | 5.36 | **2.00** (val.) | – |" in report
    assert "| BERT-MFiT (joint phase only) | 7.00 (tes.) | – | 4.00 (tes.) | – |" in report


@pytest.mark.slow
def test_reproduce_runs_a_grid_resumes_and_reports(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with open(os.path.join(ROOT, "data", "trec", "train.jsonl")) as source:
        lines = source.readlines()
    (data / "train.jsonl").write_text("".join(lines[:80]))
    (data / "test.jsonl").write_text("".join(lines[80:100]))
    command = [sys.executable, os.path.join(ROOT, "recipes", "reproduce.py"), "--table=4",
               f"--dataset={data}", "--backbone=tiny", "--epochs=1", "--batch_size=16",
               "--sequence_length=32", "--learning_rates=1e-3", f"--output_dir={tmp_path / 'grid'}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = (tmp_path / "grid" / "report.md").read_text()
    assert "| lr0.001_xi0.95 |" in report and "**" in report
    assert (tmp_path / "grid" / "error_vs_decay.png").read_bytes()[:4] == b"\x89PNG"
    cell = json.loads((tmp_path / "grid" / "lr0.001_xi0.85" / "metrics.json").read_text())
    assert cell["settings"]["layer_decay"] == 0.85 and "test" in cell
    written = os.path.getmtime(tmp_path / "grid" / "lr0.001_xi1" / "metrics.json")
    again = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert os.path.getmtime(tmp_path / "grid" / "lr0.001_xi1" / "metrics.json") == written


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
    feat = json.loads((grid / "feat" / "metrics.json").read_text())
    assert feat["settings"]["classifier"] == "feature_bilstm" and "test" in feat
    itpt = json.loads((grid / "itpt_fit" / "metrics.json").read_text())
    assert itpt["settings"]["backbone"] == str(grid / "pretraining" / "itpt" / "backbone")
    corpus = (grid / "corpora" / "in_task.jsonl").read_text().splitlines()
    assert len(corpus) == 80  # the whole training text, validation carve included
    pretrained = json.loads((grid / "pretraining" / "cdpt" / "metrics.json").read_text())
    assert pretrained["final_step"] == 4
    written = {p: os.path.getmtime(p) for p in (grid / "pretraining" / "cdpt" / "metrics.json",
                                                 grid / "cdpt_fit" / "metrics.json")}
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
        assert "test" in json.loads((grid / "fit" / task / "metrics.json").read_text())
    joint = json.loads((grid / "mfit_fit" / "metrics.json").read_text())
    assert set(joint["finetuned"]) == {"trec", "isnum"}
