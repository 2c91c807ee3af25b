r"""Documents per second of the paper's six long-text strategies (Table 2).

Times training steps and inference of MiniLM (or any backbone spec) on real
documents, for head / tail / head+tail truncation and hierarchical segments
pooled by mean / max / attention:

  .venv/bin/python tools/benchmark_long_text.py \
      --data=../shared/data/imdb/train.jsonl --documents=32 --batch_size=8

Each strategy gets a fresh model; every batch is run once untimed (tracing)
and then timed, so the figures are steady-state throughput.
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

flags.DEFINE_string("data", "../shared/data/imdb/train.jsonl", "JSONL with text and label.")
flags.DEFINE_string("backbone", "minilm", "Backbone spec.")
flags.DEFINE_integer("documents", 32, "Documents timed (a seeded random sample).")
flags.DEFINE_integer("batch_size", 8, "Documents per batch.")
flags.DEFINE_integer("sequence_length", 512, "Word pieces per BERT input.")
flags.DEFINE_integer("head_length", 128, "Head pieces of head+tail.")
flags.DEFINE_integer("max_segments", None, "Segment cap of the hierarchical strategies.")
flags.DEFINE_list(
    "strategies",
    ["head", "tail", "head_tail", "segments_mean", "segments_max", "segments_attention"],
    "Strategies to time.",
)
flags.DEFINE_integer("seed", 0, "Sampling seed.")
FLAGS = flags.FLAGS


def timed(function, batches):
    for features, labels in batches:  # trace every shape once
        function(features, labels)
    started = time.perf_counter()
    for features, labels in batches:
        function(features, labels)
    return time.perf_counter() - started


def main(_):
    import keras
    import numpy as np
    import tensorflow as tf

    import kerasbert

    data = kerasbert.read_labeled_texts(FLAGS.data)
    rng = np.random.default_rng(FLAGS.seed)
    chosen = np.sort(rng.choice(len(data), FLAGS.documents, replace=False))
    texts = [data.texts[i] for i in chosen]
    labels = data.labels[chosen]
    _, tokenizer = kerasbert.load_backbone(FLAGS.backbone)
    lengths = np.array([len(ids) for ids in tokenizer(texts)])  # eager: Python lists
    print(
        f"{FLAGS.documents} documents from {FLAGS.data}: word pieces mean "
        f"{lengths.mean():.0f}, max {lengths.max()}, "
        f"{(lengths > FLAGS.sequence_length - 2).mean():.0%} over {FLAGS.sequence_length - 2}"
    )
    rows = []
    for strategy in FLAGS.strategies:
        segmented = strategy.startswith("segments_")
        keras.utils.set_random_seed(FLAGS.seed)
        backbone, tokenizer = kerasbert.load_backbone(FLAGS.backbone)
        preprocessor = kerasbert.ClassifierPreprocessor(
            tokenizer, sequence_length=FLAGS.sequence_length,
            truncation="segments" if segmented else strategy,
            head_length=FLAGS.head_length, max_segments=FLAGS.max_segments,
        )
        if segmented:
            model = kerasbert.SegmentPoolingClassifier(
                backbone, len(data.label_names), pooling=strategy[len("segments_"):]
            )
        else:
            model = kerasbert.LayerSelectedClassifier(backbone, len(data.label_names))
        model.compile(optimizer=keras.optimizers.Adam(2e-5))
        dataset = tf.data.Dataset.from_tensor_slices((texts, labels))
        batches = list(kerasbert.make_batches(dataset, preprocessor, FLAGS.batch_size, bucket=False))
        inputs = sum(
            int(np.asarray(f["padding_mask"]).reshape(-1, f["padding_mask"].shape[-1]).any(-1).sum())
            for f, _ in batches
        )
        train_seconds = timed(lambda x, y: model.train_on_batch(x, y), batches)
        infer_seconds = timed(lambda x, y: model.predict_on_batch(x), batches)
        rows.append((strategy, inputs / FLAGS.documents, FLAGS.documents / train_seconds,
                     FLAGS.documents / infer_seconds))
        print(f"  done {strategy}", flush=True)

    print(f"\nbackbone {FLAGS.backbone}, length {FLAGS.sequence_length}, batch {FLAGS.batch_size}")
    print("| strategy | BERT inputs / doc | train docs/s | inference docs/s |")
    print("|---|---|---|---|")
    for strategy, per_doc, train_rate, infer_rate in rows:
        print(f"| {strategy} | {per_doc:.2f} | {train_rate:.2f} | {infer_rate:.2f} |")


if __name__ == "__main__":
    app.run(main)
