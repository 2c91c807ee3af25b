"""Classify texts streamed from a file with a fine-tuned classifier, and score
the predictions when the file has labels."""

import os
import sys

import numpy as np
import tensorflow as tf

from kerasbert.data.records import decoded_lines
from kerasbert.data.records import joined_text
from kerasbert.data.records import parse_records
from kerasbert.data.records import record_format
from kerasbert.data.records import type_name
from kerasbert.export import ServingModule
from kerasbert.int8 import Int8Classifier
from kerasbert.int8 import is_int8_artifact
from kerasbert.models.load_classifier import load_classifier
from kerasbert.text.raw_texts import checked_texts
from kerasbert.text.vocabulary_coverage import is_blank_text

INPUT_FORMATS = ("auto", "jsonl", "csv", "tsv", "text")


def input_format_of(path, input_format="auto"):
    """The format of `path`: its extension under `"auto"` (`.jsonl`, `.csv`,
    `.tsv`; anything else, and stdin `-`, is plain text)."""
    if input_format not in INPUT_FORMATS:
        raise ValueError(f"`input_format` must be one of {INPUT_FORMATS}. Received: {input_format!r}")
    if input_format != "auto":
        return input_format
    return record_format(path) or "text"


def read_examples(path, input_format="auto", text_fields=("text",), label_field=None,
                  empty_text="error"):
    """Stream `(location, text, label)` from a file or stdin, one at a time.

    Memory stays flat whatever the file's size. Plain text has one text per
    line (no labels; blank lines are skipped, as in JSONL); JSONL, CSV and TSV records join `text_fields` with a
    space and read `label_field` when given. Every problem is a
    `ValueError` naming `file:line`: invalid UTF-8, bad JSON, a missing
    field, a non-string text, an empty text (unless `empty_text="keep"`), a
    label that is not a string or an integer.

    Args:
        path: str. A file, or `"-"` for standard input.
        input_format: str. One of `INPUT_FORMATS`.
        text_fields: sequence of str. Fields holding the text.
        label_field: str or None. Field holding the label.
        empty_text: str. `"error"` or `"keep"` (classify it from [CLS] [SEP]).

    Examples:
    ```python
    import tempfile
    path = tempfile.mktemp(suffix=".txt")
    open(path, "w").write("who was galileo ?\\nwhat is a tsunami ?\\n")
    [text for _, text, _ in kerasbert.prediction.read_examples(path)]
    # ['who was galileo ?', 'what is a tsunami ?']
    ```
    """
    if empty_text not in ("error", "keep"):
        raise ValueError(f"`empty_text` must be 'error' or 'keep'. Received: {empty_text!r}")
    fmt = input_format_of(path, input_format)
    name = "<stdin>" if path == "-" else path
    if fmt == "text" and label_field:
        raise ValueError("Plain-text input has no labels; give JSONL, CSV or TSV for --label_field.")
    if path != "-" and not os.path.isfile(path):
        raise FileNotFoundError(f"No input file at {path!r}.")
    return _stream(path, fmt, name, tuple(text_fields), label_field, empty_text)


def _stream(path, fmt, name, text_fields, label_field, empty_text):
    binary = sys.stdin.buffer if path == "-" else open(path, "rb")
    try:
        yield from _examples(decoded_lines(binary, name), fmt, name, text_fields,
                             label_field, empty_text)
    finally:
        if binary is not sys.stdin.buffer:
            binary.close()


