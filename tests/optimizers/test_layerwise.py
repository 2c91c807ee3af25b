import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

import kerasbert
from kerasbert.backbones import tiny_backbone_and_tokenizer
from kerasbert.optimizers import layerwise
from tests.helpers import run_on_two_cpus

TEXTS = ["who was galileo ?", "what is the name of the city ?"]
LABELS = np.array([0, 1])


def tiny_model_and_batch(tiny, num_classes=2):
    backbone, tokenizer = tiny
    model = kerasbert.LayerSelectedClassifier(backbone, num_classes, dropout=0.0)
    features = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=16)(TEXTS)
    return model, features


def gradients(model, features):
    with tf.GradientTape() as tape:
        logits = model(features, training=False)
        loss = keras.losses.sparse_categorical_crossentropy(LABELS, logits, from_logits=True)
        loss = tf.reduce_mean(loss)
    return tape.gradient(loss, model.trainable_variables)


def test_multiplier_table_for_bert_base_both_conventions():
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=10, num_layers=12, num_heads=2, hidden_dim=4, intermediate_dim=8,
        max_sequence_length=8,
    )
    model = kerasbert.LayerSelectedClassifier(backbone, 2)
    xi = 0.95
    for convention, embedding_power in (("paper", 12), ("official_code", 0)):
        table = kerasbert.optimizers.layerwise_multipliers(model, xi, convention)
        assert table["token_embedding/embeddings"] == pytest.approx(xi**embedding_power)
        assert table["embeddings_layer_norm/gamma"] == pytest.approx(xi**embedding_power)
        for i in range(12):
            path = f"transformer_layer_{i}/self_attention_layer/query/kernel"
            assert table[path] == pytest.approx(xi ** (12 - (i + 1)))
        assert table["logits/kernel"] == 1.0
        assert len(table) == len(model.trainable_variables)
    text = kerasbert.optimizers.format_multiplier_table(table, 2e-5)
    assert "transformer_layer_0          0.5688      1.138e-05" in text  # 2e-5 · 0.95^11


def test_overrides_first_match_wins():
    table = layerwise.multipliers_for_paths(
        ["transformer_layer_0/x/kernel", "logits/kernel", "token_embedding/embeddings"],
        0.5, overrides={r"^logits/": 3.0, r"kernel$": 2.0},
    )
    assert table == {
        "transformer_layer_0/x/kernel": 2.0, "logits/kernel": 3.0,
        "token_embedding/embeddings": 0.5,
    }


def test_sgd_step_is_lr_times_multiplier_times_gradient(tiny):
    model, features = tiny_model_and_batch(tiny)
    optimizer = kerasbert.layerwise_decay(keras.optimizers.SGD(0.1), decay=0.5)
    before = [v.numpy().copy() for v in model.trainable_variables]
    grads = gradients(model, features)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    table = kerasbert.optimizers.layerwise_multipliers(model, 0.5)
    assert set(table.values()) == {0.25, 0.5, 1.0}  # L = 2: embeddings, layer 0, top
    for variable, old, grad in zip(model.trainable_variables, before, grads):
        grad = tf.convert_to_tensor(grad).numpy()
        expected = old - 0.1 * table[variable.path] * grad
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-5, atol=1e-7)


def test_adam_first_step_sizes_differ_by_xi_between_layers(tiny):
    model, features = tiny_model_and_batch(tiny)
    xi, lr = 0.8, 1e-3
    optimizer = kerasbert.layerwise_decay(keras.optimizers.Adam(lr, epsilon=1e-12), decay=xi)
    name = "self_attention_layer/query/kernel"
    lower = model.get_layer("transformer_layer_0")._self_attention_layer._query_dense.kernel
    upper = model.get_layer("transformer_layer_1")._self_attention_layer._query_dense.kernel
    assert lower.path.endswith(name) and upper.path.endswith(name)
    old = [lower.numpy().copy(), upper.numpy().copy()]
    optimizer.apply_gradients(zip(gradients(model, features), model.trainable_variables))
    # Adam's first step moves every coordinate by lr (times its multiplier).
    step_lower = np.abs(lower.numpy() - old[0]).max()
    step_upper = np.abs(upper.numpy() - old[1]).max()
    np.testing.assert_allclose(step_upper, lr, rtol=1e-3)
    np.testing.assert_allclose(step_lower / step_upper, xi, rtol=1e-3)


def test_weight_decay_scales_with_layer_rate_and_respects_exclusions(tiny):
    model, _ = tiny_model_and_batch(tiny)
    lr, wd, xi = 0.1, 0.5, 0.5
    optimizer = kerasbert.layerwise_decay(
        keras.optimizers.SGD(lr, weight_decay=wd), decay=xi,
        weight_decay_exclusions=layerwise.LAYER_NORM_AND_BIAS,
    )
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    zero = [tf.zeros_like(v) for v in model.trainable_variables]
    optimizer.apply_gradients(zip(zero, model.trainable_variables))
    table = kerasbert.optimizers.layerwise_multipliers(model, xi)
    for variable in model.trainable_variables:
        old = before[variable.path]
        excluded = variable.path.endswith("bias") or "layer_norm" in variable.path
        expected = old if excluded else old * (1 - wd * lr * table[variable.path])
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-6, err_msg=variable.path)


