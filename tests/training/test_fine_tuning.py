import json
import os

import keras
import numpy as np
import pytest

import kerasbert
from kerasbert.data.datasets import LabeledTexts
from tests.helpers import run_on_two_cpus


def sentiment_data(n, seed):
    rng = np.random.default_rng(seed)
    words = ["good", "bad"]
    labels = rng.integers(0, 2, n)
    texts = [f"the film was {words[l]} {'a ' * int(rng.integers(0, 20))}".strip() for l in labels]
    return LabeledTexts(texts, labels.astype(np.int32), ["pos", "neg"], f"synthetic-{seed}")


class StopAfterEpoch(keras.callbacks.Callback):
    """Simulates a kill once `epoch` (0-based) has finished and been backed up."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt("simulated kill")


RUN = dict(
    sequence_length=32, learning_rate=3e-3, batch_size=8, epochs=3, seed=0,
    export=False, verbose=0,
)


@pytest.mark.slow
def test_fine_tune_learns_keeps_best_epoch_and_writes_outputs(tmp_path):
    metrics = kerasbert.fine_tune(
        "tiny", sentiment_data(96, 0), str(tmp_path),
        validation=sentiment_data(32, 1), test=sentiment_data(32, 2), **RUN,
    )
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]
    assert metrics["settings"]["learning_rate"] == 3e-3 and metrics["settings"]["backbone"] == "tiny"
    assert not {"callbacks", "excluded"} & set(metrics["settings"])
    assert metrics["settings"]["train"] is None  # given as LabeledTexts, not a path
    best = max(metrics["epochs"], key=lambda e: e["val_accuracy"])
    assert metrics["best_epoch"] == best["epoch"]
    assert metrics["validation"]["accuracy"] == best["val_accuracy"]
    assert metrics["test"]["accuracy"] > 0.9  # "good" vs "bad" is learnable
    assert metrics["test"]["error"] == pytest.approx(1 - metrics["test"]["accuracy"])
    # Which test examples it got right, in order: what a paired comparison reads.
    correct = metrics["test"]["per_example_correct"]
    assert len(correct) == 32 and set(correct) <= {"0", "1"}
    assert correct.count("1") / 32 == pytest.approx(metrics["test"]["accuracy"])
    test_data = sentiment_data(32, 2)
    predicted = kerasbert.load_classifier(str(tmp_path)).predict(test_data.texts, verbose=0)
    assert correct == "".join(
        "1" if p == y else "0" for p, y in zip(predicted.argmax(-1), test_data.labels))
    with open(tmp_path / "metrics.json") as file:
        assert json.load(file)["test"] == metrics["test"]
    for name in ("history.csv", "preset", "logs"):
        assert os.path.exists(tmp_path / name), name
    # The preset is the whole classifier; its encoder and preprocessor load alone too.
    classifier = kerasbert.load_classifier(str(tmp_path))
    assert classifier.label_names == metrics["label_names"]
    assert classifier.predict(["good", "bad"], verbose=0).shape == (2, 2)
    backbone, _ = kerasbert.load_backbone(str(tmp_path / "preset"))
    restored = kerasbert.ClassifierPreprocessor.from_preset(str(tmp_path / "preset"))
    assert restored.sequence_length == 32 and backbone.num_layers == 2


def test_mismatched_label_vocabulary_is_rejected(tmp_path):
    train = sentiment_data(8, 0)
    other = LabeledTexts(["x"], np.array([0], np.int32), ["neg", "pos"], "other")
    with pytest.raises(ValueError, match="label vocabulary"):
        kerasbert.fine_tune("tiny", train, str(tmp_path), validation=other, **RUN)


def test_feature_bilstm_classifier_arguments_are_checked(tmp_path):
    train = sentiment_data(8, 0)
    with pytest.raises(ValueError, match="classifier"):
        kerasbert.fine_tune("tiny", train, str(tmp_path), classifier="svm", **RUN)
    with pytest.raises(ValueError, match="one layer"):
        kerasbert.fine_tune("tiny", train, str(tmp_path), classifier="feature_bilstm",
                            layers="all", **RUN)
    with pytest.raises(ValueError, match="segments"):
        kerasbert.fine_tune("tiny", train, str(tmp_path), classifier="feature_bilstm",
                            truncation="segments", **RUN)


@pytest.mark.slow
def test_fine_tune_feature_bilstm_baseline_learns_with_a_frozen_backbone(tmp_path):
    metrics = kerasbert.fine_tune(
        "tiny", sentiment_data(96, 0), str(tmp_path), test=sentiment_data(32, 2),
        classifier="feature_bilstm", **{**RUN, "epochs": 4},
    )
    assert metrics["test"]["accuracy"] > 0.9
    model = kerasbert.load_classifier(str(tmp_path))
    assert isinstance(model, kerasbert.FeatureBiLSTMClassifier)
    frozen, _ = kerasbert.load_backbone(str(tmp_path / "preset"))
    keras.utils.set_random_seed(RUN["seed"])  # as fine_tune did before building
    untouched, _ = kerasbert.load_backbone("tiny")
    for a, b in zip(frozen.weights, untouched.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.slow
def test_fine_tune_hierarchical_segments_learns(tmp_path):
    metrics = kerasbert.fine_tune(
        "tiny", sentiment_data(96, 0), str(tmp_path), validation=sentiment_data(32, 1),
        test=sentiment_data(32, 2), truncation="segments", segment_pooling="attention",
        max_segments=3, **dict(RUN, sequence_length=8),
    )
    # With 6 word pieces per segment, "good"/"bad" sits in the second segment.
    assert metrics["test"]["accuracy"] > 0.9
    model = kerasbert.load_classifier(str(tmp_path))
    assert isinstance(model, kerasbert.SegmentPoolingClassifier)
    assert model.pooling == "attention"


@pytest.mark.slow
@pytest.mark.parametrize(
    "options",
    [{"mixed_precision": "mixed_bfloat16"}, {"mixed_precision": "mixed_float16"},
     {"jit_compile": True}],
    ids=["bfloat16", "float16", "xla"],
)
def test_fine_tune_with_mixed_precision_or_xla_gives_finite_loss(tmp_path, options):
    metrics = kerasbert.fine_tune(
        "tiny", sentiment_data(48, 0), str(tmp_path), validation=sentiment_data(16, 1),
        **dict(RUN, epochs=1), **options,
    )
    assert np.isfinite(metrics["epochs"][0]["loss"])
    model = kerasbert.load_classifier(str(tmp_path), dtype=options.get("mixed_precision"))
    expected = options.get("mixed_precision", "float32")
    assert model.backbone.dtype_policy.name == expected
    assert model.get_layer("logits").compute_dtype == "float32"


MIRRORED_FINE_TUNE = """
import sys
import numpy as np, kerasbert
from kerasbert.data.datasets import LabeledTexts
from kerasbert.training.distribute import make_strategy
strategy = make_strategy("mirrored")
assert strategy.num_replicas_in_sync == 2
texts = [f"the film was {w}" for w in ["good", "bad"] * 16]
data = LabeledTexts(texts, np.array([0, 1] * 16, np.int32), ["pos", "neg"], "synthetic")
metrics = kerasbert.fine_tune("tiny", data, sys.argv[1], validation=data, sequence_length=16,
                              batch_size=8, epochs=2, learning_rate=3e-3, export=False,
                              strategy=strategy, verbose=0)
