import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasbert
from kerasbert.data import task_sampling
from tests.helpers import assert_config_round_trip
from tests.helpers import assert_saving_round_trip
from tests.helpers import run_on_two_cpus
from tests.test_export import serve_in_subprocess

SENTIMENT = (["good film", "bad film", "a good one", "a bad one"] * 4, [0, 1, 0, 1] * 4)
QUESTIONS = (["who", "what", "where", "when", "why", "how"] * 3, [0, 1, 2, 3, 4, 5] * 3)


def task_batches(tokenizer, training=True):
    preprocessor = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=16)
    return {
        name: kerasbert.make_batches(
            tf.data.Dataset.from_tensor_slices(data), preprocessor, 4, shuffle=training,
            seed=0, bucket=False,
        )
        for name, data in (("sentiment", SENTIMENT), ("question", QUESTIONS))
    }


def task_loss(model, task, batches):
    losses = []
    for features, labels in batches:
        logits = model.predict_on_batch(features)[task]
        losses.append(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    return float(np.mean(np.concatenate(losses)))


def test_two_tasks_train_and_each_head_loss_falls(tiny):
    backbone, tokenizer = tiny
    model = kerasbert.MultiTaskClassifier(backbone, {"sentiment": 2, "question": 6})
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    batches = task_batches(tokenizer)
    evaluation = task_batches(tokenizer, training=False)
    before = {t: task_loss(model, t, evaluation[t]) for t in batches}
    weights = task_sampling.task_weights({"sentiment": 16, "question": 18})
    history = model.fit(task_sampling.mix_task_batches(batches, weights, seed=0),
                        steps_per_epoch=10, epochs=4, verbose=0)
    assert {"sentiment_accuracy", "question_accuracy"} <= set(history.history)
    for task in batches:
        assert task_loss(model, task, evaluation[task]) < 0.8 * before[task], task


@pytest.mark.parametrize("precision", [None, "mixed_float16"], ids=["float32", "float16"])
def test_batch_of_task_a_leaves_head_of_task_b_unchanged(precision):
    backbone, tokenizer = kerasbert.load_backbone("tiny", dtype=precision)
    model = kerasbert.MultiTaskClassifier(backbone, {"sentiment": 2, "question": 6})
    optimizer = keras.optimizers.Adam(1e-2)
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=2.0**8)
    model.compile(optimizer=optimizer)
    if precision == "mixed_float16":  # loss scaling stays outermost, the heads lazy inside it
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        assert model.optimizer.initial_scale == 2.0**8
        assert hasattr(model.optimizer.inner_optimizer, "lazy_variables")
    batches = task_batches(tokenizer)
    tasks = list(batches)
    mixed = {t: task_sampling._with_task_keys(batches[t], t, tasks) for t in tasks}
    question_batch = next(iter(mixed["question"]))
    sentiment_batch = next(iter(mixed["sentiment"]))
    model.train_on_batch(*question_batch)  # Adam now has momentum for the question head
    question_head = [w.copy() for w in model.get_layer("question_logits").get_weights()]
    sentiment_head = [w.copy() for w in model.get_layer("sentiment_logits").get_weights()]
    embeddings = backbone.get_layer("token_embedding").embeddings.numpy().copy()
    model.train_on_batch(*sentiment_batch)
    for old, new in zip(question_head, model.get_layer("question_logits").get_weights()):
        np.testing.assert_array_equal(old, new)
    assert not all(np.array_equal(o, n) for o, n in
                   zip(sentiment_head, model.get_layer("sentiment_logits").get_weights()))
    assert not np.array_equal(embeddings, backbone.get_layer("token_embedding").embeddings.numpy())


