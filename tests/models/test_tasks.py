"""Every kerasbert model as a keras-hub Task: raw text in, one preset out."""

import keras
import keras_hub
import numpy as np
import pytest

import kerasbert
from tests.helpers import assert_preset_round_trip

TEXTS = ["who was galileo ?", "a good film", "what is the capital of peru ?", "a bad film"]
NAMES = ["no", "yes"]
LABELS = ["yes", "no", "yes", "no"]
CLASSIFIERS = {
    "layer_selected": lambda: kerasbert.LayerSelectedClassifier.from_preset(
        "tiny", label_names=NAMES, layers="last4", combine="max", sequence_length=16,
        truncation="head_tail", head_length=4),
    "segment_pooling": lambda: kerasbert.SegmentPoolingClassifier.from_preset(
        "tiny", label_names=NAMES, pooling="attention", sequence_length=6),
    "feature_bilstm": lambda: kerasbert.FeatureBiLSTMClassifier.from_preset(
        "tiny", label_names=NAMES, lstm_units=4, attention_dim=4, sequence_length=16),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_raw_text_fit_predict_and_preset_round_trip(name, tmp_path):
    keras.utils.set_random_seed(0)
    classifier = CLASSIFIERS[name]()
    assert isinstance(classifier, keras_hub.models.TextClassifier)
    classifier.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = classifier.evaluate(TEXTS, LABELS, batch_size=2, verbose=0)[0]
    classifier.fit(x=TEXTS, y=LABELS, batch_size=2, epochs=3, verbose=0)
    assert classifier.evaluate(TEXTS, LABELS, batch_size=2, verbose=0)[0] < before
    assert classifier.predict(TEXTS, batch_size=3, verbose=0).shape == (4, 2)
    # Raw strings and token dicts give the same logits.
    features = classifier.preprocessor(TEXTS)
    np.testing.assert_allclose(classifier.predict(features, verbose=0),
                               classifier.predict(TEXTS, verbose=0), atol=1e-5)
    assert_preset_round_trip(classifier, TEXTS, tmp_path)


@pytest.mark.slow
def test_multitask_and_pretrainer_presets_round_trip(tmp_path):
    keras.utils.set_random_seed(0)
    multitask = kerasbert.MultiTaskClassifier.from_preset(
        "tiny", tasks={"topic": 3, "sentiment": 2}, sequence_length=16)
    restored = assert_preset_round_trip(multitask, TEXTS, tmp_path / "multitask")
    assert restored.tasks == {"topic": 3, "sentiment": 2}
    pretrainer = kerasbert.MaskedLMPretrainer.from_preset(
        "tiny", sequence_length=16, mask_selection_length=4)
    history = pretrainer.fit(TEXTS * 4, batch_size=4, epochs=2, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    pretrainer.save_to_preset(str(tmp_path / "pretrainer"))
    loaded = kerasbert.load_classifier(str(tmp_path / "pretrainer"))
    assert type(loaded) is kerasbert.MaskedLMPretrainer
    for old, new in zip(pretrainer.weights, loaded.weights):
        np.testing.assert_array_equal(np.asarray(old), np.asarray(new))


def test_constructors_never_change_the_backbone(tiny):
    backbone, _ = tiny
    flags = [layer.trainable for layer in backbone._flatten_layers()]
    frozen = kerasbert.LayerSelectedClassifier(backbone, num_classes=2, freeze_backbone=True)
    free = kerasbert.LayerSelectedClassifier(backbone, num_classes=2)
    kerasbert.FeatureBiLSTMClassifier(backbone, num_classes=2, lstm_units=4, attention_dim=4)
    kerasbert.MultiTaskClassifier(backbone, {"a": 2})
    kerasbert.MaskedLMPretrainer(backbone)
    assert [layer.trainable for layer in backbone._flatten_layers()] == flags
    # The frozen one trains its head only; the other everything but the
    # pooler it never reads.
    assert {v.path.split("/")[0] for v in frozen.trainable_variables} == {"logits"}
    pooler = {id(v) for v in backbone.get_layer("pooled_dense").variables}
    expected = [v for v in backbone.trainable_variables if id(v) not in pooler]
    assert {id(v) for v in expected} <= {id(v) for v in free.trainable_variables}
    assert not pooler & {id(v) for v in free.trainable_variables}
    assert {id(v) for v in backbone.variables} <= {id(v) for v in frozen.non_trainable_variables}
    # Training the frozen one leaves the backbone where it was.
    preprocessor = kerasbert.ClassifierPreprocessor(tiny[1], sequence_length=16)
    before = [np.asarray(v).copy() for v in backbone.weights]
    frozen.compile(optimizer=keras.optimizers.SGD(0.5))
    frozen.fit(preprocessor(TEXTS), np.array([1, 0, 1, 0]), epochs=1, verbose=0)
    for old, variable in zip(before, backbone.weights):
        np.testing.assert_array_equal(old, np.asarray(variable))


def test_labels_by_name_and_their_errors():
    classifier = CLASSIFIERS["layer_selected"]()
    with pytest.raises(Exception, match="Unknown label"):
        classifier.fit(x=TEXTS, y=["yes", "no", "maybe", "no"], batch_size=4, verbose=0)
    with pytest.raises(ValueError, match="no `label_names`"):
        kerasbert.LayerSelectedClassifier.from_preset(
            "tiny", num_classes=2, sequence_length=16
        ).fit(x=TEXTS, y=LABELS, batch_size=4, verbose=0)
    with pytest.raises(ValueError, match="`num_classes`=3 but 2 `label_names`"):
        kerasbert.LayerSelectedClassifier.from_preset("tiny", num_classes=3, label_names=NAMES)
    with pytest.raises(ValueError, match="names a class twice"):
        kerasbert.LayerSelectedClassifier.from_preset("tiny", label_names=["a", "a"])
    with pytest.raises(ValueError, match='truncation="segments"'):
        kerasbert.SegmentPoolingClassifier.from_preset("tiny", num_classes=2, truncation="head")


@pytest.mark.parametrize("build", [
    lambda backbone, preprocessor: kerasbert.LayerSelectedClassifier(
        backbone, num_classes=2, preprocessor=preprocessor),
    lambda backbone, preprocessor: kerasbert.MultiTaskClassifier(
        backbone, tasks={"topic": 3}, preprocessor=preprocessor),
    lambda backbone, preprocessor: kerasbert.FeatureBiLSTMClassifier(
        backbone, num_classes=2, lstm_units=4, attention_dim=4, preprocessor=preprocessor),
], ids=["layer_selected", "multi_task", "feature_bilstm"])
def test_one_sequence_heads_refuse_a_segmenting_preprocessor_in_one_line(tiny, build):
    backbone, tokenizer = tiny
    segmenting = kerasbert.ClassifierPreprocessor(
        tokenizer, sequence_length=8, truncation="segments")
    with pytest.raises(ValueError, match="SegmentPoolingClassifier") as error:
        build(backbone, segmenting)
    message = str(error.value)
    assert "\n" not in message and "reads one sequence per text" in message
    assert "truncation='segments'" in message


@pytest.mark.slow
def test_saved_classifier_comes_back_as_saved(tmp_path):
    classifier = CLASSIFIERS["layer_selected"]()
    classifier.save_to_preset(str(tmp_path))
    with pytest.raises(ValueError, match="comes back as it was saved; it takes no num_classes"):
        kerasbert.LayerSelectedClassifier.from_preset(str(tmp_path), num_classes=3)
    with pytest.raises(ValueError, match="holds a saved LayerSelectedClassifier, not a Segment"):
        kerasbert.SegmentPoolingClassifier.from_preset(str(tmp_path))
    # Its encoder is a keras-hub preset too.
    backbone, tokenizer = kerasbert.load_backbone(str(tmp_path))
    np.testing.assert_array_equal(
        np.asarray(backbone.token_embedding.embeddings),
        np.asarray(classifier.backbone.token_embedding.embeddings))
    with pytest.raises(ValueError, match="holds no saved kerasbert model"):
        kerasbert.load_classifier(str(tmp_path / "assets"))


def test_optimizer_wrappers_are_classes():
    optimizer = kerasbert.layerwise_decay(keras.optimizers.Adam(1e-3), decay=0.9)
    assert isinstance(optimizer, kerasbert.LayerwiseDecay)
    assert isinstance(optimizer.inner_optimizer, keras.optimizers.Adam)
    lazy = kerasbert.optimizers.lazy_updates(keras.optimizers.Adam(1e-3), [r"_logits/"])
    assert isinstance(lazy, kerasbert.optimizers.LazyUpdates)
    assert not isinstance(lazy, kerasbert.LayerwiseDecay)


@pytest.mark.slow
def test_readme_modules_are_reachable_after_import():
    import subprocess
    import sys

    code = ("import kerasbert; kerasbert.data.registry.DATASETS; "
            "kerasbert.tf1_checkpoint.convert_tf1_checkpoint; kerasbert.prediction.Classifier; "
            "import sys; assert 'kerasbert.reproduction' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_bad_arguments_fail_naming_the_problem(tmp_path):
    with pytest.raises(ValueError, match="exceeds the backbone's position table"):
        kerasbert.LayerSelectedClassifier.from_preset("tiny", num_classes=2,
                                                      sequence_length=100000)
    with pytest.raises(ValueError, match="non-empty strings"):
        kerasbert.LayerSelectedClassifier.from_preset("tiny", label_names=["", "b"])
    classifier = CLASSIFIERS["layer_selected"]()
    with pytest.raises(ValueError, match="no examples"):
        classifier.fit(x=[], y=[], verbose=0)
    with pytest.raises(ValueError, match="must be a kerasbert.LabeledTexts"):
        kerasbert.fine_tune("tiny", [("a", "b")], str(tmp_path))
    classifier.save_to_preset(str(tmp_path / "saved"))
    assert kerasbert.load_classifier(tmp_path / "saved").label_names == NAMES  # a Path works


def test_mixed_precision_models_compute_in_bfloat16_with_float32_logits():
    backbone, _ = kerasbert.load_backbone("tiny", dtype="mixed_bfloat16")
    inputs = {"token_ids": np.ones((2, 8), "int32"), "segment_ids": np.zeros((2, 8), "int32"),
              "padding_mask": np.ones((2, 8), "int32")}
    pretrainer = kerasbert.MaskedLMPretrainer(backbone, nsp=True)
    outputs = pretrainer({**inputs, "mask_positions": np.ones((2, 3), "int32")})
    assert np.isfinite(np.asarray(outputs["mlm"], np.float32)).all()
    classifier = kerasbert.LayerSelectedClassifier(backbone, num_classes=2)
    assert classifier.backbone.dtype_policy.name == "mixed_bfloat16"
    assert classifier(inputs).dtype == "float32"


def test_fit_and_predict_name_an_unknown_label_and_refuse_no_texts():
    classifier = kerasbert.LayerSelectedClassifier.from_preset(
        "tiny", label_names=["bad", "good"], sequence_length=16)
    texts = ["a good film", "a bad film", "fine"]
    with pytest.raises(ValueError, match=r"Unknown label 'XYZ'; the classes are \['bad', 'good'\]"):
        classifier.fit(texts, ["good", "bad", "XYZ"], epochs=1, verbose=0)
    with pytest.raises(ValueError, match="Label id 2 is out of range"):
        classifier.fit(texts, [1, 0, 2], epochs=1, verbose=0)
    with pytest.raises(ValueError, match="given no texts"):
        classifier.predict([])
    # evaluate checks like fit; floats, bools, lengths and non-strings.
    with pytest.raises(ValueError, match=r"^Unknown label 'Z'"):
        classifier.evaluate(texts, ["good", "bad", "Z"], verbose=0)
    with pytest.raises(ValueError, match=r"^Label id 7 is out of range"):
        classifier.evaluate(texts, [0, 1, 7], verbose=0)
    with pytest.raises(ValueError, match=r"^Label 0.5 is a float"):
        classifier.fit(texts, np.array([0.5, 1.0, 0.0]), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"^Label True is a bool"):
        classifier.fit(texts, [True, False, True], epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"^3 texts but 2 labels"):
        classifier.fit(texts, [0, 1], epochs=1, verbose=0)
    for bad in ([None], [3], ["fine", None]):
        with pytest.raises(ValueError, match=r"^Texts must be strings; item \d+ is"):
            classifier.predict(bad, verbose=0)
    # A lone surrogate (a JSON "\ud800" escape) is named by its item, never a
    # codec error from TensorFlow.
    for call in (lambda: classifier.predict(["fine", "x\ud800"], verbose=0),
                 lambda: classifier.fit(["fine", "x\ud800"], [0, 1], epochs=1, verbose=0)):
        with pytest.raises(ValueError, match=r"^Text item 1 holds a lone surrogate"):
            call()


def test_fit_on_lists_is_quiet_and_its_progress_fits_a_log(capsys, recwarn):
    classifier = kerasbert.LayerSelectedClassifier.from_preset(
        "tiny", label_names=["bad", "good"], sequence_length=16)
    texts = ["a good film", "a bad film", "good", "bad"]
    classifier.fit(texts, ["good", "bad", "good", "bad"], batch_size=2, epochs=2)
    classifier.predict(texts)
    assert not [w for w in recwarn if "shuffle" in str(w.message)]
    output = capsys.readouterr().out
    # Standard output is not a terminal here: one line per epoch, no bar
    # redrawn with carriage returns or ANSI codes.
    assert "Epoch 1/2" in output and "\r" not in output and "\x1b" not in output, output
