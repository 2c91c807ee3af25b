import keras
import numpy as np
import pytest

import kerasbert
from kerasbert.layers import layer_selection
from tests.helpers import assert_config_round_trip
from tests.helpers import assert_saving_round_trip

TEXTS = ["who was galileo ?", "what is the name of the city where the film was made ?"]


def hidden_states(backbone, features):
    """Every layer's full output, computed independently of the classifier."""
    names = [layer_selection.layer_name(i) for i in range(backbone.num_layers + 1)]
    extractor = keras.Model(backbone.input, [backbone.get_layer(n).output for n in names])
    return [np.asarray(h) for h in extractor(features, training=False)]


def head_logits(model, h):
    kernel, bias = model.get_layer("logits").get_weights()
    return h @ kernel + bias


@pytest.mark.parametrize(
    "layers, combine, combine_fn",
    [
        (-1, "concat", None),
        (0, "concat", None),
        ([1, 2], "concat", lambda hs: np.concatenate(hs, axis=-1)),
        ("all", "mean", lambda hs: np.mean(hs, axis=0)),
        ([0, -1], "max", lambda hs: np.max(hs, axis=0)),
    ],
)
def test_logits_are_softmax_layer_on_chosen_cls_states(tiny, layers, combine, combine_fn):
    backbone, tokenizer = tiny
    features = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=24)(TEXTS)
    model = kerasbert.LayerSelectedClassifier(backbone, 3, layers=layers, combine=combine)
    states = hidden_states(backbone, features)
    indices = layer_selection.resolve_layers(layers, backbone.num_layers)
    cls = [states[i][:, 0, :] for i in indices]
    h = cls[0] if combine_fn is None else combine_fn(cls)
    expected = head_logits(model, h)
    np.testing.assert_allclose(model.predict(features, verbose=0), expected, atol=1e-5)


def test_every_transformer_layer_runs_once(tiny):
    backbone, _ = tiny
    model = kerasbert.LayerSelectedClassifier(backbone, 2, layers="all", combine="concat")
    names = [layer.name for layer in model.layers]
    for i in range(backbone.num_layers):
        assert names.count(f"transformer_layer_{i}") == 1
    assert model.output.shape == (None, 2)


@pytest.mark.parametrize(
    "layers, expected",
    [
        (-1, [12]), (0, [0]), (-13, [0]), ([3, -2], [3, 11]),
        ("first4", [1, 2, 3, 4]), ("last4", [9, 10, 11, 12]), ("all", list(range(1, 13))),
    ],
)
def test_layer_indexing_for_bert_base(layers, expected):
    assert layer_selection.resolve_layers(layers, 12) == expected


@pytest.mark.parametrize("layers", [13, -14, [], [1, 1], "last5", 1.5])
def test_invalid_layer_choices_are_named(layers):
    with pytest.raises(ValueError, match="layers|Layer"):
        layer_selection.resolve_layers(layers, 12)


def test_invalid_combine_and_classes(tiny):
    backbone, _ = tiny
    with pytest.raises(ValueError, match="combine"):
        kerasbert.LayerSelectedClassifier(backbone, 2, layers="all", combine="sum")
    with pytest.raises(ValueError, match="num_classes"):
        kerasbert.LayerSelectedClassifier(backbone, 1)


def test_freeze_backbone_trains_head_only(tiny):
    backbone, tokenizer = tiny
    model = kerasbert.LayerSelectedClassifier(backbone, 2, freeze_backbone=True)
    assert [w.path for w in model.trainable_weights] == ["logits/kernel", "logits/bias"]
    features = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=24)(TEXTS)
    before = [w.numpy().copy() for w in backbone.weights]
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    model.fit(features, np.array([0, 1]), epochs=1, verbose=0)
    for old, new in zip(before, backbone.weights):
        np.testing.assert_array_equal(old, new.numpy())


def test_fine_tuning_updates_backbone_but_not_unused_pooler(tiny):
    backbone, tokenizer = tiny
    model = kerasbert.LayerSelectedClassifier(backbone, 2)
    trainable = {w.path for w in model.trainable_weights}
    assert "transformer_layer_0/self_attention_layer/query/kernel" in trainable
    assert not any(path.startswith("pooled_dense") for path in trainable)
    features = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=24)(TEXTS)
    embeddings = backbone.get_layer("token_embedding").embeddings.numpy().copy()
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    model.fit(features, np.array([0, 1]), epochs=1, verbose=0)
    assert not np.allclose(embeddings, backbone.get_layer("token_embedding").embeddings.numpy())


def test_dynamic_padding_gives_the_same_logits_as_padding_to_max(tiny):
    backbone, tokenizer = tiny
    model = kerasbert.LayerSelectedClassifier(backbone, 3, layers="last4", combine="mean")
    fixed = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=512)(TEXTS)
    longest = kerasbert.ClassifierPreprocessor(
        tokenizer, sequence_length=512, padding="longest"
    )(TEXTS)
    assert longest["token_ids"].shape[1] < 64
    np.testing.assert_allclose(
        model.predict(longest, verbose=0), model.predict(fixed, verbose=0), atol=1e-5
    )


def test_config_round_trip(tiny):
    backbone, _ = tiny
    model = kerasbert.LayerSelectedClassifier(backbone, 4, layers=[0, 2], combine="max", dropout=0.2)
    rebuilt = assert_config_round_trip(model)
    assert rebuilt.layer_indices == [0, 2]


@pytest.mark.slow
def test_keras_saving_round_trip_with_compiled_optimizer(tiny, tmp_path):
    backbone, tokenizer = tiny
    features = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=24)(TEXTS)
    model = kerasbert.LayerSelectedClassifier(backbone, 3, layers="last4", combine="concat")
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(features, np.array([0, 2]), epochs=1, verbose=0)
    restored = assert_saving_round_trip(model, features, tmp_path)
    assert restored.layer_selection == "last4"
    assert int(restored.optimizer.iterations.numpy()) == 1
