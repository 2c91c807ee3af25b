import csv
import inspect
import io
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasbert
from kerasbert.training.trainer import DEFAULT_STEPS_PER_LOOP
from kerasbert.training.training_loop import NonFiniteLossError
from kerasbert.training.training_loop import TrainingLoop
from kerasbert.training.training_loop import resolve_verbose
from tests.helpers import die_with_the_other_worker
from tests.helpers import run_on_two_cpus
from tests.helpers import run_two_workers

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


def run(directory, stop_at=None, checkpoint_every_steps=2, steps_per_loop=1):
    model = build_model()
    holder = []
    callbacks = [StopAtStep(holder, stop_at)] if stop_at else None
    loop = TrainingLoop(
        model, str(directory), steps_per_epoch=STEPS_PER_EPOCH, epochs=EPOCHS,
        monitor="val_accuracy", checkpoint_every_steps=checkpoint_every_steps,
        callbacks=callbacks, verbose=0, steps_per_loop=steps_per_loop,
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


def assert_same_training(expected_model, model):
    for a, b in zip(expected_model.weights, model.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(expected_model.optimizer.variables, model.optimizer.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("checkpoint_every_steps", [4, 100])
def test_results_do_not_depend_on_steps_per_loop(tmp_path, checkpoint_every_steps):
    expected_model, _, expected_history = run(
        tmp_path / "one", checkpoint_every_steps=checkpoint_every_steps)
    for steps_per_loop in (3, 7):
        model, _, history = run(tmp_path / str(steps_per_loop), steps_per_loop=steps_per_loop,
                                checkpoint_every_steps=checkpoint_every_steps)
        assert history == expected_history
        assert_same_training(expected_model, model)


class LoopRecorder(keras.callbacks.Callback):
    def __init__(self, loop_holder):
        super().__init__()
        self.loop_holder, self.calls = loop_holder, []

    def on_train_batch_begin(self, batch, logs=None):
        self.calls.append(("begin", batch, self.loop_holder[0].step))

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("end", batch, self.loop_holder[0].step))


def test_loops_stop_at_epoch_ends_and_checkpoints_and_call_batch_hooks_once(tmp_path):
    holder = []
    recorder = LoopRecorder(holder)
    loop = TrainingLoop(build_model(), str(tmp_path), steps_per_epoch=STEPS_PER_EPOCH,
                        epochs=2, checkpoint_every_steps=4, steps_per_loop=3,
                        callbacks=[recorder], verbose=0)
    holder.append(loop)
    loop.fit(train_stream)
    # Loops: 0-3, 3-4 (checkpoint), 4-5 (epoch end), 5-8 (checkpoint), 8-10 (epoch end).
    assert recorder.calls == [
        ("begin", 0, 0), ("end", 2, 3), ("begin", 3, 3), ("end", 3, 4), ("begin", 4, 4),
        ("end", 4, 5), ("begin", 0, 5), ("end", 2, 8), ("begin", 3, 8), ("end", 4, 10)]


@pytest.mark.parametrize("stop_at", [8, 12], ids=["second-epoch", "third-epoch"])
def test_a_run_with_several_steps_per_loop_resumes_bit_identically(tmp_path, stop_at):
    # Loops of 3 with checkpoints every 4 steps end at 3, 4, 5, 8, 10, 12, 15;
    # the batch hook (the kill) comes before the step's checkpoint.
    expected_model, _, expected_history = run(tmp_path / "whole", checkpoint_every_steps=4)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "killed", stop_at=stop_at, checkpoint_every_steps=4, steps_per_loop=3)
    model, loop, history = run(tmp_path / "killed", checkpoint_every_steps=4, steps_per_loop=7)
    assert loop.resumed_from_step == {8: 5, 12: 10}[stop_at]
    assert history == expected_history
    assert_same_training(expected_model, model)


def test_metrics_reach_the_host_only_at_epoch_ends_and_checkpoints(tmp_path):
    model = build_model()
    holder, reads = [], []
    get_metrics_result = model.get_metrics_result

    def counted():
        if tf.executing_eagerly():  # a read to the host, not a trace
            reads.append(holder[0].step)
        return get_metrics_result()

    model.get_metrics_result = counted
    loop = TrainingLoop(model, str(tmp_path), steps_per_epoch=STEPS_PER_EPOCH, epochs=2,
                        checkpoint_every_steps=4, verbose=0)
    holder.append(loop)
    loop.fit(train_stream)
    # One read when the metrics' variables are built (step 0), then only at
    # checkpoints (every 4 steps) and epoch ends (every 5), not after each step.
    assert reads == [0, 4, 5, 8, 10]


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
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["best", "latest.json", "step-00000015"]
    assert sorted(os.listdir(tmp_path / "checkpoints" / "step-00000015")) == [
        "state.json", "variables.data-00000-of-00001", "variables.index"]
    # Variables by their place in the model, the dropout's random state
    # included; the final checkpoint keeps the model alone (nothing trains
    # from it), without the optimizer's slots or the metrics' totals.
    saved = dict(tf.train.list_variables(str(tmp_path / "checkpoints" / "step-00000015" /
                                             "variables")))
    for name in ("model/layers/dense/kernel", "model/layers/dropout/seed_generator/state",
                 "step"):
        assert f"{name}/.ATTRIBUTES/VARIABLE_VALUE" in saved, sorted(saved)
    assert not [name for name in saved if name.startswith(("optimizer/", "metrics/"))]
    assert os.path.isdir(tmp_path / "logs" / "validation")
    # A finished loop started again trains nothing and keeps its record.
    again = TrainingLoop(build_model(), str(tmp_path), steps_per_epoch=STEPS_PER_EPOCH,
                         epochs=EPOCHS, monitor="val_accuracy", verbose=0)
    assert again.fit(train_stream, validation_stream) == history
    # Its final checkpoint holds the model alone: more epochs are refused,
    # never trained with a restarted optimizer.
    longer = TrainingLoop(build_model(), str(tmp_path), steps_per_epoch=STEPS_PER_EPOCH,
                          epochs=EPOCHS + 1, monitor="val_accuracy", verbose=0)
    with pytest.raises(ValueError, match=r"finished at step 15 .* not a training of 20 steps"):
        longer.fit(train_stream, validation_stream)


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
        assert f"step-{epoch * STEPS_PER_EPOCH:08d}" not in files


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
    # Metrics are read at the epoch end only: the window is the epoch.
    with pytest.raises(NonFiniteLossError, match="loss became nan between step 1 and 5 "):
        loop.fit(poisoned)


def test_a_non_finite_loss_is_reported_with_its_steps_before_the_checkpoint(tmp_path):
    def poisoned():
        x, y = examples()
        x[17, 0] = np.inf  # in the batch of step 3
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat()

    loop = TrainingLoop(build_model(), str(tmp_path), steps_per_epoch=5, epochs=1,
                        checkpoint_every_steps=2, steps_per_loop=2, verbose=0)
    with pytest.raises(NonFiniteLossError, match=r"between step 3 and 4 \(epoch 1\)"):
        loop.fit(poisoned)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["latest.json", "step-00000002"]


class OwnTrainStep(keras.Model):
    def train_step(self, data):
        return super().train_step(data)


def test_a_model_with_its_own_train_step_is_refused(tmp_path):
    inputs = keras.Input((4,))
    model = OwnTrainStep(inputs, keras.layers.Dense(3)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="OwnTrainStep overrides `train_step`"):
        TrainingLoop(model, str(tmp_path), steps_per_epoch=1, epochs=1)
    # kerasbert's own tasks keep Keras' step.
    for task in (kerasbert.LayerSelectedClassifier, kerasbert.SegmentPoolingClassifier,
                 kerasbert.FeatureBiLSTMClassifier, kerasbert.MultiTaskClassifier,
                 kerasbert.MaskedLMPretrainer):
        assert task.train_step is keras.Model.train_step, task


class TwoLayers(keras.Model):
    """Two same-shaped layers; `second_first` creates them in the other
    order, which reverses the order of `model.weights`."""

    def __init__(self, second_first=False, **kwargs):
        super().__init__(**kwargs)
        if second_first:
            self.second = keras.layers.Dense(4)
            self.first = keras.layers.Dense(4)
        else:
            self.first = keras.layers.Dense(4)
            self.second = keras.layers.Dense(4)
        self.out = keras.layers.Dense(3)

    def call(self, x):
        return self.out(self.second(keras.ops.relu(self.first(x))))


def two_layers(directory, second_first):
    keras.utils.set_random_seed(int(second_first))
    model = TwoLayers(second_first)
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    loop = TrainingLoop(model, str(directory), steps_per_epoch=2, epochs=1, verbose=0)
    loop.fit(lambda: tf.data.Dataset.from_tensor_slices(examples()).batch(8).repeat())
    return model


def test_checkpoints_match_variables_by_name_not_position(tmp_path):
    saved = two_layers(tmp_path, second_first=False)
    restored = two_layers(tmp_path, second_first=True)  # finished: restored, not trained
    assert restored.weights[0] is restored.second.kernel  # positions differ
    for name in ("first", "second", "out"):
        for a, b in zip(getattr(saved, name).weights, getattr(restored, name).weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(saved.first.kernel.numpy(), restored.second.kernel.numpy())


def sequential(directory, *widths):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,))] + [keras.layers.Dense(w) for w in widths])
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return TrainingLoop(model, str(directory), steps_per_epoch=2, epochs=1, verbose=0)


