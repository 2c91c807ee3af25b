r"""Classify texts with a fine-tuned classifier; with labels, also evaluate it.

--model is a `finetune.py` run directory, a classifier preset
(`save_to_preset`), an exported SavedModel (`saved_model/` of a run) or an
int8 classifier (`int8/` of a run trained with --export_int8). A SavedModel
is a program: loading it runs its graph, which may read and write files, so
load one only from someone you trust (presets and int8 classifiers are data).
--input is JSONL, CSV or TSV (the text in --text_fields) or plain text, one
text per line; `-` reads standard input. It streams: memory stays flat
whatever the input's size. --output gets one JSON line per input text, in
input order: {"location", "label", "probabilities": {class: p}}; a regular
file is written to a temporary file of its own (OUTPUT.*.partial) and
renamed over OUTPUT when complete, so a killed run never leaves a file that
looks finished and two runs never mix (the last to finish wins). --output
may also be `-`, a FIFO or a device, written straight through; it may not
be the input.

An empty text is refused naming its line unless --empty_text=keep; without
--empty_text, the rule the model's training run recorded (its metrics.json,
in --model or the folder above) applies.

With --label_field, the predictions are scored: accuracy, error, per-class
precision/recall/F1 and the confusion matrix, written next to --output as
evaluation.json, evaluation.md and evaluation.png.

Example:
  .venv/bin/python recipes/predict.py --model=runs/trec_minilm --input=data/trec/test.jsonl \
      --label_field=label --output=runs/trec_predictions/test.jsonl
  echo "who was galileo ?" | .venv/bin/python recipes/predict.py --model=runs/trec_minilm \
      --input=- --output=-
"""

import json
import os
import secrets
import sys
import time

import recipe_main  # noqa: E402  (first: starts TensorFlow quietly)

from absl import flags  # noqa: E402

from config_flags import recorded_settings  # noqa: E402
from kerasbert import prediction  # noqa: E402
from kerasbert.utils.console import is_interactive  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "A run directory, a classifier preset, a SavedModel or "
                    "a run's int8/ directory. A SavedModel runs its own graph (code): load one "
                    "only from someone you trust.")
flags.DEFINE_string("input", None, "A JSONL/CSV/TSV or plain-text file, or - for stdin.")
flags.DEFINE_string("output", None, "Where the predictions go (JSONL), or - for stdout.")
flags.DEFINE_enum("input_format", "auto", prediction.INPUT_FORMATS,
                  "The input's format; auto: by extension (.jsonl, .csv, .tsv; else text).")
flags.DEFINE_list("text_fields", ["text"], "Fields joined with a space to form the text.")
flags.DEFINE_string("label_field", None, "The label field: evaluate the predictions too.")
flags.DEFINE_enum("empty_text", None, ["error", "keep"],
                  "An empty text: fail naming its line, or classify it from [CLS] [SEP]. "
                  "Default: the rule the model's training run recorded (its metrics.json, "
                  "in --model or the folder above it), else error.")
flags.DEFINE_integer("batch_size", 32, "Texts per batch.", lower_bound=1)
flags.DEFINE_string("evaluation_dir", None,
                    "Where evaluation.{json,md,png} go; default: --output's directory.")
recipe_main.define_recipe_flags()


def batches(examples, size):
    batch = []
    for example in examples:
        batch.append(example)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _same_file(input_path, target):
    # Standard input redirected from a file (`< F`) is that file too.
    if input_path != "-":
        return os.path.samefile(input_path, target)
    try:
        stdin = os.fstat(sys.stdin.fileno())
    except (OSError, ValueError):
        return False
    output = os.stat(target)
    return (stdin.st_dev, stdin.st_ino) == (output.st_dev, output.st_ino)