def _examples(lines, fmt, name, text_fields, label_field, empty_text):
    for number, record in _records(lines, fmt, name):
        if fmt == "text":
            text, label = record.rstrip("\r\n"), None
        else:
            text = joined_text(
                record, text_fields, f"{name}:{number}",
                also_required=(label_field,) if label_field else (),
                hint=" Choose fields with --text_fields / --label_field.",
            )
            label = record[label_field] if label_field else None
            if label_field and (isinstance(label, bool) or not isinstance(label, (str, int))):
                raise ValueError(
                    f"{name}:{number}: label field {label_field!r} must hold a string or an "
                    f"integer; it holds {type_name(label)} {str(label)[:60]!r}."
                )
        if empty_text == "error" and is_blank_text(text):
            # The rule training applies: no word pieces is as empty as "".
            raise ValueError(
                f"{name}:{number}: empty text{' (only invisible characters)' if text else ''}. "
                "Fix or drop the line, or pass --empty_text=keep to classify it from "
                "[CLS] [SEP] alone."
            )
        yield f"{name}:{number}", text, None if label is None else str(label)


def _records(lines, fmt, name):
    if fmt == "text":
        # One text per line; blank lines are skipped, as in JSONL.
        return ((number, line) for number, line in lines if line.strip())
    return parse_records(lines, fmt, name)


class Classifier:
    """Raw texts → probabilities and labels, from any saved classifier.

    Loads a `fine_tune` run directory, a directory written by
    `save_to_preset`, an exported raw-text SavedModel (`saved_model.pb`
    with the `serve` signature of `kerasbert.export_serving`), or an int8
    classifier of `kerasbert.export_int8` (`RUN/int8`, served by LiteRT),
    and classifies batches of strings, each sorted by length and run in
    chunks padded to their longest text.

    Safe to call from many threads at once. A SavedModel is a program:
    loading one runs its graph, which may read and write files, so load
    SavedModels only from people you trust; a preset or an int8 classifier
    is data (Keras' safe mode, LiteRT builtin ops).

    Args:
        path: str. One of the directories above.

    Examples:
    ```python
    import tempfile
    model = kerasbert.LayerSelectedClassifier.from_preset(
        "tiny", label_names=["no", "yes"], sequence_length=16
    )
    directory = tempfile.mkdtemp()
    model.save_to_preset(directory)
    classifier = kerasbert.prediction.Classifier(directory)
    probabilities, labels = classifier(["a good film"])
    probabilities.shape, classifier.label_names  # ((1, 2), ['no', 'yes'])
    ```
    """

    def __init__(self, path):
        self._int8 = None
        if is_int8_artifact(path):
            self._int8 = Int8Classifier(path)
            self.label_names = self._int8.label_names
            return
        if isinstance(path, str) and os.path.isfile(os.path.join(path, "saved_model.pb")):
            self._module = tf.saved_model.load(path)
        else:
            model = load_classifier(path)
            if not getattr(model, "label_names", None):
                raise ValueError(f"The classifier in {path!r} has no label_names.")
            self._module = ServingModule(model, model.preprocessor, model.label_names)
        self._serve = self._module.serve
        names = self._serve(tf.constant([""]))["label_names"][0].numpy()
        self.label_names = [n.decode("utf-8") for n in names]

    def __call__(self, texts):
        """Probabilities `(batch, classes)` and the most probable label names.

        Safe to call from many threads at once. `texts` is a list (or any
        iterable) of strings; a bare string is refused, as one text is
        `[text]`."""
        if self._int8 is not None:
            return self._int8(texts)
        outputs = self._serve(tf.constant(checked_texts(texts), dtype=tf.string))
        labels = np.array([n.decode("utf-8") for n in outputs["label"].numpy()], dtype=object)
        return outputs["probabilities"].numpy(), labels


def markdown_cell(text):
    """`text` as one cell of a markdown table: HTML's `&`, `<` and `>`,
    backslashes and `|` escaped, line breaks written as `<br>` (so a label
    that is literally `<br>` stays text).

    Example:
    ```python
    kerasbert.prediction.markdown_cell("yes|no\\nmaybe")  # 'yes\\|no<br>maybe'
    ```
    """
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    return text.replace("\r\n", "<br>").replace("\n", "<br>").replace("\r", "<br>")


