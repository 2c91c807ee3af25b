import csv
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasbert.training.training_loop import NonFiniteLossError
from kerasbert.training.training_loop import TrainingLoop
from tests.helpers import run_on_two_cpus

STEPS_PER_EPOCH, EPOCHS = 5, 3


def build_model(learning_rate=0.05):
    keras.utils.set_random_seed(7)
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(8, activation="relu"),
        keras.layers.Dropout(0.3),  # its seed state must survive a restart
        keras.layers.Dense(3),
    ])
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def examples(n=40):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32") + (x[:, 1] > 1).astype("int32")


def train_stream():
    x, y = examples()
    data = tf.data.Dataset.from_tensor_slices((x, y))
    return data.shuffle(40, seed=3, reshuffle_each_iteration=True).batch(8).repeat()


def validation_stream():
    return tf.data.Dataset.from_tensor_slices(examples(16)).batch(8)


class StopAtStep(keras.callbacks.Callback):
    """Simulates a kill right after global step `step`."""

    def __init__(self, loop_holder, step):
        super().__init__()
        self.loop_holder, self.step = loop_holder, step

    def on_train_batch_end(self, batch, logs=None):
        if self.loop_holder[0].step == self.step:
            raise KeyboardInterrupt("simulated kill")


def run(directory, stop_at=None, checkpoint_every_steps=2):
    model = build_model()
    holder = []
    callbacks = [StopAtStep(holder, stop_at)] if stop_at else None
    loop = TrainingLoop(
        model, str(directory), steps_per_epoch=STEPS_PER_EPOCH, epochs=EPOCHS,
        monitor="val_accuracy", checkpoint_every_steps=checkpoint_every_steps,
        callbacks=callbacks, verbose=0,
    )
    holder.append(loop)
    history = loop.fit(train_stream, validation_stream)
    return model, loop, history


