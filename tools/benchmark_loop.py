r"""Host overhead of the training loop: steps/s on the tiny backbone, where a
step's arithmetic is small and the per-call cost (Python, dispatch, metric
reads to the host) shows.

kerasbert's `TrainingLoop` with --steps_per_loop values against Keras' `fit`
with the same `steps_per_execution`, on the same model, optimizer and
batches; every configuration is timed --repeats times in alternation (paired
runs) and the median is printed. With --workers=2 the loop runs as two
`MultiWorkerMirroredStrategy` workers on 127.0.0.1 (Keras 3.15's `fit` fails
under that strategy, docs/upstream/keras-multi-worker.md, so only the loop).

  .venv/bin/python tools/benchmark_loop.py
  .venv/bin/python tools/benchmark_loop.py --workers=2
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

import kerasbert  # noqa: E402
from kerasbert.training.distribute import make_strategy  # noqa: E402
from kerasbert.training.training_loop import TrainingLoop  # noqa: E402

flags.DEFINE_integer("steps", 160, "Timed steps per run (after an untimed epoch).")
flags.DEFINE_list("steps_per_loop", ["1", "16"], "Values compared.")
flags.DEFINE_integer("repeats", 3, "Paired repeats; the median is printed.")
flags.DEFINE_integer("batch_size", 8, "Global batch size.")
flags.DEFINE_integer("sequence_length", 16, "Tokens per example.")
flags.DEFINE_integer("workers", 1, "1: one process (loop and fit); 2: two workers (loop).")
flags.DEFINE_string("worker_index", None, "Internal: this process is worker N of --workers.")
FLAGS = flags.FLAGS


class EpochTimer(keras.callbacks.Callback):
    """Seconds from the second epoch's start to its last batch hook (the
    first epoch traces and warms up)."""

    def __init__(self):
        super().__init__()
        self.started = self.ended = None

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.started is not None:
            self.ended = time.perf_counter()


def _model_and_data(strategy):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        backbone, _ = kerasbert.load_backbone("tiny")
        model = kerasbert.LayerSelectedClassifier(backbone, num_classes=2, dropout=0.1)
    rng = np.random.default_rng(0)
    n = FLAGS.batch_size * 4
    x = {"token_ids": rng.integers(5, 100, (n, FLAGS.sequence_length)).astype("int32"),
         "segment_ids": np.zeros((n, FLAGS.sequence_length), "int32"),
         "padding_mask": np.ones((n, FLAGS.sequence_length), "int32")}
    y = rng.integers(0, 2, n).astype("int32")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(FLAGS.batch_size).repeat()
    return model, dataset


def _compile(model, strategy, steps_per_execution=1):
    with strategy.scope():
        optimizer = kerasbert.optimizers.build_optimizer(model, 2e-5, total_steps=10_000)
        model.compile(optimizer=optimizer,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"], steps_per_execution=steps_per_execution)


def time_loop(steps_per_loop, strategy):
    model, dataset = _model_and_data(strategy)
    _compile(model, strategy)
    timer = EpochTimer()
    loop = TrainingLoop(model, tempfile.mkdtemp(), steps_per_epoch=FLAGS.steps, epochs=2,
                        strategy=strategy, steps_per_loop=steps_per_loop,
                        checkpoint_every_steps=10 * FLAGS.steps, callbacks=[timer], verbose=0)
    loop.fit(lambda: dataset)
    return FLAGS.steps / (timer.ended - timer.started)


def time_fit(steps_per_execution, strategy):
    model, dataset = _model_and_data(strategy)
    _compile(model, strategy, steps_per_execution)
    timer = EpochTimer()
    model.fit(dataset, epochs=2, steps_per_epoch=FLAGS.steps, callbacks=[timer], verbose=0)
    return FLAGS.steps / (timer.ended - timer.started)


def _median(values):
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def single_process():
    strategy = tf.distribute.get_strategy()
    runs = {}
    for _ in range(FLAGS.repeats):
        for value in FLAGS.steps_per_loop:
            k = int(value)
            runs.setdefault(f"kerasbert_loop_steps_per_loop_{k}", []).append(
                time_loop(k, strategy))
            runs.setdefault(f"keras_fit_steps_per_execution_{k}", []).append(
                time_fit(k, strategy))
    return runs


def worker():
    strategy = make_strategy("multi_worker")
    runs = {}
    for _ in range(FLAGS.repeats):
        for value in FLAGS.steps_per_loop:
            k = int(value)
            runs.setdefault(f"kerasbert_loop_two_workers_steps_per_loop_{k}", []).append(
                time_loop(k, strategy))
    return runs


def two_workers():
    ports = []
    for _ in range(2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    for index in range(2):
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        processes.append(subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), f"--worker_index={index}",
             *[a for a in sys.argv[1:] if not a.startswith("--worker_index")]],
            stdout=subprocess.PIPE, text=True,
            env=dict(os.environ, TF_CONFIG=json.dumps(config))))
    outputs = [process.communicate(timeout=1800)[0] for process in processes]
    if any(process.returncode for process in processes):
        raise SystemExit(f"a worker failed: {[p.returncode for p in processes]}")
    return json.loads(outputs[0].strip().splitlines()[-1])


def main(_):
    if FLAGS.worker_index is not None:
        print(json.dumps(worker()))
        return
    runs = two_workers() if FLAGS.workers == 2 else single_process()
    report = {name: {"steps_per_second_median": round(_median(values), 1),
                     "runs": [round(v, 1) for v in values]}
              for name, values in runs.items()}
    print(json.dumps({"batch_size": FLAGS.batch_size, "sequence_length": FLAGS.sequence_length,
                      "steps": FLAGS.steps, "repeats": FLAGS.repeats, "results": report},
                     indent=2))


if __name__ == "__main__":
    app.run(main)