def test_keeps_optimizer_configuration_and_serializes():
    schedule = kerasbert.schedules.WarmupLinearDecay(2e-5, 100)
    adamw = keras.optimizers.AdamW(schedule, beta_2=0.98, weight_decay=0.01, global_clipnorm=1.0)
    optimizer = kerasbert.layerwise_decay(
        adamw, decay=0.9, convention="official_code", multipliers={"logits": 2.0},
    )
    assert type(optimizer) is kerasbert.LayerwiseDecay
    assert optimizer.inner_optimizer is adamw  # wrapped, not copied
    assert (optimizer.global_clipnorm, optimizer.weight_decay) == (1.0, 0.01)
    assert float(optimizer.learning_rate) == pytest.approx(float(schedule(0)))
    config = optimizer.get_config()
    assert config["decay"] == 0.9
    assert config["inner_optimizer"]["config"]["beta_2"] == 0.98
    revived = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(revived) is kerasbert.LayerwiseDecay
    assert type(revived.inner_optimizer) is keras.optimizers.AdamW
    assert revived.get_config() == config


def test_wraps_an_optimizer_directly():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="logits")])
    sgd = keras.optimizers.SGD(0.1)
    optimizer = kerasbert.LayerwiseDecay(sgd, decay=0.5, multipliers={"bias": 0.5})
    assert isinstance(optimizer, kerasbert.optimizers.LayerwiseDecay)
    assert isinstance(optimizer, keras.optimizers.Optimizer)
    kernel, bias = model.trainable_variables
    optimizer.apply([tf.ones((2, 1)), tf.ones((1,))], [kernel, bias])
    # One step counter, the inner optimizer's; one set of variables.
    assert int(optimizer.iterations) == int(sgd.iterations) == 1
    assert optimizer.variables == sgd.variables
    np.testing.assert_allclose(bias.numpy(), [-0.05])
    optimizer.learning_rate = 0.2
    assert float(sgd.learning_rate) == pytest.approx(0.2)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="decay"):
        kerasbert.layerwise_decay(keras.optimizers.SGD(), decay=1.5)
    with pytest.raises(ValueError, match="convention"):
        kerasbert.layerwise_decay(keras.optimizers.SGD(), convention="mine")
    with pytest.raises(ValueError, match="optimizer instance"):
        kerasbert.layerwise_decay("adam")
    with pytest.raises(ValueError, match="already has layer-wise"):
        kerasbert.layerwise_decay(kerasbert.optimizers.lazy_updates(
            kerasbert.layerwise_decay(keras.optimizers.SGD()), []))
    with pytest.raises(ValueError, match="inside the loss scaling"):
        kerasbert.LayerwiseDecay(keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD()))
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        kerasbert.LayerwiseDecay(keras.optimizers.SGD(gradient_accumulation_steps=2))
    built = keras.optimizers.SGD()
    built.build([keras.Variable(1.0)])
    with pytest.raises(ValueError, match="before it is built"):
        kerasbert.LayerwiseDecay(built)


@pytest.mark.slow
def test_fit_and_keras_saving_round_trip_with_optimizer_state(tmp_path):
    keras.utils.set_random_seed(4)
    model, features = tiny_model_and_batch(tiny_backbone_and_tokenizer(dropout=0.0))
    model.compile(optimizer=kerasbert.layerwise_decay(keras.optimizers.AdamW(3e-3), decay=0.9))
    loss_before = model.evaluate(features, LABELS, verbose=0)[0]
    model.fit(features, LABELS, epochs=3, verbose=0)
    assert model.evaluate(features, LABELS, verbose=0)[0] < loss_before
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored.optimizer) is kerasbert.LayerwiseDecay
    assert type(restored.optimizer.inner_optimizer) is keras.optimizers.AdamW
    assert int(restored.optimizer.iterations.numpy()) == 3
    for old, new in zip(model.optimizer.variables, restored.optimizer.variables):
        np.testing.assert_allclose(np.asarray(old), np.asarray(new))
    # Training continues identically from the restored state.
    model.fit(features, LABELS, epochs=1, verbose=0)
    restored.fit(features, LABELS, epochs=1, verbose=0)
    np.testing.assert_allclose(
        model.predict(features, verbose=0), restored.predict(features, verbose=0), atol=1e-5
    )


@pytest.mark.slow
def test_mixed_float16_with_loss_scaling_and_clipping(tiny):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(1)
        backbone, tokenizer = kerasbert.load_backbone("tiny")
        model = kerasbert.LayerSelectedClassifier(backbone, 2)
        features = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=16)(TEXTS)
        model.compile(optimizer=kerasbert.layerwise_decay(
            keras.optimizers.AdamW(1e-3, global_clipnorm=1.0), decay=0.9
        ))
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        history = model.fit(features, LABELS, epochs=2, verbose=0)
        assert np.isfinite(history.history["loss"]).all()
        assert model.get_layer("logits").kernel.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


MIRRORED_SCRIPT = """
import numpy as np
import keras, kerasbert
from kerasbert.backbones import tiny_backbone_and_tokenizer

def train(strategy):
    with strategy.scope():
        keras.utils.set_random_seed(3)
        # No dropout anywhere: replicas draw different dropout masks.
        backbone, tokenizer = tiny_backbone_and_tokenizer(dropout=0.0)
        model = kerasbert.LayerSelectedClassifier(backbone, 2, dropout=0.0)
        # SGD: Adam's sign-like first step would amplify float noise.
        model.compile(optimizer=kerasbert.layerwise_decay(keras.optimizers.SGD(0.5), decay=0.8))
    pre = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=16)
    texts = ["who was galileo ?", "what is an atom ?", "where is aspen ?", "name a city"]
    data = tf.data.Dataset.from_tensor_slices((pre(texts), np.array([0, 1, 0, 1]))).batch(4)
    before = [v.numpy() for v in model.trainable_variables]
    model.fit(data, epochs=1, verbose=0)
    after = [v.numpy() for v in model.trainable_variables]
    assert all(np.abs(a - b).max() > 0 for a, b in zip(after, before))
    return after

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
    assert "max difference" in result.stdout
