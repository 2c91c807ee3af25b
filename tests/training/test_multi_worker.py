"""Two real `MultiWorkerMirroredStrategy` workers on 127.0.0.1 (TF_CONFIG)."""

import os

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


common = dict(strategy=strategy, callbacks=[Probe()], verbose=0)
if entry == "fine_tune":
    kerasbert.fine_tune(
        preset, texts(80, 0), output_dir, validation=texts(16, 1), test=texts(16, 2),
        sequence_length=16, batch_size=8, epochs=2, learning_rate=3e-3, layer_decay=0.9,
        dropout=0.0, checkpoint_every_steps=4, **common)
elif entry == "multitask":
    tasks = {"a": kerasbert.Task(texts(16, 3), texts(8, 4), sequence_length=16),
             "b": kerasbert.Task(texts(16, 5), sequence_length=16, truncation="tail")}
    kerasbert.multitask_fine_tune(preset, tasks, output_dir, batch_size=8, epochs=1,
                                  learning_rate=3e-3, dropout=0.0, export=False, **common)
else:
    corpus = os.path.join(os.path.dirname(output_dir), "corpus.txt")
    kerasbert.further_pretrain(preset, [(corpus, 1.0)], output_dir, steps=4, warmup_steps=1,
                               batch_size=4, sequence_length=16, checkpoint_every=2, **common)
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


def run_workers(entry, preset, directory, *extra):
    results = run_two_workers(
        WORKER, entry, "multi_worker", preset, str(directory / "run"),
        str(directory / "weights_WORKER.npz"), *extra, timeout=240)
    return results


@pytest.mark.slow
def test_two_workers_fine_tune_like_one_process_and_resume_exactly(tmp_path, preset):
    import subprocess
    import sys

    single = subprocess.run(
        [sys.executable, "-c", WORKER, "0", "fine_tune", "default", preset,
         str(tmp_path / "single"), str(tmp_path / "single.npz")],
        capture_output=True, text=True, timeout=240)
    assert single.returncode == 0, single.stderr[-3000:]
    results = run_two_workers(WORKER, "fine_tune", "multi_worker", preset,
                              str(tmp_path / "two"), str(tmp_path / "two_{}.npz"), timeout=240)
    for code, out, err in results:
        assert code == 0, err[-3000:]
