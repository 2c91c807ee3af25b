import concurrent.futures
import json
import shutil

import numpy as np
import pytest

import kerasbert

LABELS = ["no", "yes"]
TEXTS = ["a good film", "", "dull " * 20, "the plot , the actors and the music", "ok"]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    model = kerasbert.LayerSelectedClassifier.from_preset(
        "tiny", label_names=LABELS, sequence_length=32)
    directory = str(tmp_path_factory.mktemp("preset"))
    model.save_to_preset(directory)
    loaded = kerasbert.prediction.Classifier(directory)
    loaded.directory = directory
    return loaded


def test_classifier_shared_by_eight_threads_answers_as_called_one_by_one(classifier):
    batches = [[f"text {i} " + "word " * ((i * 7) % 23)] * (1 + i % 4) + TEXTS[: i % 5]
               for i in range(48)]
    expected = [classifier(batch) for batch in batches]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(classifier, batches))
    for (probabilities, labels), (want_probabilities, want_labels) in zip(results, expected):
        np.testing.assert_array_equal(probabilities, want_probabilities)
        assert labels.tolist() == want_labels.tolist()


def test_classifier_refuses_what_is_not_a_list_of_texts_in_one_line(classifier):
    # A bare string is not a batch of its characters (the int8 Classifier
    # refuses it alike, tests/test_int8.py).
    with pytest.raises(TypeError, match=r"list of texts, not one str.*\['hello'\]"):
        classifier("hello")
    with pytest.raises(TypeError, match=r"list of texts, not one bytes: write \[b'hello'\]"):
        classifier(b"hello")
    with pytest.raises(TypeError, match="not a dict"):
        classifier({"a text": 1})
    with pytest.raises(TypeError, match="item 0 is int 1"):
        classifier([1, None])
    with pytest.raises(TypeError, match="item 1 is None"):
        classifier(["a", None])
    with pytest.raises(ValueError, match=r"item 1 holds a lone surrogate '\\ud800' at character 2"):
        classifier(["fine", "ok\ud800"])
    with pytest.raises(ValueError, match=r"item 0 holds invalid UTF-8 at byte 2"):
        classifier([b"ok\xff", "fine"])
    probabilities, labels = classifier(np.array(["a good film", "ok"]))
    assert probabilities.shape == (2, 2) and len(labels) == 2
    assert classifier([])[0].shape == (0, 2)


def test_evaluation_markdown_keeps_each_label_in_its_cell():
    matrix = kerasbert.prediction.ConfusionMatrix(["a|b", "c\nd", "e\\"])
    matrix.add(["a|b", "c\nd", "e\\"], ["a|b", "a|b", "e\\"])
    lines = matrix.markdown().splitlines()
    table = [line for line in lines if line.startswith("|")]
    # Every row of both tables has its columns, whatever the names hold.
    assert {line.replace("\\|", "").count("|") for line in table[:5]} == {6}
    assert {line.replace("\\|", "").count("|") for line in table[5:]} == {5}
    assert "| a\\|b | 1 | 0 | 0 |" in lines and "| c<br>d | 1 | 0 | 0 |" in lines
    assert "| e\\\\ | 0 | 0 | 1 |" in lines
    assert kerasbert.prediction.markdown_cell("<br>") == "&lt;br&gt;"  # not a line break


@pytest.mark.parametrize("name, edit", [
    ("config.json", lambda config: {**config, "config": "BertBackbone"}),
    ("task.json", lambda config: {**config, "config": "x"}),
    ("config.json", lambda config: "BertBackbone"),
    ("preprocessor.json", lambda config: {**config, "class_name": 5}),
])
def test_a_damaged_preset_config_is_one_line_naming_the_directory(classifier, tmp_path, name,
                                                                  edit):
    shutil.copytree(classifier.directory, tmp_path / "preset")
    path = tmp_path / "preset" / name
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    with pytest.raises(ValueError, match=rf"preset/{name} (is not a saved Keras object|must "
                                         "hold a JSON object)") as error:
        kerasbert.prediction.Classifier(str(tmp_path / "preset"))
    assert "\n" not in str(error.value)
