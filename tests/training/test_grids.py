import json
import os
import subprocess
import sys

import pytest

from kerasbert.training import grids

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_cells_of_each_table():
    assert [c.name for c in grids.table_cells(2, 12)] == [
        "head", "tail", "head_tail", "segments_mean", "segments_max", "segments_attention"]
    table3 = grids.table_cells(3, 12)
    assert len(table3) == 1 + 12 + 6 + 1
    assert {"layer_12", "last4_max", "all_concat"} <= {c.name for c in table3}
    assert set(grids.PAPER_ERRORS[3]) <= {c.name for c in table3}
    table4 = grids.table_cells(4, 12)
    assert [c.name for c in table4] == [
        f"lr{lr}_xi{xi}" for lr in ("2.5e-05", "2e-05") for xi in ("1", "0.95", "0.9", "0.85")]
    assert table4[1].settings == {"learning_rate": 2.5e-5, "layer_decay": 0.95}
    with pytest.raises(ValueError, match="table"):
        grids.table_cells(9, 12)


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
