"""One training driver for every kerasbert run: epochs, validation, the best
epoch, logs, and step checkpoints that resume exactly.

Keras' `fit` cannot resume in the middle of an epoch (its `BackupAndRestore`
restarts the epoch, and the input order after a restart differs from the
order an uninterrupted run sees), so kerasbert drives training itself in the
TF Model Garden / Orbit pattern: `strategy.run` of one training step (the
model's own `compute_loss`, `compute_metrics` and optimizer) inside a `tf.function`, over a deterministic input stream that
is fast-forwarded to the checkpoint's step on resume. Losses, metrics, loss
scaling and the optimizer stay Keras'.

The same loop serves every strategy (default, mirrored, multi-worker, TPU):
Keras 3.15's `fit` fails under `MultiWorkerMirroredStrategy`
(docs/upstream/keras-multi-worker.md), and one code path keeps what users see
— progress, validation, best epoch, logs, checkpoints, resume — the same
under all of them. Under several replicas, the gradient is summed across
replicas before clipping and before float16 loss scaling decides to skip a
step (Keras clips and checks each replica's own gradient), so a
multi-replica step is the single-device step on the global batch, and every
worker skips an overflowing step together. Only the chief writes files;
every worker takes part in every collective (metric reads, checkpoints).
"""

import csv
import io
import json
import math
import os

import keras
import numpy as np
import tensorflow as tf

from kerasbert.training.distribute import barrier
from kerasbert.training.distribute import check_same_on_every_worker
from kerasbert.training.distribute import is_chief
from kerasbert.training.run_directory import atomic_path
from kerasbert.training.run_directory import write_json

CHECKPOINT_DIR = "checkpoints"
LATEST_CHECKPOINT = "latest.json"
BEST_WEIGHTS_FILE = os.path.join(CHECKPOINT_DIR, "best.weights.h5")
HISTORY_FILE = "history.csv"
LOG_DIR = "logs"
# About a minute of MiniLM training on two CPU cores: what a kill may cost.
DEFAULT_CHECKPOINT_EVERY_STEPS = 200


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