def fit(loop):
    return loop.fit(lambda: tf.data.Dataset.from_tensor_slices(examples()).batch(8).repeat())


@pytest.mark.parametrize("widths, mismatch", [
    ((5, 3), r"model/layers/dense/kernel has shape \(4, 8\) there and \(4, 5\) here"),
    ((8, 3, 3), r"model/layers/dense_2/kernel is not in it"),
    ((8,), r"its model/layers/dense_1/kernel is not in this model"),
])
def test_a_checkpoint_of_another_model_is_refused_naming_the_first_mismatch(
        tmp_path, widths, mismatch):
    fit(sequential(tmp_path, 8, 3))
    with pytest.raises(ValueError, match=f"does not fit this model: {mismatch}"):
        fit(sequential(tmp_path, *widths))


@pytest.mark.parametrize("damaged", ["variables.index", "variables.data-00000-of-00001",
                                     "state.json"])
def test_a_damaged_checkpoint_file_is_named(tmp_path, damaged):
    fit(sequential(tmp_path, 8, 3))
    path = tmp_path / "checkpoints" / "step-00000002" / damaged
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=f"Checkpoint file .*{damaged} is unreadable.*--overwrite"):
        fit(sequential(tmp_path, 8, 3))


def test_old_npz_checkpoints_are_refused(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "step-00000002.npz").write_bytes(b"")
    (tmp_path / "checkpoints" / "latest.json").write_text('{"checkpoint": "step-00000002.npz"}')
    with pytest.raises(ValueError, match=r"step-00000002.npz is a checkpoint of an older"):
        fit(sequential(tmp_path, 8, 3))


