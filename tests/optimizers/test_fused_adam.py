import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasbert
from kerasbert.backbones import tiny_backbone_and_tokenizer
from kerasbert.optimizers import FusedAdam
from tests.helpers import run_on_two_cpus

GRADIENTS = [
    np.array([[1.0, -2.0], [0.5, 0.0], [3.0, 1.0]], "float32"),
    np.array([[-0.1, 0.4], [0.0, 0.0], [2.0, -1.5]], "float32"),
    np.array([[0.3, 0.3], [-0.7, 0.2], [0.0, 0.0]], "float32"),
]


def applied(optimizer, gradients, initial=None, steps=None):
    """The variable and the optimizer's slots after applying `gradients`."""
    variable = keras.Variable(
        np.ones((3, 2), "float32") if initial is None else initial, name="table"
    )
    for gradient in gradients[:steps]:
        optimizer.apply([gradient], [variable])
    moments = [v for v in optimizer.variables if v.path.endswith(("_momentum", "_velocity"))]
    return variable.numpy(), [v.numpy() for v in moments]


@pytest.mark.parametrize("arguments", [
    {},
    {"weight_decay": 0.1},
    {"beta_1": 0.8, "beta_2": 0.95, "epsilon": 1e-3},
    {"global_clipnorm": 0.5},
])
def test_same_update_as_keras_adam(arguments):
    ours = applied(FusedAdam(1e-2, **arguments), [tf.constant(g) for g in GRADIENTS])
    keras_adam = applied(keras.optimizers.Adam(1e-2, **arguments), [tf.constant(g) for g in GRADIENTS])
    np.testing.assert_allclose(ours[0], keras_adam[0], rtol=1e-6, atol=1e-7)
    # TensorFlow's kernel rounds 1 − β₂ to float32 (0.999 is not exact), so
    # the second moment differs from Keras' in the fifth digit.
    for ours_slot, keras_slot in zip(ours[1], keras_adam[1]):
        np.testing.assert_allclose(ours_slot, keras_slot, rtol=5e-5, atol=1e-8)


def test_schedule_and_layerwise_rates_compose():
    schedule = kerasbert.optimizers.schedules.WarmupLinearDecay(1e-2, 10, 0.2)
    ours = kerasbert.layerwise_decay(FusedAdam(schedule, weight_decay=0.01), decay=0.5,
                                     multipliers={"table": 0.3})
    keras_adam = kerasbert.layerwise_decay(keras.optimizers.AdamW(schedule, weight_decay=0.01),
                                           decay=0.5, multipliers={"table": 0.3})
    assert isinstance(ours, kerasbert.optimizers.LayerwiseDecay)
    assert isinstance(ours.inner_optimizer, FusedAdam)
    gradients = [tf.constant(g) for g in GRADIENTS]
    result = applied(ours, gradients)[0]
    np.testing.assert_allclose(result, applied(keras_adam, gradients)[0], rtol=1e-6)
    unscaled = kerasbert.layerwise_decay(FusedAdam(schedule, weight_decay=0.01), decay=0.5)
    assert not np.allclose(result, applied(unscaled, gradients)[0])


def test_repeated_rows_of_an_embedding_gradient_are_summed_before_squaring():
    # An embedding lookup's gradient lists a row once per occurrence. Adam's
    # second moment is the square of the summed gradient, as for the dense
    # gradient (what PyTorch's Adam sees). Keras' Adam squares the
    # occurrences one by one (keras.ops.square keeps IndexedSlices sparse),
    # so its step for a repeated row is too large.
    sparse = tf.IndexedSlices(
        tf.constant([[1.0, 1.0], [1.0, 1.0], [0.5, -1.0]]), tf.constant([0, 0, 2]),
        tf.constant([3, 2]),
    )
    dense = tf.convert_to_tensor(sparse)
    ours = applied(FusedAdam(1e-2), [sparse])
    reference = applied(keras.optimizers.Adam(1e-2), [dense])
    np.testing.assert_allclose(ours[0], reference[0], rtol=1e-6)
    # The first Adam step moves each entry by at most the learning rate.
    assert np.abs(ours[0] - 1.0).max() <= 1e-2 * (1 + 1e-5)
    keras_sparse = applied(keras.optimizers.Adam(1e-2), [sparse])
    assert np.abs(keras_sparse[0] - 1.0).max() > 1.3e-2


