"""The recipes as users run them: subprocesses with flags."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TREC = os.path.join(ROOT, "data", "trec")


def run_recipe(name, *flags, timeout=900):
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "recipes", name), *flags],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )
    return result


def trec_subset(directory, train_examples, test_examples=0):
    """A directory with the first TREC training lines as train (and test)."""
    directory.mkdir()
    with open(os.path.join(TREC, "train.jsonl")) as source:
        lines = source.readlines()
    (directory / "train.jsonl").write_text("".join(lines[:train_examples]))
    if test_examples:
        test_lines = lines[train_examples:train_examples + test_examples]
        (directory / "test.jsonl").write_text("".join(test_lines))
    return directory


@pytest.mark.slow
def test_finetune_recipe_writes_metrics_and_saved_model(tmp_path):
    small = trec_subset(tmp_path / "small", 300, 60)
    out = tmp_path / "run"
    result = run_recipe(
        "finetune.py", "--backbone=tiny", f"--train={small}", f"--test={small}",
        "--epochs=2", "--batch_size=16", "--learning_rate=1e-3", "--layers=last4",
        "--combine=max", "--truncation=head_tail", "--head_length=16",
        "--sequence_length=64", "--layer_decay=0.9", "--layer_decay_convention=official_code",
        "--schedule=slanted_triangular", "--weight_decay=0.01", f"--output_dir={out}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test error:" in result.stdout
    # The per-layer rate table is logged at start (L = 2, ξ = 0.9).
    assert "transformer_layer_0" in result.stderr and "0.9000" in result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert set(metrics["epochs"][0]) >= {"loss", "accuracy", "val_accuracy", "val_error"}
    assert metrics["settings"]["layers"] == "last4"
    assert metrics["test"]["examples"] == 60
    assert (out / "saved_model" / "saved_model.pb").exists()
    assert json.loads((out / "label_names.json").read_text()) == metrics["label_names"]


@pytest.mark.slow
def test_finetune_recipe_names_bad_input(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"text": "a", "label": "X"}\n{"txt": "b", "label": "Y"}\n')
    result = run_recipe(
        "finetune.py", "--backbone=tiny", f"--train={tmp_path}", f"--output_dir={tmp_path}/o"
    )
    assert result.returncode != 0
    assert "train.jsonl:2: missing field(s) ['text']" in result.stderr


@pytest.mark.slow
def test_finetune_recipe_long_text_shorthand_selects_hierarchical_model(tmp_path):
    small = trec_subset(tmp_path / "small", 120)
    out = tmp_path / "run"
    result = run_recipe(
        "finetune.py", "--backbone=tiny", f"--train={small}", "--epochs=1",
        "--long_text=segments_max", "--sequence_length=8", "--max_segments=4",
        f"--output_dir={out}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    settings = json.loads((out / "metrics.json").read_text())["settings"]
    assert (settings["truncation"], settings["segment_pooling"]) == ("segments", "max")
    assert settings["max_segments"] == 4
    assert (out / "saved_model" / "saved_model.pb").exists()


@pytest.mark.slow
def test_further_pretrain_then_finetune_from_its_backbone(tmp_path):
    small = trec_subset(tmp_path / "small", 200, 40)
    pretrained = tmp_path / "pretrained"
    result = run_recipe(
        "further_pretrain.py", "--backbone=tiny", f"--corpus={small / 'train.jsonl'}",
        f"--corpus={small / 'test.jsonl'}@0.5", "--nsp", "--steps=4", "--warmup_steps=1",
        "--checkpoint_every=2", "--batch_size=4", "--sequence_length=32",
        "--mixed_precision=mixed_bfloat16", "--jit_compile", f"--output_dir={pretrained}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((pretrained / "metrics.json").read_text())
    assert metrics["final_step"] == 4
    assert {"mlm_accuracy", "nsp_accuracy"} <= set(metrics["history"][-1])
    assert all(np.isfinite(row["loss"]) for row in metrics["history"])
    assert metrics["settings"]["mixed_precision"] == "mixed_bfloat16"
    result = run_recipe(
        "finetune.py", f"--backbone={pretrained / 'backbone'}", f"--train={small}",
        f"--test={small}", "--epochs=1", "--sequence_length=32", f"--output_dir={tmp_path / 'ft'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test error:" in result.stdout


@pytest.mark.slow
def test_multitask_recipe_joint_then_per_task(tmp_path):
    small = trec_subset(tmp_path / "small", 160, 30)
    sentiment = tmp_path / "sentiment.jsonl"
    sentiment.write_text("".join(
        json.dumps({"text": f"the film was {w}", "label": w}) + "\n" for w in ["good", "bad"] * 30
    ))
    out = tmp_path / "run"
    result = run_recipe(
        "multitask.py", "--backbone=tiny", f"--task=trec:{small}:{small}",
        f"--task=sentiment:{sentiment}", "--task_sequence_length=sentiment=16",
        "--task_truncation=sentiment=tail", "--sequence_length=32", "--epochs=1",
        "--batch_size=8", "--then_finetune", "--sampling=uniform",
        "--mixed_precision=mixed_bfloat16", "--jit_compile", f"--output_dir={out}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task_weights"] == {"trec": 0.5, "sentiment": 0.5}
    assert np.isfinite(metrics["joint_epochs"][0]["loss"])
    assert metrics["settings"]["jit_compile"] and metrics["settings"]["mixed_precision"]
    assert {"val_trec_accuracy", "val_sentiment_accuracy"} <= set(metrics["joint_epochs"][0])
    assert set(metrics["joint"]["trec"]) == {"validation", "test"}
    assert metrics["finetuned"]["trec"]["test"]["examples"] == 30
    assert metrics["settings"]["tasks"]["sentiment"]["truncation"] == "tail"
    for path in ("saved_model_trec", "saved_model_sentiment", "finetuned_trec/saved_model",
                 "shared_backbone"):
        assert (out / path).exists(), path


def test_multitask_task_flag_parsing():
    sys.path.insert(0, os.path.join(ROOT, "recipes"))
    try:
        import multitask
    finally:
        sys.path.pop(0)
    assert multitask.parse_task("imdb:tfds:imdb_reviews") == ("imdb", "tfds:imdb_reviews", None)
    assert multitask.parse_task("t:a/train.jsonl:a/test.jsonl") == (
        "t", "a/train.jsonl", "a/test.jsonl")
    with pytest.raises(ValueError, match="NAME:TRAIN_SPEC"):
        multitask.parse_task("nameonly")
