"""One training driver for every kerasbert run: epochs, validation, the best
epoch, logs, and step checkpoints that resume exactly.

Keras' `fit` cannot resume in the middle of an epoch (its `BackupAndRestore`
restarts the epoch, and the input order after a restart differs from the
order an uninterrupted run sees), so kerasbert drives training itself,
cut as TF Model Garden's Orbit cuts it:

- the trainer (`kerasbert.training.trainer.Trainer`) runs `steps_per_loop`
  steps of `strategy.run` (the model's own `compute_loss`,
  `compute_metrics` and optimizer) inside one `tf.function` call;
- the controller (`TrainingLoop`, here) decides on the host when to
  evaluate, checkpoint, log and call Keras callbacks, and sizes each call
  so that none crosses an epoch end or a checkpoint step;
- checkpoints (`kerasbert.training.checkpoint_directory`) are
  `tf.train.Checkpoint`s of named variables with their JSON state.

The input stream is deterministic and fast-forwarded to the checkpoint's
step on resume. Losses, metrics, loss scaling and the optimizer stay Keras'.

The same loop serves every strategy (default, mirrored, multi-worker, TPU):
Keras 3.15's `fit` fails under `MultiWorkerMirroredStrategy`
(docs/upstream/keras-multi-worker.md), and one code path keeps what users see
— progress, validation, best epoch, logs, checkpoints, resume — the same
under all of them. Only the chief writes files; every worker takes part in
every collective (metric reads, checkpoints), at the same steps.
"""

import csv
import io
import math
import os

import keras
import tensorflow as tf

from kerasbert.training.checkpoint_directory import BEST_CHECKPOINT
from kerasbert.training.checkpoint_directory import CheckpointDirectory
from kerasbert.training.distribute import barrier
from kerasbert.training.distribute import check_same_on_every_worker
from kerasbert.training.distribute import is_chief
from kerasbert.training.trainer import Trainer
from kerasbert.training.trainer import default_steps_per_loop
from kerasbert.utils.console import is_interactive
from kerasbert.utils.files import atomic_path

CHECKPOINT_DIR = "checkpoints"
HISTORY_FILE = "history.csv"
LOG_DIR = "logs"
# About a minute of MiniLM training on two CPU cores: what a kill may cost.
DEFAULT_CHECKPOINT_EVERY_STEPS = 200


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


