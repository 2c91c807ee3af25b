import concurrent.futures
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

import kerasbert
from kerasbert import int8
from kerasbert.training.configs import FineTuneConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LABELS = ["neg", "pos", "mixed"]
TEXTS = ["a good film", "", "dull " * 40, "the plot , the actors and the music", "ok"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny classifier and its int8 export (one conversion for the module)."""
    model = kerasbert.LayerSelectedClassifier.from_preset(
        "tiny", label_names=LABELS, sequence_length=32, layers="last4", combine="mean")
    path = str(tmp_path_factory.mktemp("int8"))
    kerasbert.export_int8(model, model.preprocessor, path, LABELS)
    return model, path


@pytest.mark.slow
def test_int8_classifier_follows_the_float_model_in_input_order(exported):
    model, path = exported
    assert sorted(os.listdir(path)) == ["int8.json", "model.tflite", "preprocessor.json",
                                        "vocabulary.txt"]
    classifier = kerasbert.Int8Classifier(path)
    expected = model.predict(TEXTS, verbose=0)
    logits = classifier.logits(TEXTS)
    # int8 weights and activations: close to float, not equal.
    np.testing.assert_allclose(logits, expected, atol=0.05)
    assert not np.array_equal(logits, expected)
    probabilities, labels = classifier(TEXTS)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-6)
    assert list(labels) == [LABELS[i] for i in probabilities.argmax(-1)]
    # One text per chunk (sorted by length, then put back) gives the same
    # logits as one chunk for the whole batch, up to quantization of the
    # activations, which is per batch.
    classifier.tokens_per_chunk = 1
    np.testing.assert_allclose(classifier.logits(TEXTS), logits, atol=0.02)
    # The generic Classifier loads it; empty input and wrong types.
    loaded = kerasbert.prediction.Classifier(path)
    assert loaded.label_names == LABELS
    assert loaded(["a good film"])[1].tolist() == [labels[0]]
    empty_probabilities, empty_labels = loaded([])
    assert empty_probabilities.shape == (0, 3) and empty_labels.shape == (0,)
    with pytest.raises(TypeError, match=r"list of texts, not one str.*\['one text'\]"):
        classifier("one text")
    with pytest.raises(TypeError, match="item 1 is None"):
        classifier(["a", None])
    with pytest.raises(ValueError, match="item 0 holds a lone surrogate"):
        classifier(["\ud800 a", "b"])
    with pytest.raises(TypeError, match="item 1 is int"):
        classifier(["a", 3])
    np.testing.assert_array_equal(classifier.logits(t for t in TEXTS), classifier.logits(TEXTS))


@pytest.mark.slow
def test_classifier_shared_by_eight_threads_answers_as_called_one_by_one(exported):
    _, path = exported
    classifier = kerasbert.Int8Classifier(path, max_concurrent_calls=4)
    # Different lengths and batch sizes, so concurrent calls would clash in
    # a shared interpreter's resized tensors.
    batches = [[f"text {i} " + "word " * ((i * 7) % 29)] * (1 + i % 5) + TEXTS[: i % 4]
               for i in range(64)]
    expected = [classifier.logits(batch) for batch in batches]
    created, new_runner = [], classifier._new_runner
    classifier._new_runner = lambda: created.append(1) or new_runner()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(classifier.logits, batches))
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)
    # At most 4 calls ran at once: the pool grew to 4 interpreters, no more.
    assert 1 + len(created) <= 4


@pytest.mark.slow
def test_a_damaged_or_edited_artifact_is_refused_in_one_line(exported, tmp_path):
    _, path = exported
    description = json.loads(open(os.path.join(path, "int8.json")).read())
    assert set(description["files"]) == {"model.tflite", "preprocessor.json", "vocabulary.txt"}

    def damaged(edit):
        copy = tmp_path / f"copy{len(os.listdir(tmp_path))}"
        shutil.copytree(path, copy)
        edit(copy)
        return str(copy)

    def flip(copy):  # same size, other bytes
        data = bytearray((copy / "model.tflite").read_bytes())
        data[len(data) // 2:len(data) // 2 + 4096] = bytes(4096)
        (copy / "model.tflite").write_bytes(bytes(data))

    def cut_vocabulary(copy):
        lines = (copy / "vocabulary.txt").read_text().splitlines(True)
        (copy / "vocabulary.txt").write_text("".join(lines[:50]))

    def edit_description(**changes):
        def edit(copy):
            (copy / "int8.json").write_text(json.dumps({**description, **changes}))
        return edit

    cases = [
        (flip, r"model.tflite changed since export"),
        (cut_vocabulary, r"vocabulary.txt changed since export"),
        (lambda copy: (copy / "vocabulary.txt").unlink(), r"vocabulary.txt is missing"),
        (edit_description(label_names=["neg", "pos", "neg"]), r"names \['neg'\] more than once"),
        (edit_description(label_names=["neg", "pos"]), r"names 2 labels but .* has 3 outputs"),
        (edit_description(label_names=LABELS + ["x"]), r"names 4 labels but .* has 3 outputs"),
        (edit_description(tokens_per_chunk="many"), r"tokens_per_chunk"),
        (lambda copy: (copy / "int8.json").write_text("{not json"), r"int8.json is unreadable"),
        (edit_description(version=True), r"version True"),
        (edit_description(version=2.0), r"version 2.0"),
        (edit_description(label_names=["neg", "", "mixed"]), r"non-empty strings"),
        (edit_description(files={k: v for k, v in description["files"].items()
                                 if k != "vocabulary.txt"}),
         r"vocabulary.txt is not among the files int8.json describes"),
    ]
    for edit, message in cases:
        with pytest.raises(ValueError, match=message) as error:
            kerasbert.prediction.Classifier(damaged(edit))
        assert "\n" not in str(error.value)


@pytest.mark.slow
def test_segment_pooling_classifier_runs_all_segments_in_one_call(tmp_path):
    model = kerasbert.SegmentPoolingClassifier.from_preset(
        "tiny", label_names=LABELS[:2], sequence_length=8, pooling="attention")
    kerasbert.export_int8(model, model.preprocessor, str(tmp_path), LABELS[:2])
    classifier = kerasbert.Int8Classifier(tmp_path)  # a path-like works too
    logits = classifier.logits(TEXTS)
    np.testing.assert_allclose(logits, model.predict(TEXTS, verbose=0), atol=0.05)
    # Several chunks of (rows, segments, length), put back in input order.
    classifier.tokens_per_chunk = 16
    np.testing.assert_allclose(classifier.logits(TEXTS), logits, atol=0.02)


@pytest.mark.slow
def test_models_that_cannot_convert_are_refused_in_one_line(tmp_path):
    bilstm = kerasbert.FeatureBiLSTMClassifier.from_preset(
        "tiny", label_names=LABELS[:2], sequence_length=8)
    with pytest.raises(ValueError, match=r"^FeatureBiLSTMClassifier does not convert to "
                                         r"LiteRT's builtin ops.*SavedModel"):
        kerasbert.export_int8(bilstm, bilstm.preprocessor, str(tmp_path / "b"), LABELS[:2])


def test_export_refusals_name_the_problem(tmp_path):
    model = kerasbert.LayerSelectedClassifier.from_preset(
        "tiny", label_names=LABELS[:2], sequence_length=8)
    with pytest.raises(ValueError, match="2 outputs but 3 label names"):
        kerasbert.export_int8(model, model.preprocessor, str(tmp_path), LABELS)
    with pytest.raises(ValueError, match="tokens_per_chunk"):
        kerasbert.export_int8(model, model.preprocessor, str(tmp_path), LABELS[:2],
                              tokens_per_chunk=0)
    mixed = kerasbert.LayerSelectedClassifier.from_preset(
        "tiny", label_names=LABELS[:2], sequence_length=8, dtype="mixed_bfloat16")
    with pytest.raises(ValueError, match="quantizes a float32 model.*bfloat16"):
        kerasbert.export_int8(mixed, mixed.preprocessor, str(tmp_path), LABELS[:2])
    assert os.listdir(tmp_path) == []


def test_loading_refuses_what_is_not_a_complete_int8_directory(tmp_path):
    with pytest.raises(ValueError, match="No int8 classifier at .*int8.json"):
        kerasbert.Int8Classifier(str(tmp_path))
    (tmp_path / "int8.json").write_text(json.dumps({"format": "kerasbert-int8", "version": 99}))
    with pytest.raises(ValueError, match="version 99.*export again"):
        kerasbert.Int8Classifier(str(tmp_path))
    # A damaged model file: one line naming it.
    description = {"format": "kerasbert-int8", "version": 1, "label_names": ["a", "b"],
                   "tokens_per_chunk": 2048}
    (tmp_path / "int8.json").write_text(json.dumps(description))
    model = kerasbert.LayerSelectedClassifier.from_preset(
        "tiny", label_names=["a", "b"], sequence_length=8)
    (tmp_path / "preprocessor.json").write_text(
        json.dumps(keras.saving.serialize_keras_object(model.preprocessor)))
    model.preprocessor.tokenizer.save_assets(str(tmp_path))
    (tmp_path / "model.tflite").write_bytes(b"not a model")
    with pytest.raises(ValueError, match=r"model.tflite is not a readable LiteRT model"):
        kerasbert.Int8Classifier(str(tmp_path))


def test_missing_runtime_is_one_line_naming_the_package(monkeypatch):
    # A None entry makes `import ai_edge_litert.interpreter` raise ImportError.
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with pytest.raises(ImportError, match=r'kerasbert\[int8\].*ai-edge-litert'):
        int8.check_runtime()


def test_export_int8_is_a_result_neutral_setting_refused_with_feature_bilstm():
    config = FineTuneConfig(export_int8=True)
    assert "export_int8" not in config.result_dict()
    with pytest.raises(ValueError, match="export_int8.*feature_bilstm"):
        FineTuneConfig(export_int8=True, classifier="feature_bilstm", layers=6)


@pytest.mark.slow
def test_fine_tune_adds_int8_to_a_finished_run_and_predict_serves_it(tmp_path):
    rows = [{"text": f"{word} film number {i}", "label": label}
            for i in range(12) for word, label in (("good", "pos"), ("bad", "neg"))]
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "test"):
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = tmp_path / "run"
    settings = dict(test=kerasbert.read_labeled_texts(str(data), "test"), epochs=1,
                    batch_size=8, sequence_length=16, validation_fraction=0.0, export=False,
                    verbose=0)
    train = kerasbert.read_labeled_texts(str(data), "train")
    first = kerasbert.fine_tune("tiny", train, str(run), **settings)
    assert "int8_test" not in first and not (run / "int8").exists()
    # Result-neutral: the finished run gains its int8 stage, without training.
    metrics = kerasbert.fine_tune("tiny", train, str(run), export_int8=True, **settings)
    assert metrics["epochs"] == first["epochs"] and metrics["test"] == first["test"]
    assert metrics["int8_test"]["examples"] == len(rows)
    assert 0.0 <= metrics["int8_test"]["changed_share"] <= 1.0
    assert metrics["resumed_from_step"] == first["resumed_from_step"]
    assert sorted(os.listdir(run / "int8"))[0] == "int8.json"

    output = tmp_path / "predictions.jsonl"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "recipes", "predict.py"), f"--model={run}/int8",
         f"--input={data}/test.jsonl", f"--output={output}", "--label_field=label"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    predictions = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(predictions) == len(rows)
    error = float(result.stdout.split("error ")[1].split(" %")[0]) / 100
    assert error == pytest.approx(metrics["int8_test"]["test_error"])
    assert "XNNPACK" not in result.stderr and "XNNPACK" not in result.stdout
