r"""Classify texts with a fine-tuned classifier; with labels, also evaluate it.

--model is a `finetune.py` run directory, a classifier preset
(`save_to_preset`) or an exported SavedModel (`saved_model/` of a run).
--input is JSONL, CSV or TSV (the text in --text_fields) or plain text, one
text per line; `-` reads standard input. It streams: memory stays flat
whatever the input's size. --output gets one JSON line per input text, in
input order: {"location", "label", "probabilities": {class: p}}; it is
written to OUTPUT.partial and renamed when complete, so a killed run never
leaves a file that looks finished.

With --label_field, the predictions are scored: accuracy, error, per-class
precision/recall/F1 and the confusion matrix, written next to --output as
evaluation.json, evaluation.md and evaluation.png.

Example:
  python recipes/predict.py --model=runs/trec_minilm --input=data/trec/test.jsonl \
      --label_field=label --output=runs/trec_minilm/test_predictions.jsonl
  echo "who was galileo ?" | python recipes/predict.py --model=runs/trec_minilm \
      --input=- --output=-
"""

import json
import os
import sys
import time

import recipe_main  # noqa: E402  (first: starts TensorFlow quietly)

import keras  # noqa: E402
from absl import flags  # noqa: E402

from kerasbert import prediction  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "A run directory, a classifier preset or a SavedModel.")
flags.DEFINE_string("input", None, "A JSONL/CSV/TSV or plain-text file, or - for stdin.")
flags.DEFINE_string("output", None, "Where the predictions go (JSONL), or - for stdout.")
flags.DEFINE_enum("input_format", "auto", prediction.INPUT_FORMATS,
                  "The input's format; auto: by extension (.jsonl, .csv, .tsv; else text).")
flags.DEFINE_list("text_fields", ["text"], "Fields joined with a space to form the text.")
flags.DEFINE_string("label_field", None, "The label field: evaluate the predictions too.")
flags.DEFINE_enum("empty_text", "error", ["error", "keep"],
                  "An empty text: fail naming its line, or classify it from [CLS] [SEP].")
flags.DEFINE_integer("batch_size", 32, "Texts per batch.", lower_bound=1)
flags.DEFINE_string("evaluation_dir", None,
                    "Where evaluation.{json,md,png} go; default: --output's directory.")
recipe_main.define_run_flags(checkpoint_every_steps=False, overwrite=False)


def batches(examples, size):
    batch = []
    for example in examples:
        batch.append(example)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def main(argv):
    classifier = prediction.Classifier(FLAGS.model)
    examples = prediction.read_examples(
        FLAGS.input, FLAGS.input_format, FLAGS.text_fields, FLAGS.label_field, FLAGS.empty_text,
    )
    to_stdout = FLAGS.output == "-"
    if not to_stdout and os.path.isdir(FLAGS.output):
        raise ValueError(f"--output={FLAGS.output!r} is a directory; name a file.")
    partial = None if to_stdout else FLAGS.output + ".partial"
    if partial:
        os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    matrix = prediction.ConfusionMatrix(classifier.label_names) if FLAGS.label_field else None
    progress = keras.utils.Progbar(None, unit_name="text", stateful_metrics=["texts/s"])
    output = sys.stdout if to_stdout else open(partial, "w", encoding="utf-8")
    started, count, complete = time.time(), 0, False
    try:
        for batch in batches(examples, FLAGS.batch_size):
            locations, texts, labels = zip(*batch)
            probabilities, predicted = classifier(texts)
            for location, row, label in zip(locations, probabilities, predicted):
                output.write(json.dumps({
                    "location": location, "label": label,
                    "probabilities": dict(zip(classifier.label_names, map(float, row))),
                }, ensure_ascii=False) + "\n")
            output.flush()
            if matrix is not None:
                matrix.add(labels, predicted, locations)
            count += len(batch)
            if not to_stdout:
                progress.update(count, [("texts/s", count / (time.time() - started))])
        if count == 0:
            raise ValueError(f"{FLAGS.input}: no texts to classify.")
        if not to_stdout:
            output.close()
            os.replace(partial, FLAGS.output)
        complete = True
    finally:
        if not to_stdout:
            output.close()
            if not complete and os.path.exists(partial):
                os.remove(partial)  # a failed run leaves no half-written output
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