def test_sparse_variables_update_only_the_rows_with_a_gradient():
    initial = np.arange(6, dtype="float32").reshape(3, 2)
    first = tf.IndexedSlices(tf.constant([[1.0, -1.0], [2.0, 0.5]]), tf.constant([0, 0]),
                             tf.constant([3, 2]))
    second = tf.IndexedSlices(tf.constant([[0.5, 0.5]]), tf.constant([2]), tf.constant([3, 2]))
    optimizer = FusedAdam(1e-2, sparse_variables=["table"])
    (values, (m, v)) = applied(optimizer, [first, second], initial)
    # Row 1 never had a gradient: untouched. Row 0 made one Adam step (t=1)
    # and kept its moments through step 2; row 2 made one step at t=2.
    np.testing.assert_array_equal(values[1], initial[1])
    np.testing.assert_array_equal(m[1], 0.0)
    summed = np.array([3.0, -0.5])
    np.testing.assert_allclose(m[0], 0.1 * summed, rtol=1e-6)
    np.testing.assert_allclose(v[0], 0.001 * summed**2, rtol=5e-5)  # 1 − β₂ in float32
    np.testing.assert_allclose(values[0], initial[0] - 1e-2 * np.sign(summed), rtol=1e-5)
    alpha = 1e-2 * np.sqrt(1 - 0.999**2) / (1 - 0.9**2)
    step = alpha * 0.05 / (np.sqrt(0.00025) + 1e-7)
    np.testing.assert_allclose(values[2], initial[2] - step, rtol=1e-5)
    # A densified gradient (loss scaling, clipping, cross-replica sums)
    # takes the same rows: those with a non-zero entry.
    dense = applied(FusedAdam(1e-2, sparse_variables=["table"]),
                    [tf.convert_to_tensor(first), tf.convert_to_tensor(second)], initial)
    np.testing.assert_allclose(dense[0], values, rtol=1e-6)


def test_sparse_embedding_updates_in_a_model_leave_unread_rows(tiny):
    backbone, tokenizer = tiny
    model = kerasbert.LayerSelectedClassifier(backbone, 2)
    features = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=8)(
        ["who was galileo ?", "name a city"]
    )
    model.compile(optimizer=kerasbert.optimizers.build_optimizer(
        model, 1e-2, total_steps=4, sparse_embedding_updates=True
    ), jit_compile=False)  # Keras' "auto" is XLA on a GPU; row-sparse steps are not
    table = backbone.get_layer("token_embedding").embeddings
    before = table.numpy()
    model.train_on_batch(features, np.array([0, 1]))
    changed = set(np.flatnonzero(np.abs(table.numpy() - before).max(axis=1)))
    # The padding row is looked up but masked out: its gradient is zero.
    assert changed == set(np.unique(features["token_ids"])) - {0}
    # The other variables trained as usual.
    assert not np.allclose(model.get_layer("logits").kernel.numpy(), 0)