@pytest.mark.parametrize("stop_at", [3, 5, 8], ids=["mid-epoch", "last-step-of-epoch", "past-epoch-end"])
def test_a_run_stopped_at_any_step_resumes_bit_identically(tmp_path, stop_at):
    expected_model, _, expected_history = run(tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "killed", stop_at=stop_at)
    model, loop, history = run(tmp_path / "killed")
    # The last checkpoint before the kill (batch hooks run before a step's
    # checkpoint): every 2 steps and every epoch end.
    assert loop.resumed_from_step == max(s for s in (2, 4, 5, 6, 8) if s < stop_at)
    assert history == expected_history  # epoch metrics, validation included
    for a, b in zip(expected_model.weights, model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(expected_model.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_an_unreadable_checkpoint_pointer_falls_back_to_the_newest_checkpoint(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, stop_at=5)
    (tmp_path / "checkpoints" / "latest.json").write_text("{bad")
    _, loop, _ = run(tmp_path)
    assert loop.resumed_from_step == 4


def test_history_checkpoints_and_best_weights_are_written(tmp_path):
    model, loop, history = run(tmp_path, checkpoint_every_steps=100)
    assert [row["epoch"] for row in history] == [1, 2, 3]
    with open(tmp_path / "history.csv") as file:
        rows = list(csv.DictReader(file))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[-1]["val_accuracy"]) == history[-1]["val_accuracy"]
    best = max(history, key=lambda row: row["val_accuracy"])
    assert loop.best == {"epoch": best["epoch"], "value": best["val_accuracy"]}
    assert sorted(os.listdir(tmp_path / "checkpoints")) == [
        "best.weights.h5", "latest.json", "step-00000015.npz"]
    assert os.path.isdir(tmp_path / "logs" / "validation")
    # A finished loop started again trains nothing and keeps its record.
    again = TrainingLoop(build_model(), str(tmp_path), steps_per_epoch=STEPS_PER_EPOCH,
                         epochs=EPOCHS, monitor="val_accuracy", verbose=0)
    assert again.fit(train_stream, validation_stream) == history


def test_epoch_snapshots_come_before_the_epoch_checkpoint_and_survive_a_kill(tmp_path):
    seen = []

    def snapshot(epoch):
        checkpoints = tmp_path / "checkpoints"
        seen.append((epoch, sorted(os.listdir(checkpoints)) if checkpoints.exists() else []))
        if epoch == 2 and len(seen) == 2:
            raise KeyboardInterrupt("killed between the snapshot and the checkpoint")

    def loop():
        return TrainingLoop(build_model(), str(tmp_path), steps_per_epoch=STEPS_PER_EPOCH,
                            epochs=EPOCHS, checkpoint_every_steps=100,
                            epoch_snapshot=snapshot, verbose=0)

    with pytest.raises(KeyboardInterrupt):
        loop().fit(train_stream)
    resumed = loop()
    resumed.fit(train_stream)
    # Epoch 2 is redone from epoch 1's checkpoint, and snapshotted again.
    assert resumed.resumed_from_step == STEPS_PER_EPOCH
    assert [epoch for epoch, _ in seen] == [1, 2, 2, 3]
    for epoch, files in seen:
        assert f"step-{epoch * STEPS_PER_EPOCH:08d}.npz" not in files


def test_predicted_classes_are_in_the_datasets_order(tmp_path):
    model, loop, _ = run(tmp_path)
    x, y = examples(13)
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(5)
    expected = model.predict(x, verbose=0).argmax(-1)
    np.testing.assert_array_equal(loop.predicted_classes(batches), expected)
    assert loop.predicted_classes(batches.take(0)).shape == (0,)


def test_early_stopping_is_honoured(tmp_path):
    loop = TrainingLoop(build_model(), str(tmp_path), steps_per_epoch=STEPS_PER_EPOCH,
                        epochs=EPOCHS, monitor="val_accuracy", verbose=0,
                        callbacks=[keras.callbacks.EarlyStopping("loss", patience=0,
                                                                 min_delta=10.0)])
    history = loop.fit(train_stream, validation_stream)
    assert [row["epoch"] for row in history] == [1, 2]


def test_a_non_finite_loss_stops_training(tmp_path):
    def poisoned():
        x, y = examples()
        x[5, 0] = np.inf
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat()

    loop = TrainingLoop(build_model(), str(tmp_path), steps_per_epoch=5, epochs=1, verbose=0)
    with pytest.raises(NonFiniteLossError, match="loss became nan at step 1"):
        loop.fit(poisoned)


@pytest.mark.parametrize("name", ["steps_per_epoch", "epochs", "checkpoint_every_steps"])
def test_counts_must_be_positive(tmp_path, name):
    counts = {"steps_per_epoch": 1, "epochs": 1, "checkpoint_every_steps": 1, name: 0}
    with pytest.raises(ValueError, match=f"`{name}` must be a positive integer"):
        TrainingLoop(build_model(), str(tmp_path), **counts)


SEVERAL_REPLICAS = """
import tempfile
import numpy as np, keras, tensorflow as tf
from kerasbert.training.training_loop import TrainingLoop
from tests.helpers import run_on_two_cpus

rng = np.random.default_rng(0)
x = rng.normal(size=(40, 4)).astype("float32")
y = (x[:, 0] > 0).astype("int32")
loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def build(strategy, optimizer, dtype="float32"):
    with strategy.scope():
        keras.utils.set_random_seed(3)
        model = keras.Sequential([
            keras.Input((4,)), keras.layers.Dense(8, activation="relu", dtype=dtype),
            keras.layers.Dense(3, dtype="float32")])
        model.compile(optimizer=optimizer(), loss=loss, metrics=["accuracy"])
    return model


def stream(x=x):
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat()


def loop_weights(strategy, optimizer, x=x, dtype="float32", steps=5):
    model = build(strategy, optimizer, dtype)
    TrainingLoop(model, tempfile.mkdtemp(), steps_per_epoch=steps, epochs=1,
                 strategy=strategy, verbose=0).fit(lambda: stream(x))
    return model


def largest_difference(a, b):
    return max(float(np.abs(u.numpy() - v.numpy()).max()) for u, v in zip(a.weights, b.weights))


one = tf.distribute.OneDeviceStrategy("CPU:0")
two = tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])
clipped = lambda: keras.optimizers.SGD(0.5, global_clipnorm=0.05)

# 1. Clipping: the loop clips the summed gradient, as one device does.
difference = largest_difference(loop_weights(one, clipped), loop_weights(two, clipped))
print("loop, clipped:", difference)
assert difference < 1e-6, difference
# Keras' fit clips each replica's half before summing: far from one device.
fitted = []
for strategy in (one, two):
    model = build(strategy, clipped)
    model.fit(stream(), steps_per_epoch=5, epochs=1, verbose=0)
    fitted.append(model)
print("fit, clipped:", largest_difference(*fitted))
assert largest_difference(*fitted) > 1e-3

# 2. float16: the second replica's half of the first batch overflows; both
#    replicas skip that step together and training goes on.
hot = x.copy()
hot[4:8] *= 3e3
scaled = lambda: keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1))
start = build(two, scaled, "mixed_float16")
first = loop_weights(two, scaled, hot, "mixed_float16", steps=1)
assert largest_difference(start, first) == 0.0  # the step was skipped
assert float(first.optimizer.dynamic_scale.numpy()) == 2.0 ** 14
for variable in first.weights:  # the replicas agree
    values = [v.numpy() for v in two.experimental_local_results(variable.value)]
    assert all(np.array_equal(values[0], v) for v in values[1:])
trained = loop_weights(two, scaled, hot, "mixed_float16", steps=5)
assert largest_difference(start, trained) > 0

# 3. A batch of one on two replicas (one replica gets nothing): the step is
#    the one-device step and the logged loss stays finite.
def nine(strategy):
    model = build(strategy, lambda: keras.optimizers.SGD(0.5))
    data = lambda: tf.data.Dataset.from_tensor_slices((x[:9], y[:9])).batch(8).repeat()
    history = TrainingLoop(model, tempfile.mkdtemp(), steps_per_epoch=2, epochs=2,
                           strategy=strategy, verbose=0).fit(data)
    return model, history
(a, history_one), (b, history_two) = nine(one), nine(two)
assert largest_difference(a, b) < 1e-6, largest_difference(a, b)
assert abs(history_one[-1]["loss"] - history_two[-1]["loss"]) < 1e-6, (history_one, history_two)
print("ok")
"""


@pytest.mark.slow
def test_several_replicas_clip_skip_and_split_batches_as_one_device(tmp_path):
    result = run_on_two_cpus(SEVERAL_REPLICAS)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