class Output:
    """Where predictions go: stdout, a device or FIFO written straight
    through, or a regular file written to a temporary file of its own next
    to it and renamed over it only when complete."""

    def __init__(self, path, input_path):
        self.path, self.temporary = path, None
        if path == "-":
            self.file = sys.stdout
            return
        target = os.path.realpath(path)
        if os.path.isdir(target):
            raise ValueError(f"--output={path!r} is a directory; name a file.")
        if os.path.exists(target) and _same_file(input_path, target):
            raise ValueError(f"--output={path!r} is the input file"
                             f"{' (standard input reads it)' if input_path == '-' else ''}; "
                             "name another file.")
        if os.path.exists(target) and not os.path.isfile(target):
            self.file = open(target, "w", encoding="utf-8")  # a FIFO or a device
            return
        directory = os.path.dirname(target)
        os.makedirs(directory, exist_ok=True)
        # Not mkstemp, whose file is private (0600): the output is an
        # ordinary file, with the permissions the user's umask gives.
        while True:
            self.temporary = os.path.join(
                directory, f"{os.path.basename(target)}.{secrets.token_hex(4)}.partial")
            try:
                descriptor = os.open(self.temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
                break
            except FileExistsError:
                continue
        self.file, self.target = os.fdopen(descriptor, "w", encoding="utf-8"), target

    def finish(self):
        if self.file is not sys.stdout:
            self.file.close()
        if self.temporary:
            os.replace(self.temporary, self.target)
            self.temporary = None

    def abort(self):
        if self.file is not sys.stdout:
            self.file.close()
        if self.temporary and os.path.exists(self.temporary):
            os.remove(self.temporary)  # a failed run leaves no half-written output


class Progress:
    """Texts classified so far: a line redrawn in place on a terminal, and a
    plain line every `LOG_SECONDS` otherwise (a log file gets no carriage
    returns or backspaces)."""

    LOG_SECONDS = 10.0

    def __init__(self, enabled=True, stream=None):
        self.stream = stream or sys.stdout
        self.enabled = enabled
        self.interactive = is_interactive(self.stream)
        self._last_line = time.time()
        self._drawn = False

    def update(self, count, texts_per_second):
        if not self.enabled:
            return
        line = f"{count} texts classified, {texts_per_second:.1f} texts/s"
        if self.interactive:
            self.stream.write("\r" + line + "\x1b[K")  # clear what a longer line left
            self._drawn = True
        elif time.time() - self._last_line >= self.LOG_SECONDS:
            self.stream.write(line + "\n")
            self._last_line = time.time()
        self.stream.flush()

    def end(self):
        if self._drawn:
            self.stream.write("\n")  # end the redrawn line
            self.stream.flush()


def training_empty_text(model):
    """The `empty_text` rule the run that trained `model` recorded in its
    `metrics.json`, or None. `model` is a run directory or a folder inside
    one (`saved_model/`, `int8/`, `preset/`)."""
    for folder in (model, os.path.dirname(os.path.abspath(model))):
        if os.path.isfile(os.path.join(folder, "metrics.json")):
            try:
                rule = recorded_settings(folder).get("empty_text")
            except (OSError, ValueError, AttributeError):  # unreadable: no recorded rule
                return None
            return rule if rule in ("error", "keep") else None
    return None


def main(argv):
    empty_text = FLAGS.empty_text or training_empty_text(FLAGS.model) or "error"
    examples = prediction.read_examples(
        FLAGS.input, FLAGS.input_format, FLAGS.text_fields, FLAGS.label_field, empty_text,
    )
    classifier = prediction.Classifier(FLAGS.model)
    to_stdout = FLAGS.output == "-"
    output = Output(FLAGS.output, FLAGS.input)
    matrix = prediction.ConfusionMatrix(classifier.label_names) if FLAGS.label_field else None
    progress = Progress(enabled=not to_stdout)
    started, count = time.time(), 0
    try:
        for batch in batches(examples, FLAGS.batch_size):
            locations, texts, labels = zip(*batch)
            probabilities, predicted = classifier(texts)
            for location, row, label in zip(locations, probabilities, predicted):
                output.file.write(json.dumps({
                    "location": location, "label": label,
                    "probabilities": dict(zip(classifier.label_names, map(float, row))),
                }, ensure_ascii=False) + "\n")
            output.file.flush()
            if matrix is not None:
                matrix.add(labels, predicted, locations)
            count += len(batch)
            progress.update(count, count / (time.time() - started))
        if count == 0:
            raise ValueError(f"{'<stdin>' if FLAGS.input == '-' else FLAGS.input}: "
                             "no texts to classify.")
        output.finish()
    except BaseException:
        output.abort()
        raise
    progress.end()
    seconds = time.time() - started
    summary = [f"{count} texts in {seconds:.1f} s ({count / seconds:.1f} texts/s)"]
    if not to_stdout:
        summary.append(f"predictions: {FLAGS.output}")
    if matrix is not None:
        directory = FLAGS.evaluation_dir or (
            "." if to_stdout else os.path.dirname(os.path.abspath(FLAGS.output)))
        os.makedirs(directory, exist_ok=True)
        scores = matrix.scores()
        with open(os.path.join(directory, "evaluation.json"), "w", encoding="utf-8") as file:
            json.dump({"model": FLAGS.model, "input": FLAGS.input, **scores}, file, indent=2)
        with open(os.path.join(directory, "evaluation.md"), "w", encoding="utf-8") as file:
            file.write(matrix.markdown())
        try:
            matrix.plot(os.path.join(directory, "evaluation.png"))
        except ImportError:
            summary.append("evaluation.png not drawn: matplotlib is not installed")
        summary.append(f"accuracy {scores['accuracy']:.4f}, error {100 * scores['error']:.2f} %, "
                       f"macro F1 {scores['macro_f1']:.4f}; evaluation: {directory}/evaluation."
                       "{json,md,png}")
    print("\n".join(summary), file=sys.stderr if to_stdout else sys.stdout)


if __name__ == "__main__":
    recipe_main.run(main, required=["model", "input", "output"])