def test_saved_with_its_state_and_sparse_variables(tmp_path):
    # No dropout: the comparison of further training needs equal gradients.
    backbone, tokenizer = tiny_backbone_and_tokenizer(dropout=0.0)
    model = kerasbert.LayerSelectedClassifier(backbone, 2, dropout=0.0)
    features = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=8)(["a b", "c"])
    model.compile(optimizer=kerasbert.layerwise_decay(
        FusedAdam(1e-3, sparse_variables=["token_embedding/"]), decay=0.9), jit_compile=False)
    model.train_on_batch(features, np.array([0, 1]))
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored.optimizer) is kerasbert.LayerwiseDecay
    assert type(restored.optimizer.inner_optimizer) is FusedAdam
    assert restored.optimizer.inner_optimizer.sparse_variables == ["token_embedding/"]
    assert len(restored.optimizer.variables) == len(model.optimizer.variables) > 2
    for saved, loaded in zip(model.optimizer.variables, restored.optimizer.variables):
        np.testing.assert_array_equal(saved.numpy(), loaded.numpy())
    # Training goes on identically from the restored state.
    model.train_on_batch(features, np.array([0, 1]))
    restored.train_on_batch(features, np.array([0, 1]))
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_loss_scaling_and_clipping_of_an_embedding_gradient(tiny):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(1)
        backbone, tokenizer = kerasbert.load_backbone("tiny")
        model = kerasbert.LayerSelectedClassifier(backbone, 2)
        features = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=8)(["a b", "c"])
        model.compile(optimizer=FusedAdam(1e-3, clipnorm=0.1,
                                          sparse_variables=["token_embedding/"]),
                      jit_compile=False)
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        table = backbone.get_layer("token_embedding").embeddings
        before = table.numpy()
        for _ in range(2):
            model.train_on_batch(features, np.array([0, 1]))
        changed = set(np.flatnonzero(np.abs(table.numpy() - before).max(axis=1)))
        assert changed == set(np.unique(features["token_ids"])) - {0}
        assert all(np.isfinite(w).all() for w in model.get_weights())
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("arguments, message", [
    ({"sparse_variables": "token_embedding/"}, "list of regexes"),
    ({"sparse_variables": ["x"], "amsgrad": True}, "amsgrad"),
    ({"sparse_variables": 123}, "list of regexes"),
    ({"sparse_variables": {"table": 1}}, "list of regexes"),
    ({"sparse_variables": ["("]}, "invalid regex"),
])
def test_bad_sparse_variables(arguments, message):
    with pytest.raises(ValueError, match=message):
        FusedAdam(1e-3, **arguments)


def test_sparse_variables_must_match_a_table():
    with pytest.raises(ValueError, match="matched none"):
        FusedAdam(1e-3, sparse_variables=["nothing"]).build([keras.Variable(np.ones((2, 2)))])
    bias = keras.Variable(np.ones(3), name="bias")
    with pytest.raises(ValueError, match="rank 2"):
        FusedAdam(1e-3, sparse_variables=["bias"]).build([bias])


MIRRORED_SCRIPT = """
import numpy as np
import keras
from kerasbert.optimizers import FusedAdam

gradients = [np.array([[1.0, -2.0], [0.5, 0.0]], "float32"), np.array([[0.2, 0.1], [0.0, 3.0]], "float32")]

def train(strategy, replica_share):
    with strategy.scope():
        variable = keras.Variable(np.ones((2, 2), "float32"))
        table = keras.Variable(np.ones((4, 2), "float32"), name="table")
        optimizer = FusedAdam(0.1, sparse_variables=["table"])
        optimizer.build([variable, table])

    @tf.function
    def step(gradient, rows):
        def apply():
            sparse = tf.IndexedSlices(tf.ones((2, 2)) * replica_share, rows, tf.constant([4, 2]))
            optimizer.apply([gradient * replica_share, sparse], [variable, table])
        strategy.run(apply)

    for gradient, rows in zip(gradients, ([0, 0], [2, 0])):
        step(gradient, tf.constant(rows))
    copies = lambda v: [np.asarray(c.numpy()) for c in strategy.experimental_local_results(v.value)]
    return [copies(v) for v in [variable, table] + optimizer.variables]

single = train(tf.distribute.OneDeviceStrategy("CPU:0"), 1.0)
mirrored = train(tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"]), 0.5)
for single_copies, mirrored_copies in zip(single, mirrored):
    assert len(mirrored_copies) == 2
    for copy in mirrored_copies:
        np.testing.assert_allclose(copy, single_copies[0], rtol=1e-6)
assert np.abs(single[0][0] - 1).max() > 0.1
np.testing.assert_array_equal(single[1][0][[1, 3]], 1.0)  # rows without a gradient
assert np.abs(single[1][0][[0, 2]] - 1).min() > 0.01
print("mirrored equals single")
"""


@pytest.mark.slow
def test_mirrored_strategy_updates_every_replica_alike():
    result = run_on_two_cpus(MIRRORED_SCRIPT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "mirrored equals single" in result.stdout