def test_verbose_1_prints_one_line_per_epoch_into_a_file(tmp_path, capsys):
    assert resolve_verbose(1, io.StringIO()) == 2
    assert resolve_verbose("auto", io.StringIO()) == 2
    assert resolve_verbose(0, io.StringIO()) == 0
    loop = TrainingLoop(build_model(), str(tmp_path), steps_per_epoch=STEPS_PER_EPOCH,
                        epochs=EPOCHS, verbose=1)
    loop.fit(train_stream)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 * EPOCHS and lines[0] == "Epoch 1/3", lines


def test_steps_per_loop_defaults_to_the_device_kind(tmp_path):
    loop = TrainingLoop(build_model(), str(tmp_path), steps_per_epoch=1, epochs=1)
    kind = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    assert loop.steps_per_loop == DEFAULT_STEPS_PER_LOOP[kind]


@pytest.mark.parametrize("name", ["steps_per_epoch", "epochs", "checkpoint_every_steps",
                                  "steps_per_loop"])
def test_counts_must_be_positive(tmp_path, name):
    counts = {"steps_per_epoch": 1, "epochs": 1, "checkpoint_every_steps": 1, name: 0}
    with pytest.raises(ValueError, match=f"`{name}` must be a positive integer"):
        TrainingLoop(build_model(), str(tmp_path), **counts)