class ConfusionMatrix:
    """Counts of (true class, predicted class), and the scores they give.

    Args:
        label_names: list of str. The classes, in order.

    Examples:
    ```python
    matrix = kerasbert.prediction.ConfusionMatrix(["a", "b"])
    matrix.add(["a", "a", "b"], ["a", "b", "b"])
    matrix.scores()["accuracy"]  # 0.666...
    ```
    """

    def __init__(self, label_names):
        self.label_names = list(label_names)
        self._index = {name: i for i, name in enumerate(self.label_names)}
        self.counts = np.zeros((len(label_names), len(label_names)), dtype=np.int64)

    def add(self, true_labels, predicted_labels, locations=None):
        for i, (true, predicted) in enumerate(zip(true_labels, predicted_labels)):
            if true not in self._index:
                where = f"{locations[i]}: " if locations is not None else ""
                raise ValueError(
                    f"{where}unknown label {true!r}; the classifier's labels are "
                    f"{self.label_names}."
                )
            self.counts[self._index[true], self._index[predicted]] += 1

    def scores(self):
        """Accuracy, error, and per-class precision, recall, F1 and support."""
        total = int(self.counts.sum())
        correct = int(np.trace(self.counts))
        per_class = {}
        for i, name in enumerate(self.label_names):
            true_positive = int(self.counts[i, i])
            predicted = int(self.counts[:, i].sum())
            actual = int(self.counts[i].sum())
            precision = true_positive / predicted if predicted else 0.0
            recall = true_positive / actual if actual else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            per_class[name] = {"precision": precision, "recall": recall, "f1": f1,
                               "support": actual}
        accuracy = correct / total if total else 0.0
        return {
            "examples": total, "accuracy": accuracy, "error": 1.0 - accuracy if total else 0.0,
            "macro_f1": float(np.mean([c["f1"] for c in per_class.values()])),
            "per_class": per_class,
            "confusion_matrix": {"labels": self.label_names, "counts": self.counts.tolist()},
        }

    def markdown(self):
        """The scores and the matrix as markdown tables (label names escaped,
        so a `|` or a line break in one stays in its cell)."""
        scores = self.scores()
        names = [markdown_cell(name) for name in self.label_names]
        lines = [
            f"Examples: {scores['examples']}; accuracy {scores['accuracy']:.4f}; error "
            f"{100 * scores['error']:.2f} %; macro F1 {scores['macro_f1']:.4f}.", "",
            "| class | precision | recall | F1 | support |", "|---|---|---|---|---|",
        ]
        for name, c in zip(names, scores["per_class"].values()):
            lines.append(f"| {name} | {c['precision']:.4f} | {c['recall']:.4f} | "
                         f"{c['f1']:.4f} | {c['support']} |")
        lines += ["", "Confusion matrix (rows: true class, columns: predicted):", "",
                  "| true \\ predicted | " + " | ".join(names) + " |",
                  "|---|" + "---|" * len(names)]
        for name, row in zip(names, self.counts):
            lines.append(f"| {name} | " + " | ".join(str(int(v)) for v in row) + " |")
        return "\n".join(lines) + "\n"

    def plot(self, path):
        """Draw the matrix as a PNG (needs matplotlib)."""
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot

        size = max(4.0, 0.6 * len(self.label_names) + 2)
        figure, axes = pyplot.subplots(figsize=(size, size))
        axes.imshow(self.counts, cmap="Blues")
        axes.set_xticks(range(len(self.label_names)), self.label_names, rotation=45, ha="right")
        axes.set_yticks(range(len(self.label_names)), self.label_names)
        axes.set_xlabel("predicted")
        axes.set_ylabel("true")
        threshold = self.counts.max() / 2 if self.counts.size else 0
        for (i, j), value in np.ndenumerate(self.counts):
            axes.text(j, i, str(value), ha="center", va="center",
                      color="white" if value > threshold else "black")
        figure.tight_layout()
        figure.savefig(path, dpi=100)
        pyplot.close(figure)