@pytest.mark.parametrize(
    "sampling, sizes, expected",
    [
        ("proportional", {"a": 300, "b": 100}, {"a": 0.75, "b": 0.25}),
        ("uniform", {"a": 300, "b": 100}, {"a": 0.5, "b": 0.5}),
        ("temperature", {"a": 400, "b": 100}, {"a": 2 / 3, "b": 1 / 3}),
    ],
)
def test_task_weights_and_sampled_frequencies(sampling, sizes, expected):
    weights = task_sampling.task_weights(sizes, sampling, alpha=0.5)
    assert weights == pytest.approx(expected)
    frequencies = task_sampling.sampled_task_frequencies(weights, 4000, seed=1)
    assert frequencies == pytest.approx(expected, abs=0.03)
    assert frequencies == task_sampling.sampled_task_frequencies(weights, 4000, seed=1)


def test_mixed_stream_follows_the_weights(tiny):
    _, tokenizer = tiny
    weights = {"sentiment": 0.8, "question": 0.2}
    stream = task_sampling.mix_task_batches(task_batches(tokenizer), weights, seed=2)
    drawn = [next(t for t, w in sample_weight.items() if float(w[0]) == 1.0)
             for _, _, sample_weight in stream.take(400)]
    assert drawn.count("sentiment") / 400 == pytest.approx(0.8, abs=0.06)


def test_invalid_tasks(tiny):
    backbone, _ = tiny
    with pytest.raises(ValueError, match="Task names"):
        kerasbert.MultiTaskClassifier(backbone, {"bad name": 2})
    with pytest.raises(ValueError, match="num_classes"):
        kerasbert.MultiTaskClassifier(backbone, {"a": 1})
    with pytest.raises(ValueError, match="sampling"):
        task_sampling.task_weights({"a": 1}, "random")


@pytest.mark.slow
def test_saving_round_trip_and_per_task_export(tiny, tmp_path):
    backbone, tokenizer = tiny
    model = kerasbert.MultiTaskClassifier(backbone, {"sentiment": 2, "question": 6})
    assert_config_round_trip(model)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    features, y, sample_weight = next(iter(task_sampling.mix_task_batches(
        task_batches(tokenizer), {"sentiment": 0.5, "question": 0.5})))
    model.train_on_batch(features, y, sample_weight)
    restored = assert_saving_round_trip(model, features, tmp_path)
    assert type(restored.optimizer) is kerasbert.optimizers.LazyUpdates
    assert type(restored.optimizer.inner_optimizer) is keras.optimizers.Adam

    preprocessor = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=16)
    kerasbert.export_serving(model.task_model("question"), preprocessor,
                             str(tmp_path / "question"), list("abcdef"))
    served = serve_in_subprocess(tmp_path / "question", ["who", "why not"])
    logits = model.predict(preprocessor(["who", "why not"]), verbose=0)["question"]
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(served["probabilities"], expected, atol=1e-5)


MIRRORED_SCRIPT = """
import numpy as np
import keras, kerasbert
from kerasbert.backbones import tiny_backbone_and_tokenizer
from kerasbert.data import task_sampling

def train(strategy):
    with strategy.scope():
        keras.utils.set_random_seed(3)
        backbone, tokenizer = tiny_backbone_and_tokenizer(dropout=0.0)
        model = kerasbert.MultiTaskClassifier(backbone, {"a": 2, "b": 3}, dropout=0.0)
        model.compile(optimizer=keras.optimizers.SGD(0.5))
    pre = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=16)
    texts = ["who was galileo ?", "what is an atom ?", "where is aspen ?", "name a city"]
    batch = tf.data.Dataset.from_tensor_slices((texts, [0, 1, 0, 1])).batch(4).map(
        lambda t, l: (pre(t), l))
    data = task_sampling.concatenate_task_batches({"a": batch, "b": batch})
    model.fit(data, epochs=1, verbose=0)
    return [v.numpy() for v in model.trainable_variables]

single = train(tf.distribute.OneDeviceStrategy("CPU:0"))
mirrored = train(tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"]))
worst = max(float(np.abs(a - b).max()) for a, b in zip(single, mirrored))
print("max difference", worst)
assert worst < 1e-5, worst
"""


@pytest.mark.slow
def test_mirrored_strategy_on_two_cpus_matches_single_device():
    result = run_on_two_cpus(MIRRORED_SCRIPT)
    assert result.returncode == 0, result.stderr[-3000:]