SEVERAL_REPLICAS = """
import tempfile
import numpy as np, keras, tensorflow as tf
from kerasbert.training.training_loop import TrainingLoop

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

# 4. Killed after step 8 and resumed, in loops of 3 steps (checkpoints every
#    4): the weights of an uninterrupted run in loops of 1, on two replicas.
class Kill(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == 8:
            raise KeyboardInterrupt("simulated kill")


def resumable(directory, steps_per_loop, callbacks=None):
    model = build(two, lambda: keras.optimizers.Adam(0.01))
    history = TrainingLoop(model, directory, steps_per_epoch=5, epochs=2, strategy=two,
                           checkpoint_every_steps=4, steps_per_loop=steps_per_loop,
                           callbacks=callbacks, verbose=0).fit(stream)
    return model, history


whole, whole_history = resumable(tempfile.mkdtemp(), 1)
directory = tempfile.mkdtemp()
try:
    resumable(directory, 3, [Kill()])
    raise AssertionError("the kill did not happen")
except KeyboardInterrupt:
    pass
resumed, resumed_history = resumable(directory, 3)
assert largest_difference(whole, resumed) == 0.0, largest_difference(whole, resumed)
for a, b in zip(whole_history, resumed_history, strict=True):
    assert a == b, (a, b)  # metrics too: the summed totals restore exactly
print("ok")
"""


@pytest.mark.slow
def test_several_replicas_clip_skip_and_split_batches_as_one_device(tmp_path):
    result = run_on_two_cpus(SEVERAL_REPLICAS)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


# argv: WORKER_INDEX DIRECTORY OUTPUT_FILE KILL_AT_STEP STEPS_PER_LOOP
TWO_WORKERS = f"""
import json, os, sys
import numpy as np, keras, tensorflow as tf
from kerasbert.training.distribute import make_strategy
from kerasbert.training.training_loop import TrainingLoop

index, directory, output = sys.argv[1:4]
kill_at, steps_per_loop = int(sys.argv[4]), int(sys.argv[5])
strategy = make_strategy("multi_worker")
x = np.random.default_rng(0).normal(size=(40, 4)).astype("float32")
y = (x[:, 0] > 0).astype("int32")


{inspect.getsource(die_with_the_other_worker)}

class Kill(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if kill_at and int(self.model.optimizer.iterations.numpy()) == kill_at:
            die_with_the_other_worker(os.path.dirname(directory), index)


with strategy.scope():
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
history = TrainingLoop(
    model, directory, steps_per_epoch=5, epochs=2, strategy=strategy, checkpoint_every_steps=4,
    steps_per_loop=steps_per_loop, callbacks=[Kill()], verbose=0,
).fit(lambda: tf.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat())
np.savez(output.replace("WORKER", index), *[w.numpy() for w in model.weights])
print("history", json.dumps(history))
"""


@pytest.mark.slow
def test_two_workers_resume_bit_identically_in_loops_of_several_steps(tmp_path):
    def launch(directory, kill_at, steps_per_loop):
        output = str(tmp_path / f"{directory}_WORKER.npz")
        return run_two_workers(TWO_WORKERS, str(tmp_path / directory), output, str(kill_at),
                               str(steps_per_loop), timeout=240)

    def weights(name):
        with np.load(tmp_path / f"{name}.npz") as arrays:
            return [arrays[f"arr_{i}"] for i in range(len(arrays.files))]

    whole = launch("whole", 0, 1)
    assert [code for code, _, _ in whole] == [0, 0], [e[-2000:] for _, _, e in whole]
    # Loops of 3 end at steps 3, 4, 5, 8: killed after 8, before its checkpoint.
    killed = launch("killed", 8, 3)
    assert [code for code, _, _ in killed] == [-9, -9], [e[-2000:] for _, _, e in killed]
    resumed = launch("killed", 0, 3)
    assert [code for code, _, _ in resumed] == [0, 0], [e[-2000:] for _, _, e in resumed]
    assert not any(name.startswith(".workertemp")
                   for name in os.listdir(tmp_path / "killed" / "checkpoints"))
    for a, b, c in zip(weights("whole_0"), weights("killed_0"), weights("killed_1"), strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(b, c)
    history = [json.loads(out.split("history ", 1)[1]) for _, out, _ in (whole[0], resumed[0])]
    for a, b in zip(*history, strict=True):
        assert a == b  # bit-identical, like the single process