print("loss", metrics["epochs"][-1]["loss"])
assert np.isfinite(metrics["epochs"][-1]["loss"])
"""


@pytest.mark.slow
def test_fine_tune_under_mirrored_strategy_on_two_cpus(tmp_path):
    result = run_on_two_cpus(MIRRORED_FINE_TUNE, str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "metrics.json").exists()


@pytest.mark.parametrize(
    "argument, value",
    [("learning_rate", float("nan")), ("learning_rate", -1e-3), ("batch_size", 0),
     ("epochs", 0), ("checkpoint_every_steps", 0), ("warmup_proportion", 1.0),
     ("dropout", -0.1), ("layer_decay", 0.0), ("sequence_length", 2), ("batch_size", 2.5)],
)
def test_bad_arguments_are_named_before_anything_is_built(tmp_path, argument, value):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=f"`{argument}`"):
        kerasbert.fine_tune("tiny", sentiment_data(8, 0), str(out), **{**RUN, argument: value})
    assert not out.exists()


@pytest.mark.parametrize("other", ["jit_compile", "freeze_backbone"])
def test_sparse_embedding_updates_refuse_what_they_cannot_do(tmp_path, other):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=f"`sparse_embedding_updates`.*`{other}`"):
        kerasbert.fine_tune("tiny", sentiment_data(8, 0), str(out),
                            **{**RUN, "sparse_embedding_updates": True, other: True})
    assert not out.exists()


def test_a_training_set_of_one_class_names_its_source(tmp_path):
    one_class = LabeledTexts(["a b", "c d"], np.array([1, 1], np.int32), ["pos", "neg"],
                             "data/one_class.jsonl")
    with pytest.raises(ValueError, match=r"data/one_class.jsonl holds a single class \('neg'\)"):
        kerasbert.fine_tune("tiny", one_class, str(tmp_path / "run"), **RUN)


def test_input_errors_found_after_loading_the_backbone_leave_no_directory(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="exceeds the backbone's position table of 512"):
        kerasbert.fine_tune("tiny", sentiment_data(8, 0), str(out),
                            **{**RUN, "sequence_length": 600})
    assert not out.exists()
    (tmp_path / "train.jsonl").write_text(
        '{"text": "the film was good", "label": "pos"}\n'
        '{"text": "\\u200b \\u200b", "label": "neg"}\n', encoding="utf-8")
    train = kerasbert.read_labeled_texts(str(tmp_path / "train.jsonl"))
    with pytest.raises(ValueError, match=r"train.jsonl:2: the text .* yields no word pieces"):
        kerasbert.fine_tune("tiny", train, str(out), **RUN)
    assert not out.exists()
    # A batch no machine holds: refused with its estimate, not an abort in
    # TensorFlow's allocator (std::bad_alloc, exit 134).
    with pytest.raises(ValueError, match=r"^`batch_size` 1000000000000 at sequence_length 32 "
                                         r"needs at least [\d,]+ GiB .*this machine has"):
        kerasbert.fine_tune("tiny", sentiment_data(8, 0), str(out),
                            **{**RUN, "batch_size": 10**12})
    assert not out.exists()
    backbone, _ = kerasbert.load_backbone("tiny")
    kerasbert.utils.arguments.training_batch_fits(24, 512, backbone, memory_bytes=2**30)
    with pytest.raises(ValueError, match="needs at least"):
        kerasbert.utils.arguments.training_batch_fits(24, 512, backbone, 64, memory_bytes=2**30)


@pytest.mark.slow
def test_resuming_with_other_settings_or_data_is_refused(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        kerasbert.fine_tune("tiny", sentiment_data(48, 0), str(tmp_path),
                            callbacks=[StopAfterEpoch(0)], **RUN)
    with pytest.raises(kerasbert.RunDirectoryError) as error:
        kerasbert.fine_tune("tiny", sentiment_data(48, 0), str(tmp_path),
                            **{**RUN, "learning_rate": 1e-3, "dropout": 0.2})
    assert "dropout: 0.1 → 0.2; learning_rate: 0.003 → 0.001" in str(error.value)
    with pytest.raises(kerasbert.RunDirectoryError, match="train: "):
        kerasbert.fine_tune("tiny", sentiment_data(48, 1), str(tmp_path), **RUN)
    # Settings that do not change the result may change; overwrite starts afresh.
    metrics = kerasbert.fine_tune("tiny", sentiment_data(48, 0), str(tmp_path),
                                  **{**RUN, "checkpoint_every_steps": 7})
    assert metrics["resumed_from_step"] == 6
    metrics = kerasbert.fine_tune("tiny", sentiment_data(48, 0), str(tmp_path), overwrite=True,
                                  **{**RUN, "dropout": 0.2})
    assert metrics["resumed_from_step"] == 0 and metrics["settings"]["dropout"] == 0.2


@pytest.mark.slow
def test_fine_tune_trains_a_copy_of_a_built_classifier_and_resumes_it(tmp_path):
    keras.utils.set_random_seed(3)
    built = kerasbert.LayerSelectedClassifier.from_preset(
        "tiny", num_classes=2, layers="last4", combine="max", sequence_length=32)
    before = [np.asarray(w).copy() for w in built.weights]
    train, test = sentiment_data(48, 0), sentiment_data(16, 2)
    options = dict(RUN, epochs=1)
    for name in ("sequence_length", "layers"):
        options.pop(name, None)
    metrics = kerasbert.fine_tune(built, train, str(tmp_path), test=test, **options)
    assert metrics["settings"]["classifier_config"]["layers"] == "last4"
    assert metrics["settings"]["classifier_config"]["preprocessor"]["sequence_length"] == 32
    for old, new in zip(before, built.weights):  # the caller's object is untouched
        np.testing.assert_array_equal(old, np.asarray(new))
    assert built.label_names is None
    # The same classifier again finds the finished run; a changed one is refused.
    assert kerasbert.fine_tune(built, train, str(tmp_path), test=test, **options) == metrics
    restored = kerasbert.load_classifier(str(tmp_path))
    assert restored.label_names == train.label_names and restored.layer_selection == "last4"
    with pytest.raises(ValueError, match="do not also pass sequence_length"):
        kerasbert.fine_tune(built, train, str(tmp_path / "other"), sequence_length=64, **options)
    multitask = kerasbert.MultiTaskClassifier.from_preset("tiny", tasks={"a": 2},
                                                          sequence_length=16)
    with pytest.raises(ValueError, match="single-task classifier"):
        kerasbert.fine_tune(multitask, train, str(tmp_path / "multi"), **options)


def test_sparse_embedding_updates_refuse_a_frozen_encoder_and_non_bools(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="feature_bilstm"):
        kerasbert.fine_tune("tiny", sentiment_data(8, 0), str(out),
                            **{**RUN, "sparse_embedding_updates": True,
                               "classifier": "feature_bilstm"})
    with pytest.raises(ValueError, match="True or False"):
        kerasbert.fine_tune("tiny", sentiment_data(8, 0), str(out),
                            **{**RUN, "sparse_embedding_updates": "yes"})
    assert not out.exists()
