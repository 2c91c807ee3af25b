import json
import os
import tempfile

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import kerasbert


def write_lines(directory, name, lines):
    path = os.path.join(str(directory), name)
    with open(path, "w", encoding="utf-8") as file:
        file.write("".join(line + "\n" for line in lines))
    return path


@pytest.mark.parametrize(
    "label, kind",
    [(None, "null"), (1.0, "float"), (True, "bool"), (["A"], "list"), ({"a": 1}, "dict")],
)
def test_a_label_must_be_a_string_or_an_integer(tmp_path, label, kind):
    path = write_lines(tmp_path, "train.jsonl", [
        json.dumps({"text": "fine", "label": "A"}),
        json.dumps({"text": "bad", "label": label}),
    ])
    with pytest.raises(ValueError, match=rf"train.jsonl:2: label field 'label' must hold a "
                                         rf"string or an integer; it holds {kind}"):
        kerasbert.read_labeled_texts(path)


@pytest.mark.parametrize("text, kind", [(["a"], "list"), ({"a": 1}, "dict"), (True, "bool"),
                                        (None, "null"), (3, "int")])
def test_a_text_must_be_a_string(tmp_path, text, kind):
    path = write_lines(tmp_path, "train.jsonl", [json.dumps({"text": text, "label": "A"})])
    with pytest.raises(ValueError, match=rf"train.jsonl:1: field 'text' must hold a string; "
                                         rf"it holds {kind}"):
        kerasbert.read_labeled_texts(path)


def test_integer_labels_are_classes_but_not_mixed_with_strings(tmp_path):
    path = write_lines(tmp_path, "ints.jsonl", [
        json.dumps({"text": "a", "label": 10}), json.dumps({"text": "b", "label": 2}),
    ])
    data = kerasbert.read_labeled_texts(path)
    assert data.label_names == ["2", "10"] and data.labels.tolist() == [1, 0]
    path = write_lines(tmp_path, "mixed.jsonl", [
        json.dumps({"text": "a", "label": 1}), json.dumps({"text": "b", "label": "1"}),
    ])
    with pytest.raises(ValueError, match="mix integers .first at line 1. and strings "
                                         ".first at line 2."):
        kerasbert.read_labeled_texts(path)


@pytest.mark.parametrize("spellings", [["HUM", " HUM"], ["1", "1.0"], ["2", "02"]])
def test_one_class_spelled_two_ways_is_an_error(tmp_path, spellings):
    path = write_lines(tmp_path, "train.csv", ["text,label"] + [
        f'text {i},"{label}"' for i, label in enumerate(spellings)
    ])
    with pytest.raises(ValueError, match="differ only in spelling"):
        kerasbert.read_labeled_texts(path)


def test_line_numbers_travel_with_subsets(tmp_path):
    lines = [json.dumps({"text": f"t{i}", "label": "AB"[i % 2]}) for i in range(10)]
    data = kerasbert.read_labeled_texts(write_lines(tmp_path, "train.jsonl", lines))
    rest, carved = data.split(0.3, seed=1)
    for subset in (rest, carved, data.sample(4, seed=2)):
        for index, text in enumerate(subset.texts):
            assert subset.where(index) == f"{tmp_path / 'train.jsonl'}:{int(text[1:]) + 1}"


# === Property-based: any bytes, any records ===

def _one_line_error_naming(error, path):
    message = str(error)
    assert "\n" not in message.strip(), message
    assert os.path.basename(path) in message, message


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=st.binary(max_size=300), extension=st.sampled_from([".jsonl", ".csv", ".tsv"]))
def test_random_bytes_give_examples_or_a_one_line_error(content, extension):
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "train" + extension)
        with open(path, "wb") as file:
            file.write(content)
        try:
            data = kerasbert.read_labeled_texts(path)
        except (ValueError, FileNotFoundError) as error:
            _one_line_error_naming(error, path)
        else:
            assert len(data) > 0
            assert all(isinstance(t, str) and t.strip() for t in data.texts)
            assert all(0 <= label < len(data.label_names) for label in data.labels)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=2) | st.dictionaries(st.text(max_size=3),
                                                                       children, max_size=2),
    max_leaves=4,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(st.fixed_dictionaries({"text": JSON_VALUES, "label": JSON_VALUES}),
                        min_size=1, max_size=6))
def test_random_records_give_the_right_examples_or_a_one_line_error(records):
    with tempfile.TemporaryDirectory() as directory:
        path = write_lines(directory, "train.jsonl", [json.dumps(r) for r in records])
        try:
            data = kerasbert.read_labeled_texts(path)
        except ValueError as error:
            _one_line_error_naming(error, path)
            return
    # Accepted: every record was a non-empty string text with a string or
    # integer label, and the examples are exactly the records.
    for record in records:
        assert isinstance(record["text"], str) and record["text"].strip()
        assert isinstance(record["label"], (str, int)) and not isinstance(record["label"], bool)
    assert data.texts == [r["text"].strip() for r in records]
    assert [data.label_names[i] for i in data.labels] == [str(r["label"]) for r in records]
