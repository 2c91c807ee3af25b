"""Real weights, real data: all-MiniLM-L6-v2 on TREC-6."""

import os

import numpy as np
import pytest

import kerasbert
from kerasbert.data.datasets import LabeledTexts
from tests.test_export import serve_in_subprocess

pytestmark = pytest.mark.slow
TREC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "trec")


def head(data, n):
    return LabeledTexts(data.texts[:n], data.labels[:n], data.label_names, data.source)


def test_minilm_fine_tunes_on_trec_and_exports(tmp_path):
    train = kerasbert.read_labeled_texts(TREC, "train")
    test = kerasbert.read_labeled_texts(TREC, "test", label_names=train.label_names)
    train, validation = head(train, 720).split(1 / 6, seed=0)
    metrics = kerasbert.fine_tune(
        "minilm", train, str(tmp_path), validation=validation, test=head(test, 200),
        learning_rate=1e-4, epochs=2, verbose=0, export_int8=True,
    )
    majority = np.bincount(test.labels[:200]).max() / 200
    # 600 examples and two epochs: far above the majority class, short of the
    # full run's ~96 %.
    assert metrics["test"]["accuracy"] > max(0.7, majority + 0.4), metrics["test"]
    # int8 (LiteRT, dynamic range) on the real weights: at most one question
    # of 200 answered differently, and the error within one question of fp32's.
    int8 = metrics["int8_test"]
    assert int8["changed_share"] <= 1 / 200, int8
    assert abs(int8["test_error"] - metrics["test"]["error"]) <= 1 / 200 + 1e-9, int8

    served = serve_in_subprocess(tmp_path / "saved_model", test.texts[:8])
    # The run's preset is the whole fine-tuned classifier, label names included.
    classifier = kerasbert.load_classifier(str(tmp_path))
    assert classifier.label_names == train.label_names
    logits = classifier.predict(test.texts[:8], verbose=0)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(served["probabilities"], probabilities, atol=1e-4)
