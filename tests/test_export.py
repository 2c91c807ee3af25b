import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import kerasbert

TEXTS = ["who was galileo ?", "", "what is the name of the city where the film was made ?" * 5]

# Runs in a fresh interpreter that never imports kerasbert or keras.
LOAD_AND_SERVE = """
import json, sys
import tensorflow as tf
import tensorflow_text  # registers the tokenizer's ops
assert "kerasbert" not in sys.modules and "keras_hub" not in sys.modules
served = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
out = served(texts=tf.constant(json.loads(sys.argv[2])))
print(json.dumps({k: v.numpy().tolist() for k, v in out.items()}, default=bytes.decode))
"""


def serve_in_subprocess(path, texts):
    result = subprocess.run(
        [sys.executable, "-c", LOAD_AND_SERVE, str(path), json.dumps(texts)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_saved_model_predicts_like_keras_model_without_kerasbert(tiny, tmp_path):
    backbone, tokenizer = tiny
    preprocessor = kerasbert.ClassifierPreprocessor(
        tokenizer, sequence_length=32, truncation="head_tail", head_length=8
    )
    model = kerasbert.LayerSelectedClassifier(backbone, 3, layers="last4", combine="mean")
    preprocessor(["warm up the eager path"])  # must not break export
    kerasbert.export_serving(model, preprocessor, str(tmp_path), ["a", "b", "c"])

    served = serve_in_subprocess(tmp_path, TEXTS)
    logits = model.predict(preprocessor(TEXTS), verbose=0)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(served["probabilities"], expected, atol=1e-5)
    assert served["label"] == [["a", "b", "c"][i] for i in expected.argmax(axis=1)]
    assert served["label_names"] == [["a", "b", "c"]] * len(TEXTS)
    # An empty batch gives empty outputs.
    loaded = tf.saved_model.load(str(tmp_path))
    empty = loaded.serve(tf.constant([], tf.string))
    assert empty["probabilities"].shape == (0, 3) and empty["label"].shape == (0,)
    # The signature feeds any shape through; anything but a vector is refused,
    # never read as its first column.
    signature = loaded.signatures["serving_default"]
    for texts in (tf.constant([["a b", "c"], ["d", "e"]]), tf.constant("one text")):
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=r"texts_must_be_a_vector_of_strings|not compatible"):
            signature(texts=texts)


def test_label_count_must_match_model(tiny, tmp_path):
    backbone, tokenizer = tiny
    model = kerasbert.LayerSelectedClassifier(backbone, 3)
    preprocessor = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=16)
    with pytest.raises(ValueError, match="3 outputs but 2 label names"):
        kerasbert.export_serving(model, preprocessor, str(tmp_path), ["a", "b"])


@pytest.mark.parametrize("tokens_per_chunk", [1, 20, 100_000])
def test_chunks_sorted_by_length_give_the_model_outputs_in_input_order(tiny, tokens_per_chunk):
    backbone, tokenizer = tiny
    preprocessor = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=32)
    model = kerasbert.LayerSelectedClassifier(backbone, 3)
    texts = ["a", "who was galileo ?", "the film " * 20, "b c", "what is it ?" * 3, "d"]
    module = kerasbert.export.ServingModule(model, preprocessor, ["x", "y", "z"],
                                            tokens_per_chunk=tokens_per_chunk)
    served = module.serve(tf.constant(texts))
    expected = tf.nn.softmax(model.predict(preprocessor(texts), verbose=0)).numpy()
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-5)
    assert served["label"].numpy().tolist() == [b"xyz"[i:i + 1] for i in expected.argmax(1)]
    assert module.serve(tf.constant([], tf.string))["probabilities"].shape == (0, 3)


def test_tokens_per_chunk_must_be_positive(tiny):
    backbone, tokenizer = tiny
    preprocessor = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=16)
    model = kerasbert.LayerSelectedClassifier(backbone, 2)
    with pytest.raises(ValueError, match="tokens_per_chunk"):
        kerasbert.export.ServingModule(model, preprocessor, ["a", "b"], tokens_per_chunk=0)


def test_export_of_a_classifier_compiled_with_a_wrapped_optimizer(tmp_path):
    # The wrapper untracks its own step counter and rate; the SavedModel
    # walk must still accept its variable list.
    classifier = kerasbert.build_classifier("tiny", ["a", "b"], sequence_length=16)
    optimizer = kerasbert.optimizers.build_optimizer(
        classifier, 1e-3, total_steps=10, layer_decay=0.9, weight_decay=0.01)
    classifier.compile(optimizer=optimizer)
    optimizer.build(classifier.trainable_variables)
    kerasbert.export_serving(classifier, classifier.preprocessor, str(tmp_path / "sm"),
                             ["a", "b"])
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    texts = tf.constant(["who was it ?", "where is the nile ?"])
    np.testing.assert_allclose(loaded.serve(texts)["probabilities"],
                               tf.nn.softmax(classifier.predict(texts, verbose=0)), atol=1e-6)
    # The serving model holds the weights, not the optimizer's slots (Adam's
    # two per weight would triple it): about the size of the weights alone.
    classifier.save_to_preset(str(tmp_path / "preset"))
    weights = (tmp_path / "preset" / "model.weights.h5").stat().st_size
    variables = sum(f.stat().st_size for f in (tmp_path / "sm" / "variables").iterdir())
    assert variables < 1.1 * weights, (variables, weights)
