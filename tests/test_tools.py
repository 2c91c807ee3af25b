import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_plot_schedules_writes_png(tmp_path):
    output = tmp_path / "schedules.png"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "plot_schedules.py"),
         "--total_steps=50", f"--output={output}"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_long_text_benchmark_prints_a_row_per_strategy():
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "benchmark_long_text.py"),
         "--backbone=tiny", "--documents=4", "--batch_size=2", "--sequence_length=16",
         "--head_length=4", f"--data={os.path.join(ROOT, 'data', 'trec', 'test.jsonl')}",
         "--strategies=head_tail,segments_attention"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert [row.split("|")[1].strip() for row in rows[1:]] == ["head_tail", "segments_attention"]


def test_summarize_runs_prints_errors_in_percent(tmp_path):
    import json

    run = tmp_path / "lr1e-4"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({
        "validation": {"error": 0.0477}, "test": {"error": 0.034}, "best_epoch": 4,
        "train_seconds": 271.6,
    }))
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "summarize_runs.py"), str(run),
         str(tmp_path / "unfinished")], capture_output=True, text=True, timeout=60,
    )
    assert result.stdout.splitlines()[-1] == "| lr1e-4 | 4.77 | 3.40 | 4 | 272 |"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["throughput", "end_to_end", "profile", "inference"])
def test_benchmark_prints_figures(tmp_path, mode):
    import json

    data = tmp_path / "data"
    data.mkdir()
    with open(os.path.join(ROOT, "data", "trec", "train.jsonl")) as source:
        lines = source.readlines()
    (data / "train.jsonl").write_text("".join(lines[:48]))
    (data / "test.jsonl").write_text("".join(lines[48:64]))
    (data / "long.jsonl").write_text("".join(lines[64:70]))
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "benchmark.py"), f"--mode={mode}",
         "--backbone=tiny", "--steps=2", "--sequence_length=16", "--batch_size=8",
         "--epochs=1", f"--data_dir={data}", f"--imdb={data}/long.jsonl", "--imdb_texts=6",
         "--latency_texts=2"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    if mode == "inference":
        # Each artifact timed in its own process, both against their ceiling.
        figures = json.loads(result.stdout)
        limits = figures["ceiling"]
        assert limits["fp32_gemm_gflops"] > 0 and limits["int8_gemm_gflops"] > 0
        for artifact in ("kerasbert_saved_model", "kerasbert_int8"):
            for name in ("trec", "imdb"):
                assert figures[artifact][name]["texts_per_second"] > 0
                assert limits[artifact][name]["model_gflop"] > 0
                assert 0 < limits[artifact][name]["fraction_of_ceiling"] < 1
            assert figures[artifact]["peak_host_memory_mb"] > 0
        return
    figures = json.loads(result.stdout)["kerasbert"]
    limit = figures["ceiling"]
    assert limit["fp32_gemm_gflops"] > 0
    paths = {"profile": ["train_step"], "throughput": ["training", "inference"],
             "end_to_end": ["training", "evaluation"]}[mode]
    for path in paths:
        assert 0 < limit[path]["fraction_of_ceiling"] < 1, limit
    if mode == "profile":
        import kerasbert

        # Timings are figures to print, never compared here: on a tiny model
        # noise can exceed a step's parts (CI once saw train_step < forward).
        # backward_ms is a difference of two timings, so only finite.
        for part in ("forward_ms", "optimizer_update_ms", "train_step_ms"):
            assert math.isfinite(figures[part]) and figures[part] > 0, (part, figures)
        assert math.isfinite(figures["backward_ms"])
        backbone, _ = kerasbert.load_backbone("tiny")
        head = backbone.hidden_dim * 2 + 2  # the 2-class softmax layer
        pooler = backbone.hidden_dim ** 2 + backbone.hidden_dim  # kept frozen: never read
        assert figures["trainable_parameters"] == backbone.count_params() - pooler + head
        return
    assert figures["train_examples_per_second"] > 0 and figures["peak_host_memory_mb"] > 0
    if mode == "end_to_end":
        assert 0 <= figures["test_error"] <= 1 and figures["wall_seconds"] > 0