class TrainingLoop:
    """Train a compiled Keras model for whole epochs, resumably at any step.

    Each step does what Keras' `train_step` does (the model's loss, metrics,
    optimizer, loss scaling) under `strategy.run`. After every epoch the model is
    evaluated on the validation data (`model.test_step`), the row is added
    to `history.csv` and TensorBoard (`logs/train`, `logs/validation`), and
    with a `monitor` the weights of the best epoch so far are kept in
    `checkpoints/best.weights.h5`.

    Every `checkpoint_every_steps` steps and at every epoch end, the whole
    training state is saved atomically in `checkpoints/`: model variables
    (dropout seed states included), optimizer slots, the running metric
    totals of the epoch, the step, the history and the best epoch. A loop
    started again on the same directory restores it and fast-forwards a
    fresh copy of the (deterministic) training stream to that step, so a
    killed run ends with the weights and metrics of an uninterrupted run.
    At most `checkpoint_every_steps` steps of work are lost.

    A loss that becomes NaN or infinite stops training with
    `NonFiniteLossError`.

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
            and batch hooks run as under `fit` (batch numbers within the
            epoch), after the loop's own logging and checkpointing.
        epoch_snapshot: callable or None. Called on the chief as
            `epoch_snapshot(epoch)` (1-based) at each epoch's end, before the
            epoch's checkpoint is written: a run killed between the two
            redoes the epoch and writes the snapshot again, so no finished
            epoch lacks one (a callback's `on_epoch_end` runs after the
            checkpoint). Write atomically.
        verbose: int. 0 silent, 1 a progress bar, 2 one line per epoch.

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
                        monitor="val_accuracy", verbose=0)
    history = loop.fit(lambda: data.repeat(), lambda: data)
    [row["epoch"] for row in history]  # [1, 2]
    ```
    """

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
    ):
        for name, value in (("steps_per_epoch", steps_per_epoch), ("epochs", epochs),
                            ("checkpoint_every_steps", checkpoint_every_steps),
                            ("keep_checkpoints", keep_checkpoints)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer. Received: {value!r}")
        self.model = model
        self.directory = directory
        self.steps_per_epoch = steps_per_epoch
        self.epochs = epochs
        self.strategy = strategy or tf.distribute.get_strategy()
        self.monitor = monitor
        self.checkpoint_every_steps = checkpoint_every_steps
        self.keep_checkpoints = keep_checkpoints
        self.jit_compile = jit_compile
        self.per_worker_input = per_worker_input
        self.verbose = verbose
        self.epoch_snapshot = epoch_snapshot
        self.callbacks = keras.callbacks.CallbackList(
            list(callbacks or []), model=model, add_history=False, add_progbar=False,
            verbose=0, epochs=epochs, steps=steps_per_epoch,
        )
        self._loss_metric = next((m for m in model.metrics if m.name == "loss"), None)
        self.chief = is_chief(self.strategy)
        if not self.chief:
            self.verbose = 0  # the chief reports for everyone
        self.step = 0
        self.history = []
        self.best = None  # {"epoch": int, "value": float}
        self.resumed_from_step = 0
        self._built = False
        self._step_functions = {}

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
        if self.step >= self.total_steps:
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
        train_function = self._step_function(self._train_step, distributed.element_spec)
        iterator = iter(distributed)
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
            self.callbacks.on_train_batch_begin(batch)
            train_function(next(iterator))
            self.step += 1
            logs = self._metric_values()
            if not math.isfinite(logs.get("loss", 0.0)):
                raise NonFiniteLossError(
                    f"The training loss became {logs['loss']} at step {self.step} (epoch "
                    f"{epoch + 1}). Lower the learning rate, or with mixed_float16 check the "
                    "loss scaling; nothing was exported."
                )
            self.callbacks.on_train_batch_end(batch, logs)
            epoch_done = self.step % self.steps_per_epoch == 0
            if epoch_done:
                logs = self._end_epoch(epoch, logs, validation)
            progress.update(batch + 1, list(logs.items()), finalize=epoch_done)
            if epoch_done or self.step % self.checkpoint_every_steps == 0:
                self.save()
            if epoch_done:
                self.callbacks.on_epoch_end(epoch, logs)
            if self.model.stop_training:  # e.g. keras.callbacks.EarlyStopping
                break
        self.callbacks.on_train_end()
        return self.history

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
                if self.chief:
                    with atomic_path(os.path.join(self.directory, BEST_WEIGHTS_FILE)) as path:
                        self.model.save_weights(path)
                self.best = {"epoch": epoch + 1, "value": logs[self.monitor]}
        if self.chief:
            if self.epoch_snapshot is not None:
                self.epoch_snapshot(epoch + 1)
            self._write_history()
            self._write_summaries(row)
        return logs

    def evaluate(self, dataset):
        """The model's loss and metrics over a finite dataset, as floats."""
        distributed = self.strategy.experimental_distribute_dataset(dataset)
        test_function = self._step_function(self.model.test_step, distributed.element_spec)
        self.model.reset_metrics()
        for data in distributed:
            test_function(data)
        values = self._metric_values()
        self.model.reset_metrics()
        return values

    def predicted_classes(self, dataset):
        """The model's most probable class for each example of a finite
        dataset of `(x, y)` batches, in the dataset's order, as a numpy array.

        Runs on the strategy's default device, outside replica context, so
        that the order of the examples is the dataset's.
        """
        key = ("predicted_classes", repr(dataset.element_spec))
        if key not in self._step_functions:
            self._step_functions[key] = tf.function(
                lambda x, y: tf.argmax(self.model(x, training=False), axis=-1),
                input_signature=list(dataset.element_spec)[:2],
            )
        predict = self._step_functions[key]
        classes = [predict(*keras.utils.unpack_x_y_sample_weight(batch)[:2]).numpy()
                   for batch in dataset]
        return np.concatenate(classes) if classes else np.zeros([0], np.int64)

    def _train_step(self, data):
        """One replica's step: Keras' `train_step`, except that under several
        replicas the gradient is summed before clipping and loss scaling."""
        model, optimizer = self.model, self.model.optimizer
        replicas = self.strategy.num_replicas_in_sync
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        batch_size = tf.cast(tf.shape(tf.nest.flatten(x)[0])[0], tf.float32)
        # The share of the global batch on this replica: Keras' losses divide
        # a replica's mean by the replica count, which weighs an uneven split
        # (a bucket's last, partial batch) wrongly; rescaled, the replicas'
        # losses sum to the global batch's mean.
        share = 1.0
        if replicas > 1:
            global_batch_size = tf.distribute.get_replica_context().all_reduce("SUM", batch_size)
            share = replicas * batch_size / global_batch_size
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            replica_loss = model.compute_loss(x, y, y_pred, sample_weight, training=True)
            # A replica can get no example (a bucket's last batch smaller than
            # the replica count): its mean is 0/0, and weighs nothing.
            loss = tf.math.multiply_no_nan(replica_loss, tf.cast(share, replica_loss.dtype))
            scaled_loss = optimizer.scale_loss(loss)
        variables = model.trainable_variables
        gradients = tape.gradient(scaled_loss, variables)
        if self._sum_before_apply():
            gradients = self._summed_and_clipped(gradients, optimizer.scale_loss(1.0))
        optimizer.apply(gradients, variables)
        if self._loss_metric is not None:
            # This replica's mean loss, weighted by its examples.
            mean = tf.where(batch_size > 0, replica_loss * replicas, tf.zeros_like(replica_loss))
            self._loss_metric.update_state(mean, sample_weight=batch_size)
        return model.compute_metrics(x, y, y_pred, sample_weight)

    def _clipping(self):
        optimizer = self.model.optimizer
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)
        return optimizer.global_clipnorm, optimizer.clipnorm, optimizer.clipvalue

    def _sum_before_apply(self):
        if self.strategy.num_replicas_in_sync == 1:
            return False
        loss_scaling = isinstance(self.model.optimizer, keras.optimizers.LossScaleOptimizer)
        return loss_scaling or any(c is not None for c in self._clipping())

    def _summed_and_clipped(self, gradients, loss_scale):
        # Sum the replicas' gradients, clip the sum as one device would, and
        # hand every replica 1/N of it: the optimizer's own all-reduce then
        # rebuilds the clipped sum, and its own clipping (on 1/N of a clipped
        # gradient) and its float16 finiteness check see the same values on
        # every replica.
        replicas = self.strategy.num_replicas_in_sync
        context = tf.distribute.get_replica_context()
        present = [i for i, g in enumerate(gradients) if g is not None]
        summed = context.all_reduce(
            "SUM", [tf.convert_to_tensor(gradients[i]) for i in present]
        )
        summed = [g / tf.cast(loss_scale, g.dtype) for g in summed]
        global_clipnorm, clipnorm, clipvalue = self._clipping()
        if global_clipnorm is not None:
            summed, _ = tf.clip_by_global_norm(summed, global_clipnorm)
        if clipnorm is not None:
            summed = [tf.clip_by_norm(g, clipnorm) for g in summed]
        if clipvalue is not None:
            summed = [tf.clip_by_value(g, -clipvalue, clipvalue) for g in summed]
        result = list(gradients)
        for i, g in zip(present, summed):
            result[i] = g * tf.cast(loss_scale / replicas, g.dtype)
        return result

    def _metric_values(self):
        return {name: float(value) for name, value in self.model.get_metrics_result().items()}

    def _build(self, train_stream):
        # Create every variable before tracing: the optimizer's slots, and the
        # compiled loss and metrics (built eagerly on a batch of ones shaped
        # like the stream's, then reset), so that a checkpoint can be
        # restored into them before the first step. Reading a real batch
        # instead would start a second iterator, whose prefetching races the
        # real one for the input pipeline's random state.
        if self._built:
            return
        stream = train_stream(tf.distribute.InputContext()) if self.per_worker_input else (
            train_stream())
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(
            _ones_like_specs(stream.element_spec)
        )
        with self.strategy.scope():
            y_pred = self.model(x, training=False)
            self.model.compute_loss(x, y, y_pred, sample_weight, training=False)
            self.model.compute_metrics(x, y, y_pred, sample_weight)
            self.model.reset_metrics()
            self.model.optimizer.build(self.model.trainable_variables)
        self._built = True

    def _step_function(self, step, element_spec):
        """`strategy.run(step)` as a `tf.function`, one per input structure.

        The function is traced once for the stream's own shapes (batch and
        length unknown), never for the first concrete batch: a graph
        specialised to the shapes that happen to come first computes in
        another order, and a resumed run, which sees other batches first,
        would drift from an uninterrupted one by rounding.
        """
        key = (step.__name__, repr(element_spec))
        if key not in self._step_functions:
            compiled = tf.function(step, jit_compile=self.jit_compile, reduce_retracing=True)
            self._step_functions[key] = tf.function(
                lambda data: self.strategy.run(compiled, args=(data,)),
                input_signature=[element_spec],
            )
        return self._step_functions[key]

    def _progress_bar(self, epoch, batch):
        if self.verbose == 1 or (self.verbose == 2 and batch == 0):
            print(f"Epoch {epoch + 1}/{self.epochs}"
                  + (f" (resumed at step {batch})" if batch else ""), flush=True)
        # The logged values are running means already: show them as they are.
        names = list(self._metric_values())
        bar = keras.utils.Progbar(self.steps_per_epoch, verbose=self.verbose,
                                  stateful_metrics=names + [f"val_{n}" for n in names])
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

    def _state_variables(self):
        return (
            list(self.model.variables)
            + list(self.model.optimizer.variables)
            + list(self.model.metrics_variables)
        )

    def save(self):
        """Checkpoint the whole training state at the current step."""
        directory = os.path.join(self.directory, CHECKPOINT_DIR)
        name = f"step-{self.step:08d}.npz"
        variables = self._state_variables()
        arrays = {f"v{i}": np.asarray(v.numpy()) for i, v in enumerate(variables)}
        state = {"step": self.step, "history": self.history, "best": self.best,
                 "paths": [v.path for v in variables]}
        arrays["state"] = np.array(json.dumps(state))
        if not self.chief:
            return  # it took part in the metric reads above; the chief writes
        with atomic_path(os.path.join(directory, name)) as path:
            with open(path, "wb") as file:
                np.savez(file, **arrays)
        write_json(os.path.join(directory, LATEST_CHECKPOINT), {"checkpoint": name,
                                                                "step": self.step})
        saved = sorted(n for n in os.listdir(directory)
                       if n.startswith("step-") and n.endswith(".npz"))
        for old in saved[: -self.keep_checkpoints]:
            os.remove(os.path.join(directory, old))

    def latest_checkpoint(self):
        """The path of the last complete checkpoint, or None.

        `latest.json` names it; should that pointer be unreadable (edited by
        hand, say) or name a missing file, the newest `step-N.npz` is used.
        """
        directory = os.path.join(self.directory, CHECKPOINT_DIR)
        pointer = os.path.join(directory, LATEST_CHECKPOINT)
        if not os.path.exists(pointer):
            return None
        try:
            with open(pointer, encoding="utf-8") as file:
                path = os.path.join(directory, json.load(file)["checkpoint"])
            if os.path.isfile(path):
                return path
        except (OSError, ValueError, KeyError, TypeError):
            pass
        saved = sorted(n for n in os.listdir(directory)
                       if n.startswith("step-") and n.endswith(".npz"))
        if not saved:
            raise ValueError(
                f"{pointer} names no readable checkpoint and {directory} holds none; pass "
                "--overwrite (overwrite=True) to start afresh."
            )
        return os.path.join(directory, saved[-1])

    def restore(self, model_only=False):
        """Load the last checkpoint; return its step (0 without one).

        With `model_only`, only the model's variables are loaded (the final
        weights of a finished training).
        """
        path = self.latest_checkpoint()
        if path is None:
            return 0
        with np.load(path) as checkpoint:
            state = json.loads(str(checkpoint["state"]))
            variables = list(self.model.variables) if model_only else self._state_variables()
            # Paths carry per-process name suffixes (`seed_generator_7`), so
            # the structure is checked by count and shapes.
            saved = len(state["paths"])
            values = []
            if saved == len(variables) or (model_only and saved > len(variables)):
                values = [checkpoint[f"v{i}"] for i in range(len(variables))]
            shapes = [tuple(v.shape) for v in variables]
            if shapes != [value.shape for value in values]:
                raise ValueError(
                    f"Checkpoint {path} holds other variables than this model "
                    f"({len(state['paths'])} saved, {len(variables)} expected). Was the model "
                    "built with other settings?"
                )
            for variable, value in zip(variables, values):
                self._assign(variable, value)
        if not model_only:
            self.history = state["history"]
            self.best = state["best"]
        return state["step"]

    def _assign(self, variable, value):
        replicas = self.strategy.num_replicas_in_sync
        if replicas > 1 and variable.synchronization == "on_read":
            # A sum-aggregated metric total: the first replica holds it all.
            def assign_on_replica():
                replica = tf.distribute.get_replica_context().replica_id_in_sync_group
                variable.assign(tf.where(replica == 0, value, tf.zeros_like(value)))

            self.strategy.run(assign_on_replica)
        else:
            variable.assign(value)

    def restore_best(self):
        """Load the best epoch's weights (with a `monitor`), else the final ones."""
        barrier(self.strategy)  # the chief's last writes are complete
        best = os.path.join(self.directory, BEST_WEIGHTS_FILE)
        if self.monitor and os.path.exists(best):
            self.model.load_weights(best)
        else:
            self.restore(model_only=True)


def _ones_like_specs(element_spec):
    # All ones is a valid input everywhere: real tokens (padding mask 1),
    # token and segment id 1, class 1, position 1, weight 1. Unknown sizes
    # become 2, except the batch size, which is the one any spec knows.
    specs = tf.nest.flatten(element_spec)
    known = [spec.shape[0] for spec in specs if spec.shape.rank and spec.shape[0] is not None]
    batch_size = known[0] if known else 2

    def ones(spec):
        shape = [2 if dim is None else dim for dim in spec.shape]
        if shape and spec.shape[0] is None:
            shape[0] = batch_size
        return tf.ones(shape, spec.dtype)

    return tf.nest.map_structure(ones, element_spec)
