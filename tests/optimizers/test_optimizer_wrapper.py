import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasbert
from kerasbert.optimizers import FusedAdam
from tests.helpers import run_on_two_cpus


def bert_shaped_model():
    """A small model whose variable paths look like a BERT's: an embedding
    table (depth 0), one transformer layer (depth 1) and a task head."""
    token_ids = keras.Input((3,), dtype="int32")
    x = keras.layers.Embedding(5, 4, name="token_embedding")(token_ids)
    x = keras.layers.Dense(4, name="transformer_layer_0")(keras.layers.Flatten()(x))
    return keras.Model(token_ids, keras.layers.Dense(2, name="a_logits")(x))


def nested_optimizer():
    inner = FusedAdam(1e-2, weight_decay=0.01, sparse_variables=["token_embedding/"])
    return kerasbert.optimizers.lazy_updates(
        kerasbert.layerwise_decay(inner, decay=0.5), [r"_logits/"]
    )


def test_one_step_counter_and_stable_variable_paths():
    model = bert_shaped_model()
    applied, built = nested_optimizer(), nested_optimizer()
    gradients = [tf.ones_like(v) for v in model.trainable_variables]
    applied.apply(gradients, model.trainable_variables)
    built.build(model.trainable_variables)
    fused = applied.inner_optimizer.inner_optimizer
    assert applied.iterations is fused.iterations
    assert int(fused.iterations) == 1
    assert applied.variables == fused.variables
    # Built in `apply` (inside the wrapper's name scope) or by `build`: the
    # same paths, the inner optimizer's own.
    def paths(optimizer):
        inner_name = optimizer.inner_optimizer.inner_optimizer.name
        return [v.path.replace(inner_name, "fused_adam") for v in optimizer.variables]
    assert paths(applied) == paths(built)
    assert all(p.startswith("fused_adam/") for p in paths(applied))
    built.set_weights([v.numpy() for v in applied.variables])
    for a, b in zip(applied.variables, built.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_keras_saving_round_trip_of_nested_wrappers(tmp_path):
    keras.utils.set_random_seed(2)
    model = bert_shaped_model()
    model.compile(optimizer=nested_optimizer(), loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True), jit_compile=False)
    x, y = np.array([[1, 2, 0], [3, 1, 1]]), np.array([0, 1])
    for _ in range(2):
        model.train_on_batch(x, y)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    chain = [restored.optimizer, restored.optimizer.inner_optimizer,
             restored.optimizer.inner_optimizer.inner_optimizer]
    assert [type(o) for o in chain] == [
        kerasbert.optimizers.LazyUpdates, kerasbert.LayerwiseDecay, FusedAdam]
    assert chain[2].sparse_variables == ["token_embedding/"]
    assert int(restored.optimizer.iterations) == 2
    assert len(restored.optimizer.variables) == len(model.optimizer.variables) > 2
    for saved, loaded in zip(model.optimizer.variables, restored.optimizer.variables):
        np.testing.assert_array_equal(saved.numpy(), loaded.numpy())
    # Training goes on identically from the restored state.
    model.train_on_batch(x, y)
    restored.train_on_batch(x, y)
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_clipping_and_weight_decay_are_the_inner_optimizers():
    sgd = keras.optimizers.SGD(0.1, weight_decay=0.5, clipvalue=0.25)
    sgd.exclude_from_weight_decay(var_names=["bias"])
    optimizer = kerasbert.optimizers.lazy_updates(sgd, [])
    assert (optimizer.clipvalue, optimizer.weight_decay) == (0.25, 0.5)
    kernel = keras.Variable(np.ones(2, "float32"), name="kernel")
    bias = keras.Variable(np.ones(2, "float32"), name="bias")
    optimizer.apply([tf.constant([1.0, -1.0])] * 2, [kernel, bias])
    # Decayed by lr · wd, then stepped by the clipped gradient.
    np.testing.assert_allclose(kernel.numpy(), [0.95 - 0.025, 0.95 + 0.025])
    np.testing.assert_allclose(bias.numpy(), [0.975, 1.025])


MIRRORED_SCRIPT = """
import numpy as np
import keras, kerasbert
from kerasbert.optimizers import FusedAdam

gradients = [np.array([[1.0, -2.0], [0.5, 0.0]], "float32"),
             np.array([[0.2, 0.1], [0.0, 3.0]], "float32")]

def optimizers():
    fused = FusedAdam(0.1, weight_decay=0.1, sparse_variables=["token_embedding/"])
    yield kerasbert.optimizers.lazy_updates(
        kerasbert.layerwise_decay(fused, decay=0.5), ["a_logits"])
    yield kerasbert.layerwise_decay(
        kerasbert.optimizers.lazy_updates(keras.optimizers.SGD(0.1, momentum=0.9), ["a_logits"]),
        decay=0.5)

def train(strategy, replica_share, make):
    with strategy.scope():
        with keras.name_scope("transformer_layer_0"):
            layer = keras.Variable(np.ones((2, 2), "float32"), name="kernel")
        with keras.name_scope("token_embedding"):
            table = keras.Variable(np.ones((4, 2), "float32"), name="embeddings")
        head = keras.Variable(np.ones((2, 2), "float32"), name="a_logits")
        optimizer = make()
        optimizer.build([layer, table, head])
        layerwise = getattr(optimizer, "multiplier_table", None) or (
            optimizer.inner_optimizer.multiplier_table)
        assert sorted(layerwise.values()) == [0.5, 1.0, 1.0], layerwise

    @tf.function
    def step(gradient, rows, head_gradient):
        def apply():
            sparse = tf.IndexedSlices(tf.ones((2, 2)) * replica_share, rows, tf.constant([4, 2]))
            optimizer.apply([gradient * replica_share, sparse, head_gradient * replica_share],
                            [layer, table, head])
        strategy.run(apply)

    for gradient, rows, head_gradient in zip(gradients, ([0, 0], [2, 0]), (1.0, 0.0)):
        step(gradient, tf.constant(rows), tf.fill((2, 2), head_gradient))
    copies = lambda v: [np.asarray(c.numpy()) for c in strategy.experimental_local_results(v.value)]
    return [copies(v) for v in [layer, table, head] + optimizer.variables]

for index in range(2):
    make = lambda: list(optimizers())[index]
    single = train(tf.distribute.OneDeviceStrategy("CPU:0"), 1.0, make)
    mirrored = train(tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"]), 0.5, make)
    assert len(single) == len(mirrored) > 5
    for single_copies, mirrored_copies in zip(single, mirrored):
        assert len(mirrored_copies) == 2
        for copy in mirrored_copies:
            np.testing.assert_allclose(copy, single_copies[0], rtol=1e-6)
    assert np.abs(single[0][0] - 1).max() > 0.01  # the layer trained
    if index == 0:
        # Rows without a gradient: only decayed, at the embeddings' rate (ξ = 0.5).
        np.testing.assert_allclose(single[1][0][[1, 3]], (1 - 0.1 * 0.1 * 0.5) ** 2, rtol=1e-6)
    print("optimizer", index, "mirrored equals single")
"""


@pytest.mark.slow
def test_mirrored_strategy_on_two_cpus_matches_single_device():
    result = run_on_two_cpus(MIRRORED_SCRIPT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("mirrored equals single") == 2
