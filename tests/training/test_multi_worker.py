"""Two real `MultiWorkerMirroredStrategy` workers on 127.0.0.1 (TF_CONFIG)."""

import inspect
import json
import os
import random
import signal
import time

import keras
import numpy as np
import pytest

import kerasbert
from kerasbert.backbones import tiny_backbone_and_tokenizer
from kerasbert.data.datasets import LabeledTexts
from tests.helpers import finish_workers
from tests.helpers import run_two_workers
from tests.helpers import start_two_workers

FINE_TUNE = dict(sequence_length=16, batch_size=8, epochs=2, learning_rate=3e-3,
                 layer_decay=0.9, dropout=0.0, checkpoint_every_steps=4, export=False, verbose=0)


def texts(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    return LabeledTexts(
        [f"the film was {['good', 'bad'][l]} {'a ' * int(rng.integers(0, 12))}".strip()
         for l in labels], labels.astype(np.int32), ["pos", "neg"], f"synthetic-{seed}")


# argv: WORKER_INDEX ENTRY PRESET OUTPUT_DIR WEIGHTS_FILE [SECONDS_PER_STEP]
WORKER = f"""
import os, sys, tempfile, time
import numpy as np, keras, tensorflow as tf
import kerasbert
from kerasbert.data.datasets import LabeledTexts
from kerasbert.training.distribute import make_strategy
from kerasbert.training.training_loop import TrainingLoop

index, entry, preset, output_dir, weights_file = sys.argv[1:6]
pause = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
strategy = make_strategy("multi_worker")
FINE_TUNE = {FINE_TUNE!r}
{inspect.getsource(texts)}

class Probe(keras.callbacks.Callback):
    def __init__(self, name=""):
        super().__init__()
        self.path = weights_file.replace("WORKER", index + name)

    def on_train_batch_end(self, batch, logs=None):
        time.sleep(pause)  # a step long enough for a kill to land mid-training

    def on_train_end(self, logs=None):
        np.savez(self.path, *[w.numpy() for w in self.model.weights])


kerasbert.fine_tune(preset, texts(80, 0), output_dir, validation=texts(16, 1),
                    test=texts(16, 2), strategy=strategy, callbacks=[Probe()], **FINE_TUNE)
if entry == "all":
    tasks = {{"a": kerasbert.TaskData(texts(16, 3), texts(8, 4), sequence_length=16),
             "b": kerasbert.TaskData(texts(16, 5), sequence_length=16, truncation="tail")}}
    kerasbert.multitask_fine_tune(
        preset, tasks, output_dir + "_multitask", batch_size=8, epochs=1, learning_rate=3e-3,
        dropout=0.0, export=False, per_worker_input=True, strategy=strategy,
        callbacks=[Probe("_multitask")], verbose=0)
    kerasbert.further_pretrain(
        preset, [(os.path.join(os.path.dirname(output_dir), "corpus.txt"), 1.0)],
        output_dir + "_pretrain", steps=4, warmup_steps=1, batch_size=4, sequence_length=16,
        checkpoint_every=2, per_worker_input=True, strategy=strategy,
        callbacks=[Probe("_pretrain")], verbose=0)
    # float16: only worker 1's half of the first global batch overflows.
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    x[4:8] *= 3e3
    data = tf.data.Dataset.from_tensor_slices((x, (x[:, 0] > 0).astype("int32")))
    with strategy.scope():
        keras.utils.set_random_seed(3)
        model = keras.Sequential([
            keras.Input((4,)), keras.layers.Dense(8, activation="relu", dtype="mixed_float16"),
            keras.layers.Dense(2, dtype="float32")])
        model.compile(optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1)),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [w.numpy() for w in model.weights]
    for steps in (1, 4):
        TrainingLoop(model, tempfile.mkdtemp(), steps_per_epoch=steps, epochs=1,
                     strategy=strategy, verbose=0).fit(lambda: data.batch(8).repeat())
        if steps == 1:
            skipped = all(np.array_equal(a, w.numpy()) for a, w in zip(before, model.weights))
            scale = float(model.optimizer.dynamic_scale.numpy())
    print("float16", skipped, scale, float(np.abs(model.weights[0].numpy()).sum()))
"""


@pytest.fixture
def preset(tmp_path):
    """The tiny backbone without dropout: replicas would draw different masks."""
    directory = str(tmp_path / "tiny_no_dropout")
    backbone, tokenizer = tiny_backbone_and_tokenizer(dropout=0.0)
    backbone.save_to_preset(directory)
    tokenizer.save_to_preset(directory)
    return directory


def weights(path):
    with np.load(path) as arrays:
        return [arrays[f"arr_{i}"] for i in range(len(arrays.files))]


class FinalWeights(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = []

    def on_train_end(self, logs=None):
        self.weights = [w.numpy() for w in self.model.weights]


@pytest.mark.slow
def test_two_workers_train_as_one_process_resume_after_a_kill_and_skip_together(
        tmp_path, preset):
    # The reference: one process (this one) on the same global batch of 8.
    final = FinalWeights()
    kerasbert.fine_tune(preset, texts(80, 0), str(tmp_path / "single"), validation=texts(16, 1),
                        test=texts(16, 2), callbacks=[final], **FINE_TUNE)
    run = [preset, str(tmp_path / "run"), str(tmp_path / "weights_WORKER.npz")]
    (tmp_path / "corpus.txt").write_text(
        "the film was good .\n\nwho was galileo ?\n\nwhat is the name of the city ?\n\n" * 10)

    # Worker 1 is killed from outside at a random instant of training (after
    # a random one of its first step checkpoints; a step takes 0.25 s at
    # least, 20 steps in all). The chief stops with one line naming it;
    # launched again, the job finishes, then runs multi-task, further
    # pre-training and a float16 loop.
    processes = start_two_workers(WORKER, "fine_tune", *run, "0.25")
    checkpoint = tmp_path / "run" / "checkpoints" / f"step-{random.choice([4, 8]):08d}"
    deadline = time.time() + 240
    while not checkpoint.exists() and time.time() < deadline and processes[0].poll() is None:
        time.sleep(0.05)
    time.sleep(random.uniform(0.0, 0.5))
    processes[1].send_signal(signal.SIGKILL)
    results = finish_workers(processes, timeout=120)
    assert [code for code, _, _ in results] == [1, -9], [e[-2000:] for _, _, e in results]
    assert "WorkerLostError: worker 1 (127.0.0.1:" in results[0][2], results[0][2][-2000:]
    assert not (tmp_path / "run" / "metrics.json").exists()
    results = run_two_workers(WORKER, "all", *run, timeout=300)
    assert [code for code, _, _ in results] == [0, 0], [e[-2000:] for _, _, e in results]

    chief, other = weights(tmp_path / "weights_0.npz"), weights(tmp_path / "weights_1.npz")
    for a, b, c in zip(chief, other, final.weights, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, atol=1e-6)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    expected = json.loads((tmp_path / "single" / "metrics.json").read_text())
    assert metrics["resumed_from_step"] in (4, 8, 10, 12, 16)
    for row, want in zip(metrics["epochs"], expected["epochs"], strict=True):
        for key in want:
            assert row[key] == pytest.approx(want[key], abs=1e-6), key
    assert metrics["test"]["accuracy"] == expected["test"]["accuracy"]
    # Only the chief wrote, and what it wrote is a whole run directory.
    assert sorted(os.listdir(tmp_path / "run")) == sorted(os.listdir(tmp_path / "single"))
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["settings"]["strategy"] == "multi_worker x2"

    # Multi-task and further pre-training on per-worker input: in step.
    for name in ("_multitask", "_pretrain"):
        for a, b in zip(weights(tmp_path / f"weights_0{name}.npz"),
                        weights(tmp_path / f"weights_1{name}.npz"), strict=True):
            np.testing.assert_array_equal(a, b)
    assert (tmp_path / "run_multitask" / "shared_backbone" / "config.json").exists()
    history = json.loads((tmp_path / "run_pretrain" / "metrics.json").read_text())["history"]
    assert [row["step"] for row in history] == [2, 4]
    # float16: both workers skipped the overflowing step (scale 2^15 → 2^14)
    # and stayed identical afterwards.
    float16 = [next(line for line in out.splitlines() if line.startswith("float16"))
               for _, out, _ in results]
    assert float16[0] == float16[1] and float16[0].startswith("float16 True 16384.0 ")