class TrainingLoop:
    """Train a compiled Keras model for whole epochs, resumably at any step.

    Each step does what Keras' `train_step` does (the model's loss, metrics,
    optimizer, loss scaling) under `strategy.run`; `steps_per_loop` steps run
    in one `tf.function` call. A model that overrides `train_step` is
    refused (see `kerasbert.training.trainer.Trainer`). After every epoch the
    model is evaluated on the validation data (`model.test_step`), the row
    is added to `history.csv` and TensorBoard (`logs/train`,
    `logs/validation`), and with a `monitor` the weights of the best epoch
    so far are kept in `checkpoints/best/`.

    Every `checkpoint_every_steps` steps and at every epoch end, the whole
    training state is saved atomically in `checkpoints/step-N/`: model
    variables (dropout seed states included), optimizer slots, the running
    metric totals of the epoch, the step, the history and the best epoch, as
    a `tf.train.Checkpoint` of variables named by their place in the model
    (see `kerasbert.training.checkpoint_directory`). A loop started again
    on the same directory restores it and fast-forwards a fresh copy of the
    (deterministic) training stream to that step, so a killed run ends with
    the weights and metrics of an uninterrupted run, whatever
    `steps_per_loop` either used. At most `checkpoint_every_steps` steps of
    work are lost.

    Metrics reach the host only when logged: at every epoch end and
    checkpoint, and after every loop while a progress bar is drawn (verbose
    1 on a terminal) or a callback has a batch-end hook. A loss that becomes
    NaN or infinite stops training with `NonFiniteLossError` at the first
    such read, before that step's checkpoint, naming the steps since the
    last read.

    Args:
        model: a compiled `keras.Model`, built inside `strategy.scope()`.
        directory: str. Where checkpoints, `history.csv` and logs go.
        steps_per_epoch: int. Steps of one epoch.
        epochs: int. Epochs to train.
        strategy: `tf.distribute.Strategy` or None (the default strategy).
        monitor: str or None. A validation metric to maximise, e.g.
            `"val_accuracy"`; `None` keeps no best weights.
        checkpoint_every_steps: int. Steps between mid-epoch checkpoints.
        keep_checkpoints: int. How many recent checkpoints stay on disk.
        jit_compile: bool. Compile the steps with XLA.
        per_worker_input: bool. `fit`'s `train_stream` takes a
            `tf.distribute.InputContext` and builds this worker's own share
            of the input (sharded raw examples, batches of the per-replica
            size), distributed with `distribute_datasets_from_function`.
            Default: one pipeline, split by the strategy, which reproduces
            the single-process batches exactly.
        callbacks: list of `keras.callbacks.Callback` or None. Their epoch
            hooks run as under `fit`; their batch hooks run once per loop of
            `steps_per_loop` steps, as Keras runs them under
            `steps_per_execution`: `on_train_batch_begin` with the loop's
            first batch number within the epoch, `on_train_batch_end` with
            its last and the running metrics. They run after the loop's own
            logging and checkpointing. Under several workers, pass the same
            callbacks on every worker: a batch-end hook makes every loop end
            a metric read, which all workers join.
        epoch_snapshot: callable or None. Called on the chief as
            `epoch_snapshot(epoch)` (1-based) at each epoch's end, before the
            epoch's checkpoint is written: a run killed between the two
            redoes the epoch and writes the snapshot again, so no finished
            epoch lacks one (a callback's `on_epoch_end` runs after the
            checkpoint). Write atomically.
        verbose: `"auto"`, 0, 1 or 2. 0 silent, 1 a progress bar moved after
            every loop, 2 one line per epoch. When standard output is not a
            terminal (a log file), 1 and `"auto"` print as 2, as Keras'
            `"auto"` intends: a bar redrawn per loop would fill the file.
            Under `MultiWorkerMirroredStrategy` the bar moves only at
            checkpoints and epoch ends, where every worker reads the
            metrics.
        steps_per_loop: int or None. Training steps per `tf.function` call
            (fewer before an epoch end or a checkpoint step). None: 1 on a
            CPU, 32 on a GPU, 100 on a TPU
            (`kerasbert.training.trainer.DEFAULT_STEPS_PER_LOOP`).

    Examples:
    ```python
    import tempfile
    import numpy as np, tensorflow as tf
    from kerasbert.training.training_loop import TrainingLoop
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    data = tf.data.Dataset.from_tensor_slices(
        (np.eye(3, dtype="float32"), np.array([0, 1, 1]))).batch(3)
    loop = TrainingLoop(model, tempfile.mkdtemp(), steps_per_epoch=2, epochs=2,
                        monitor="val_accuracy", verbose=0, steps_per_loop=2)
    history = loop.fit(lambda: data.repeat(), lambda: data)
    [row["epoch"] for row in history]  # [1, 2]
    ```
    """

    NonFiniteLossError = NonFiniteLossError
    DEFAULT_CHECKPOINT_EVERY_STEPS = DEFAULT_CHECKPOINT_EVERY_STEPS

    def __init__(
        self,
        model,
        directory,
        *,
        steps_per_epoch,
        epochs,
        strategy=None,
        monitor=None,
        checkpoint_every_steps=DEFAULT_CHECKPOINT_EVERY_STEPS,
        keep_checkpoints=1,
        jit_compile=False,
        per_worker_input=False,
        callbacks=None,
        epoch_snapshot=None,
        verbose=1,
        steps_per_loop=None,
    ):
        self.strategy = strategy or tf.distribute.get_strategy()
        if steps_per_loop is None:
            steps_per_loop = default_steps_per_loop(self.strategy)
        for name, value in (("steps_per_epoch", steps_per_epoch), ("epochs", epochs),
                            ("checkpoint_every_steps", checkpoint_every_steps),
                            ("keep_checkpoints", keep_checkpoints),
                            ("steps_per_loop", steps_per_loop)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer. Received: {value!r}")
        if verbose not in ("auto", 0, 1, 2) or isinstance(verbose, bool):
            raise ValueError(f"`verbose` must be 'auto', 0, 1 or 2. Received: {verbose!r}")
        self.model = model
        self.directory = directory
        self.steps_per_epoch = steps_per_epoch
        self.epochs = epochs
        self.monitor = monitor
        self.checkpoint_every_steps = checkpoint_every_steps
        self.keep_checkpoints = keep_checkpoints
        self.jit_compile = jit_compile
        self.per_worker_input = per_worker_input
        self.steps_per_loop = steps_per_loop
        self.epoch_snapshot = epoch_snapshot
        self.trainer = Trainer(model, self.strategy, jit_compile=jit_compile)
        self.checkpoints = CheckpointDirectory(
            os.path.join(directory, CHECKPOINT_DIR), self.strategy, keep_checkpoints
        )
        callbacks = list(callbacks or [])
        self.callbacks = keras.callbacks.CallbackList(
            callbacks, model=model, add_history=False, add_progbar=False,
            verbose=0, epochs=epochs, steps=steps_per_epoch,
        )
        self.chief = is_chief(self.strategy)
        # The chief reports for everyone.
        self.verbose = resolve_verbose(verbose) if self.chief else 0
        multi_worker = isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy)
        # Whether metrics are read after every loop; the same on every worker.
        self._read_every_loop = (
            any(_has_batch_end_hook(c) for c in callbacks)
            or (self.verbose == 1 and not multi_worker)
        )
        self.step = 0
        self.history = []
        self.best = None  # {"epoch": int, "value": float}
        self.resumed_from_step = 0
        self._built = False
        self._finite_through = 0  # the last step at which the loss was read finite

    @property
    def total_steps(self):
        return self.steps_per_epoch * self.epochs

    # === Training ===

    def fit(self, train_stream, validation=None):
        """Train to `epochs`, resuming from the directory's last checkpoint.

        Args:
            train_stream: a function returning the endless training
                `tf.data.Dataset`: the same sequence of batches every time it
                is called (seeded shuffling), so a restart can skip to its
                step. With `per_worker_input`, a function of a
                `tf.distribute.InputContext`.
            validation: a function returning the finite validation dataset,
                or None.

        Returns:
            The per-epoch history: dicts with `epoch` (1-based) and the
            training and `val_` metrics.
        """
        self._build(train_stream)
        barrier(self.strategy)  # the chief's checkpoint files are complete
        self.resumed_from_step = self.step = self.restore()
        check_same_on_every_worker(self.strategy, self.step, "the checkpoint step")
        if self.verbose and 0 < self.step < self.total_steps:
            print(f"Resuming from step {self.step} of {self.total_steps} (the last checkpoint "
                  f"in {self.checkpoints.path}).", flush=True)
        if self.step >= self.total_steps:
            if self.chief:
                self._write_history()  # restored as trained, if lost since
            return self.history
        if self.per_worker_input:
            if len(self.strategy.extended.worker_devices) > 1:
                raise ValueError(
                    "`per_worker_input` needs one replica per worker; this worker has "
                    f"{len(self.strategy.extended.worker_devices)}. Use the default input."
                )
            # Each worker consumes one batch of its own stream per step.
            distributed = self.strategy.distribute_datasets_from_function(
                lambda context: train_stream(context).skip(self.step)
            )
        else:
            dataset = train_stream().skip(self.step)  # the input position
            distributed = self.strategy.experimental_distribute_dataset(dataset)
        iterator = iter(distributed)
        self._finite_through = self.step
        progress = None
        self.model.stop_training = False
        self.callbacks.on_train_begin()
        while self.step < self.total_steps:
            epoch, batch = divmod(self.step, self.steps_per_epoch)
            if progress is None or batch == 0:
                if batch == 0:
                    self.model.reset_metrics()
                self.callbacks.on_epoch_begin(epoch)
                progress = self._progress_bar(epoch, batch)
            steps = self._loop_size()
            self.callbacks.on_train_batch_begin(batch)
            self.trainer.train(iterator, steps)
            self.step += steps
            last_batch = batch + steps - 1
            epoch_done = self.step % self.steps_per_epoch == 0
            checkpoint_due = epoch_done or self.step % self.checkpoint_every_steps == 0
            logs = None
            if checkpoint_due or self._read_every_loop:
                logs = self._logged_metrics(epoch)
            self.callbacks.on_train_batch_end(last_batch, logs)
            if epoch_done:
                logs = self._end_epoch(epoch, logs, validation)
            if logs is not None:
                progress.stateful_metrics.update(logs)
            progress.update(last_batch + 1, list(logs.items()) if logs else None,
                            finalize=epoch_done)
            if checkpoint_due:
                self.save()
            if epoch_done:
                self.callbacks.on_epoch_end(epoch, logs)
            if self.model.stop_training:  # e.g. keras.callbacks.EarlyStopping
                break
        self.callbacks.on_train_end()
        return self.history

    def _loop_size(self):
        # A loop never crosses an epoch end or a checkpoint step.
        return min(self.steps_per_loop,
                   self.steps_per_epoch - self.step % self.steps_per_epoch,
                   self.checkpoint_every_steps - self.step % self.checkpoint_every_steps)

    def _logged_metrics(self, epoch):
        logs = self.trainer.metric_values()
        loss = logs.get("loss", 0.0)
        if not math.isfinite(loss):
            first = self._finite_through + 1
            steps = (f"at step {self.step}" if first == self.step
                     else f"between step {first} and {self.step}")
            raise NonFiniteLossError(
                f"The training loss became {loss} {steps} (epoch {epoch + 1}). Lower the "
                "learning rate, or with mixed_float16 check the loss scaling; nothing was "
                "exported."
            )
        self._finite_through = self.step
        return logs

    def _end_epoch(self, epoch, logs, validation):
        logs = dict(logs)
        if validation is not None:
            logs.update({f"val_{k}": v for k, v in self.evaluate(validation()).items()})
        row = {"epoch": epoch + 1, **logs}
        self.history.append(row)
        if self.monitor:
            if self.monitor not in logs:
                raise ValueError(
                    f"`monitor` {self.monitor!r} is not among the logged metrics {sorted(logs)}."
                )
            if self.best is None or logs[self.monitor] > self.best["value"]:
                self.best = {"epoch": epoch + 1, "value": logs[self.monitor]}
                self.checkpoints.save_best(self.model, {"best": self.best})
        if self.chief:
            if self.epoch_snapshot is not None:
                self.epoch_snapshot(epoch + 1)
            self._write_history()
            self._write_summaries(row)
        return logs

    def evaluate(self, dataset):
        """The model's loss and metrics over a finite dataset, as floats."""
        return self.trainer.evaluate(dataset)

    def predicted_classes(self, dataset):
        """The model's most probable class for each example of a finite
        dataset of `(x, y)` batches, in the dataset's order, as a numpy array.

        Runs on the strategy's default device, outside replica context, so
        that the order of the examples is the dataset's.
        """
        return self.trainer.predicted_classes(dataset)

    def _build(self, train_stream):
        if self._built:
            return
        stream = train_stream(tf.distribute.InputContext()) if self.per_worker_input else (
            train_stream())
        self.trainer.build(stream.element_spec)
        self._built = True

    def _progress_bar(self, epoch, batch):
        if self.verbose == 1 or (self.verbose == 2 and batch == 0):
            print(f"Epoch {epoch + 1}/{self.epochs}"
                  + (f" (resumed at step {batch})" if batch else ""), flush=True)
        # The logged values are running means already: show them as they
        # are (their names join `stateful_metrics` when first read).
        bar = keras.utils.Progbar(self.steps_per_epoch, verbose=self.verbose,
                                  stateful_metrics=[])
        if batch and self.verbose == 1:
            bar.update(batch)  # a resumed epoch's bar starts where it stopped
        return bar

    # === Logs ===

    def _write_history(self):
        names = ["epoch"] + sorted({k for row in self.history for k in row} - {"epoch"})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, names, restval="")
        writer.writeheader()
        writer.writerows(self.history)
        with atomic_path(os.path.join(self.directory, HISTORY_FILE)) as path:
            with open(path, "w", encoding="utf-8", newline="") as file:
                file.write(buffer.getvalue())

    def _write_summaries(self, row):
        # A resumed run may write an epoch's scalars twice; TensorBoard shows
        # the later event, which holds the same values.
        for split, prefix in (("train", ""), ("validation", "val_")):
            values = {
                k[len(prefix):]: v for k, v in row.items()
                if k != "epoch" and (k.startswith("val_") == bool(prefix))
            }
            if not values:
                continue
            writer = tf.summary.create_file_writer(os.path.join(self.directory, LOG_DIR, split))
            with writer.as_default():
                for name, value in values.items():
                    tf.summary.scalar(f"epoch_{name}", value, step=row["epoch"])
            writer.close()

    # === Checkpoints ===

    def save(self):
        """Checkpoint the whole training state at the current step."""
        self.checkpoints.save(self.model, self.step,
                              {"history": self.history, "best": self.best},
                              final=self.step >= self.total_steps)

    def latest_checkpoint(self):
        """The directory of the last complete checkpoint, or None.

        `checkpoints/latest.json` names it; should that pointer be
        unreadable (edited by hand, say) or name a missing checkpoint, the
        newest `step-N` is used.
        """
        name = self.checkpoints.latest()
        return None if name is None else os.path.join(self.checkpoints.path, name)

    def restore(self, model_only=False):
        """Load the last checkpoint; return its step (0 without one).

        With `model_only`, only the model's variables are loaded (the final
        weights of a finished training).
        """
        state = self.checkpoints.restore(self.model, model_only=model_only)
        if state is None:
            return 0
        if state.get("final") and state["step"] < self.total_steps:
            # It holds the model alone: more steps would restart the optimizer.
            raise ValueError(
                f"{self.checkpoints.path} holds a training finished at step {state['step']} "
                f"(its final checkpoint keeps no optimizer state), not a training of "
                f"{self.total_steps} steps; train in another directory.")
        if not model_only:
            self.history = state["history"]
            self.best = state["best"]
        return state["step"]

    def restore_best(self):
        """Load the best epoch's weights (with a `monitor`), else the final ones."""
        barrier(self.strategy)  # the chief's last writes are complete
        if self.monitor and self.checkpoints.has_best():
            self.checkpoints.restore(self.model, BEST_CHECKPOINT, model_only=True)
        else:
            self.restore(model_only=True)


def resolve_verbose(verbose, stream=None):
    """The verbosity a loop prints with: `"auto"` is 1, and 1 is 2 unless
    `stream` (default: standard output) is a terminal or a notebook, where
    a bar can be redrawn in place.

    Example:
    ```python
    import io
    from kerasbert.training.training_loop import resolve_verbose
    resolve_verbose(1, io.StringIO()), resolve_verbose(0)  # (2, 0)
    ```
    """
    if verbose == "auto":
        verbose = 1
    return 2 if verbose == 1 and not is_interactive(stream) else verbose


def _has_batch_end_hook(callback):
    # Whether the callback overrides a batch-end hook, as Keras' CallbackList
    # decides (Keras marks its do-nothing hooks `_is_default`): it then
    # gets the running metrics after every loop.
    return any(not getattr(getattr(callback, name), "_is_default", False)
               for name in ("on_train_batch_end", "on_batch_end"))
