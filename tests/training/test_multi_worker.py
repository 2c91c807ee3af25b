"""Two real `MultiWorkerMirroredStrategy` workers on 127.0.0.1 (TF_CONFIG)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from kerasbert.backbones import tiny_backbone_and_tokenizer
from tests.helpers import run_two_workers

# argv: WORKER_INDEX ENTRY STRATEGY PRESET OUTPUT_DIR WEIGHTS_FILE [KILL_AT_STEP]
WORKER = """
import os, sys
import numpy as np, keras
import kerasbert
from kerasbert.data.datasets import LabeledTexts
from kerasbert.training.distribute import make_strategy

index, entry, strategy_name, preset, output_dir, weights_file = sys.argv[1:7]
weights_file = weights_file.replace("WORKER", index)
kill_at = int(sys.argv[7]) if len(sys.argv) > 7 else 0
strategy = make_strategy(strategy_name)


class Probe(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if kill_at and int(self.model.optimizer.iterations.numpy()) == kill_at:
            os.kill(os.getpid(), 9)  # every worker dies after the same step

    def on_train_end(self, logs=None):
        np.savez(weights_file, *[w.numpy() for w in self.model.weights])


def texts(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    return LabeledTexts(
        [f"the film was {['good', 'bad'][l]} {'a ' * int(rng.integers(0, 12))}".strip()
         for l in labels], labels.astype(np.int32), ["pos", "neg"], f"synthetic-{seed}")


def common(name=None):
    probe = Probe()
    if name:
        probe_file = weights_file.replace(".npz", f"_{name}.npz")
        probe.on_train_end = lambda logs=None: np.savez(
            probe_file, *[w.numpy() for w in probe.model.weights])
    return dict(strategy=strategy, callbacks=[probe], verbose=0)


if entry == "fine_tune":
    kerasbert.fine_tune(
        preset, texts(80, 0), output_dir, validation=texts(16, 1), test=texts(16, 2),
        sequence_length=16, batch_size=8, epochs=2, learning_rate=3e-3, layer_decay=0.9,
        dropout=0.0, checkpoint_every_steps=4, export=False, **common())
else:
    tasks = {"a": kerasbert.Task(texts(16, 3), texts(8, 4), sequence_length=16),
             "b": kerasbert.Task(texts(16, 5), sequence_length=16, truncation="tail")}
    kerasbert.multitask_fine_tune(preset, tasks, output_dir + "_multitask", batch_size=8,
                                  epochs=1, learning_rate=3e-3, dropout=0.0, export=False,
                                  per_worker_input=True, **common("multitask"))
    corpus = os.path.join(os.path.dirname(output_dir), "corpus.txt")
    kerasbert.further_pretrain(preset, [(corpus, 1.0)], output_dir + "_pretrain", steps=4,
                               warmup_steps=1, batch_size=4, sequence_length=16,
                               checkpoint_every=2, per_worker_input=True, **common("pretrain"))
print("done", index)
"""


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    """The tiny backbone without dropout: replicas would draw different masks."""
    directory = str(tmp_path_factory.mktemp("tiny_no_dropout"))
    backbone, tokenizer = tiny_backbone_and_tokenizer(dropout=0.0)
    backbone.save_to_preset(directory)
    tokenizer.save_to_preset(directory)
    return directory


def weights(path):
    with np.load(path) as arrays:
        return [arrays[f"arr_{i}"] for i in range(len(arrays.files))]


def two_workers(entry, preset, directory, *extra):
    results = run_two_workers(WORKER, entry, "multi_worker", preset, str(directory / "run"),
                              str(directory / "weights_WORKER.npz"), *extra, timeout=240)
    return [code for code, _, _ in results], "\n".join(err[-2000:] for _, _, err in results)


@pytest.mark.slow
def test_two_workers_fine_tune_as_one_process_would_and_resume_after_a_kill(tmp_path, preset):
    # The reference: one process, the same global batch of 8.
    single = subprocess.run(
        [sys.executable, "-c", WORKER, "0", "fine_tune", "default", preset,
         str(tmp_path / "single"), str(tmp_path / "single.npz")],
        capture_output=True, text=True, timeout=240)
    assert single.returncode == 0, single.stderr[-3000:]
    # Both workers kill themselves after step 13 (checkpoints every 4 steps
    # and at the epoch end, step 10), then the job is launched again.
    codes, errors = two_workers("fine_tune", preset, tmp_path, "13")
    assert codes == [-9, -9], errors
    assert not (tmp_path / "run" / "metrics.json").exists()
    codes, errors = two_workers("fine_tune", preset, tmp_path)
    assert codes == [0, 0], errors

    chief, other = weights(tmp_path / "weights_0.npz"), weights(tmp_path / "weights_1.npz")
    for a, b, c in zip(chief, other, weights(tmp_path / "single.npz")):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, atol=1e-6)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    expected = json.loads((tmp_path / "single" / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == 12
    for row, want in zip(metrics["epochs"], expected["epochs"]):
        for key in want:
            assert row[key] == pytest.approx(want[key], abs=1e-6), key
    assert metrics["test"]["accuracy"] == expected["test"]["accuracy"]
    # Only the chief wrote, and what it wrote is a whole run directory.
    assert sorted(os.listdir(tmp_path / "run")) == sorted(os.listdir(tmp_path / "single"))
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["settings"]["strategy"] == "multi_worker x2"


@pytest.mark.slow
def test_two_workers_run_multitask_and_further_pretraining_on_per_worker_input(
        tmp_path, preset):
    (tmp_path / "corpus.txt").write_text(
        "the film was good .\n\nwho was galileo ?\n\nwhat is the name of the city ?\n\n" * 10)
    codes, errors = two_workers("multitask_then_pretrain", preset, tmp_path)
    assert codes == [0, 0], errors
    for name in ("multitask", "pretrain"):
        chief = weights(tmp_path / f"weights_0_{name}.npz")
        for a, b in zip(chief, weights(tmp_path / f"weights_1_{name}.npz")):
            np.testing.assert_array_equal(a, b)
    assert (tmp_path / "run_multitask" / "shared_backbone" / "config.json").exists()
    assert (tmp_path / "run_pretrain" / "backbone" / "config.json").exists()
    history = json.loads((tmp_path / "run_pretrain" / "metrics.json").read_text())["history"]
    assert [row["step"] for row in history] == [2, 4]
