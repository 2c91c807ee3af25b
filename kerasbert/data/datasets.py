"""Labelled text datasets: JSON Lines / CSV / TSV files and TFDS names.

Bad input never passes silently: a missing file, a missing field, a label
outside the known vocabulary, invalid UTF-8, an empty text or an empty
dataset raises a `ValueError` (or `FileNotFoundError`) naming the file, the
line and the problem. Records are read strictly: a text must be a string;
a label a string or an integer (never null, a float, a bool, a list or a
dict); one file may not mix integer and string labels, nor spell one class
two ways (`"A"` and `" A"`, `"1"` and `"1.0"`).
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from kerasbert.data.records import FILE_FORMATS
from kerasbert.data.records import joined_text
from kerasbert.data.records import read_records
from kerasbert.data.records import type_name
from kerasbert.text.raw_texts import lone_surrogate

TFDS_PREFIX = "tfds:"
# Text and label fields of the TFDS datasets of the paper.
TFDS_FIELDS = {
    "imdb_reviews": (("text",), "label"),
    "yelp_polarity_reviews": (("text",), "label"),
    "ag_news_subset": (("title", "description"), "label"),
    "trec": (("text",), "label-coarse"),
}
EMPTY_TEXT_HANDLING = ("error", "keep")


@dataclasses.dataclass(frozen=True)
class LabeledTexts:
    """Texts with integer labels into a fixed label vocabulary.

    Attributes:
        texts: list of str.
        labels: int32 numpy array, `labels[i]` indexes `label_names`.
        label_names: list of str, the label vocabulary.
        source: str. Where the examples came from, for messages.
        locations: list of str or None. `file:line` of each example (files
            only), kept through `sample`, `split` and `subset`.
        empty_text: str. How the reader treated empty texts (`"error"` or
            `"keep"`); fine-tuning applies the same rule to texts that yield
            no word pieces.
    """

    texts: list
    labels: np.ndarray
    label_names: list
    source: str
    locations: list = None
    empty_text: str = "error"

    def __post_init__(self):
        # Named here, by example, instead of by a codec error in the tokenizer.
        for index, text in enumerate(self.texts):
            if not isinstance(text, str):
                raise ValueError(f"{self.where(index)}: a text must be a string; it is "
                                 f"{type(text).__name__} {repr(text)[:60]}.")
            problem = lone_surrogate(text)
            if problem:
                raise ValueError(f"{self.where(index)}: the text holds {problem}.")

    def __len__(self):
        return len(self.texts)

    def where(self, index):
        """`file:line` of example `index`, for messages."""
        if self.locations is None:
            return f"{self.source} (example {index})"
        return self.locations[index]

    def subset(self, indices, source):
        """The examples at `indices` (in that order), described as `source`."""
        return LabeledTexts(
            [self.texts[i] for i in indices],
            self.labels[np.asarray(indices, dtype=np.int64)],
            self.label_names,
            source,
            None if self.locations is None else [self.locations[i] for i in indices],
            self.empty_text,
        )

    def to_tf_dataset(self):
        """A `tf.data.Dataset` of `(text, label)` pairs."""
        return tf.data.Dataset.from_tensor_slices((self.texts, self.labels))

    def sample(self, count, seed=0):
        """A reproducible random subset of `count` examples, in file order."""
        if not 0 < count <= len(self):
            raise ValueError(
                f"Cannot sample {count} examples from the {len(self)} of {self.source}."
            )
        chosen = np.sort(np.random.default_rng(seed).choice(len(self), count, replace=False))
        return self.subset(chosen, f"{self.source} ({count} sampled)")

    def sample_per_class(self, count, seed=0):
        """A reproducible subset of `count` examples of every class (few-shot).

        Raises a `ValueError` naming the class when one has fewer examples.
        """
        rng = np.random.default_rng(seed)
        chosen = []
        for label, name in enumerate(self.label_names):
            members = np.flatnonzero(self.labels == label)
            if len(members) < count:
                raise ValueError(
                    f"Class {name!r} of {self.source} has {len(members)} examples; "
                    f"{count} per class were asked for."
                )
            chosen.extend(rng.choice(members, count, replace=False))
        chosen = np.sort(np.array(chosen))
        return self.subset(chosen, f"{self.source} ({count} per class)")

    def split(self, fraction, seed=0):
        """Carve a random `fraction` off as a second set, reproducibly.

        Returns:
            A tuple `(rest, carved)` of `LabeledTexts` with the same labels.
        """
        if not 0 < fraction < 1:
            raise ValueError(f"`fraction` must be in (0, 1). Received: {fraction}")
        order = np.random.default_rng(seed).permutation(len(self))
        cut = int(round(len(self) * fraction))
        if cut == 0 or cut == len(self):
            raise ValueError(
                f"Carving {fraction:.0%} of the {len(self)} examples of "
                f"{self.source} leaves one side empty."
            )
        carved, rest = np.sort(order[:cut]), np.sort(order[cut:])
        return (
            self.subset(rest, f"{self.source} ({1 - fraction:.0%} kept)"),
            self.subset(carved, f"{self.source} ({fraction:.0%} carved)"),
        )


def _resolve_file(spec, split):
    if os.path.isfile(spec):
        return spec
    if os.path.isdir(spec):
        candidates = [os.path.join(spec, split + ext) for ext in FILE_FORMATS]
        for candidate in candidates:
            if os.path.isfile(candidate):
                return candidate
        raise FileNotFoundError(
            f"No {split!r} split in directory {spec!r}: looked for "
            f"{', '.join(os.path.basename(c) for c in candidates)}."
        )
    raise FileNotFoundError(
        f"Dataset {spec!r} is neither a file, nor a directory, nor a TFDS name "
        f"(write 'tfds:NAME', or one of {sorted(TFDS_FIELDS)})."
    )


def _read_file(path, text_fields, label_field, empty_text):
    texts, labels, line_numbers, integer_lines, string_lines = [], [], [], [], []
    for number, record in read_records(path):
        text = joined_text(
            record, text_fields, f"{path}:{number}", also_required=(label_field,),
            hint=" Choose fields with text_fields= / label_field= (--text_fields / "
                 "--label_field in recipes).",
        )
        if not text.strip() and empty_text == "error":
            raise ValueError(
                f"{path}:{number}: empty text in field(s) {list(text_fields)}. Fix or "
                "drop the line, or pass empty_text='keep' to classify it from "
                "[CLS] [SEP] alone."
            )
        label = record[label_field]
        if isinstance(label, bool) or not isinstance(label, (str, int)):
            raise ValueError(
                f"{path}:{number}: label field {label_field!r} must hold a string or an "
                f"integer; it holds {type_name(label)} {str(label)[:60]!r}."
            )
        (integer_lines if isinstance(label, int) else string_lines).append(number)
        if isinstance(label, str) and not label.strip():
            raise ValueError(f"{path}:{number}: empty label in field {label_field!r}.")
        texts.append(text)
        labels.append(str(label))
        line_numbers.append(number)
    if integer_lines and string_lines:
        raise ValueError(
            f"{path}: labels mix integers (first at line {integer_lines[0]}) and strings "
            f"(first at line {string_lines[0]}); use one type for field {label_field!r}."
        )
    _check_distinct_spellings(path, labels, line_numbers)
    return texts, labels, line_numbers


def _check_distinct_spellings(source, labels, line_numbers):
    # Labels that differ only by surrounding whitespace, or that spell one
    # number two ways ("1" and "1.0"), are almost surely one class.
    first_line = {}
    for label, number in zip(labels, line_numbers):
        first_line.setdefault(label, number)
    spellings = {}
    for label in first_line:
        key = label.strip()
        try:
            key = float(key)
        except ValueError:
            pass
        spellings.setdefault(key, []).append(label)
    for variants in spellings.values():
        if len(variants) > 1:
            where = ", ".join(f"{v!r} (line {first_line[v]})" for v in variants)
            raise ValueError(
                f"{source}: labels {where} differ only in spelling; write each class one way."
            )


def _read_tfds(name, split, data_dir, text_fields, label_field):
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
        dataset = builder.as_dataset(split=split)
    except Exception as error:
        raise FileNotFoundError(
            f"TFDS dataset {name!r} (split {split!r}) is not prepared under "
            f"data_dir={data_dir!r}, and kerasbert never downloads at run time. "
            f"Prepare it once with `tfds build {name} --data_dir=DIR` on a machine "
            f"with network access. Cause: {error}"
        ) from error
    features = builder.info.features
    missing = [f for f in (*text_fields, label_field) if f not in features]
    if missing:
        raise ValueError(
            f"TFDS dataset {name!r} has no field(s) {missing}; it has {sorted(features)}."
        )
    names = getattr(features[label_field], "names", None)
    texts, labels = [], []
    for example in tfds.as_numpy(dataset):
        parts = [example[f].decode("utf-8") for f in text_fields]
        texts.append(" ".join(p.strip() for p in parts))
        label = int(example[label_field])
        labels.append(names[label] if names else str(label))
    return texts, labels, names


def read_labeled_texts(
    spec,
    split="train",
    *,
    text_fields=("text",),
    label_field="label",
    label_names=None,
    data_dir=None,
    empty_text="error",
):
    """Read a labelled text dataset into memory.

    Args:
        spec: str. A JSONL/CSV/TSV file; a directory holding `SPLIT.jsonl`,
            `SPLIT.csv` or `SPLIT.tsv`; or a TFDS dataset, as `"tfds:NAME"` or
            one of `imdb_reviews`, `yelp_polarity_reviews`, `ag_news_subset`,
            `trec` (their text and label fields are known).
        split: str. The split to read from a directory or TFDS.
        text_fields: str or sequence of str. Fields joined with a space to
            form the text (e.g. `("title", "body")`).
        label_field: str. The label field.
        label_names: list of str or None. The label vocabulary. `None` builds
            it from this data (sorted; the TFDS class names for TFDS). Pass the
            training set's vocabulary when reading validation or test data: a
            label outside it is an error.
        data_dir: str or None. The TFDS data directory.
        empty_text: str. `"error"` (default) rejects empty texts; `"keep"`
            keeps them (the model then sees only `[CLS] [SEP]`).

    Returns:
        A `LabeledTexts`.
    """
    if isinstance(text_fields, str):
        text_fields = (text_fields,)
    if empty_text not in EMPTY_TEXT_HANDLING:
        raise ValueError(
            f"`empty_text` must be one of {EMPTY_TEXT_HANDLING}. Received: {empty_text!r}"
        )
    tfds_name = spec[len(TFDS_PREFIX):] if spec.startswith(TFDS_PREFIX) else None
    if tfds_name is None and spec in TFDS_FIELDS and not os.path.exists(spec):
        tfds_name = spec
    if tfds_name is not None:
        if tfds_name in TFDS_FIELDS and text_fields == ("text",) and label_field == "label":
            text_fields, label_field = TFDS_FIELDS[tfds_name]
        texts, labels, class_names = _read_tfds(
            tfds_name, split, data_dir, text_fields, label_field
        )
        empty = [i for i, t in enumerate(texts) if not t.strip()]
        if empty and empty_text == "error":
            raise ValueError(
                f"TFDS {tfds_name}[{split}]: {len(empty)} empty texts (first at "
                f"example {empty[0]}); pass empty_text='keep' to keep them."
            )
        source = f"tfds:{tfds_name}[{split}]"
        label_names = label_names or class_names
        locations = None
    else:
        source = _resolve_file(spec, split)
        texts, labels, line_numbers = _read_file(source, text_fields, label_field, empty_text)
        locations = [f"{source}:{number}" for number in line_numbers]
    if not texts:
        raise ValueError(f"Dataset {source} holds no examples.")
    if label_names is None:
        label_names = sorted(set(labels), key=_label_sort_key)
    label_names = list(label_names)
    index = {name: i for i, name in enumerate(label_names)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise ValueError(
            f"{source}: label(s) {unknown} are not in the label vocabulary "
            f"{label_names} (the training labels). A model cannot predict a class "
            "it never saw in training."
        )
    return LabeledTexts(
        texts, np.array([index[l] for l in labels], np.int32), label_names, source,
        locations, empty_text,
    )


def _label_sort_key(label):
    # Numeric labels sort as numbers ("2" before "10").
    try:
        return (0, float(label), "")
    except ValueError:
        return (1, 0.0, label)


def load_dataset(spec, split="train", **kwargs):
    """Load a labelled text dataset as a `tf.data.Dataset`.

    Takes the arguments of `read_labeled_texts`.

    Returns:
        A tuple `(dataset, label_names)`: a `tf.data.Dataset` of
        `(text, label)` pairs (`tf.string`, `tf.int32`) and the list of label
        names that the integer labels index.

    Examples:
    ```python
    import json, tempfile, os
    path = os.path.join(tempfile.mkdtemp(), "train.jsonl")
    with open(path, "w") as f:
        for text, label in [("who was galileo ?", "HUM"), ("what is an atom ?", "DESC")]:
            f.write(json.dumps({"text": text, "label": label}) + "\\n")
    dataset, label_names = kerasbert.load_dataset(path)
    label_names  # ['DESC', 'HUM']
    ```
    """
    data = read_labeled_texts(spec, split, **kwargs)
    return data.to_tf_dataset(), data.label_names
