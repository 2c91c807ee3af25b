r"""Fine-tune BERT for text classification (Sun et al. 2019, §5).

Defaults are the paper's: batch 24, dropout 0.1, Adam at 2e-5 with 10 %
warmup then linear decay, 4 epochs, length 512, best epoch on validation.

Example (the README demo):
  python recipes/finetune.py --flagfile=recipes/flags/trec_minilm.flags \
      --output_dir=runs/trec_minilm
"""

import json
import os

import recipe_main  # noqa: E402  (first: starts TensorFlow quietly)

from absl import flags  # noqa: E402

import kerasbert  # noqa: E402
from kerasbert.training import arguments  # noqa: E402
from scale_flags import define_scale_flags  # noqa: E402
from scale_flags import scale_settings  # noqa: E402

define_scale_flags()
recipe_main.define_run_flags()
FLAGS = flags.FLAGS
LONG_TEXT_STRATEGIES = [
    "head", "tail", "head_tail", "segments_mean", "segments_max", "segments_attention"
]

flags.DEFINE_string("backbone", "minilm", "Backbone spec for kerasbert.load_backbone.")
flags.DEFINE_string("train", None, "Training data: file, directory or TFDS name.")
flags.DEFINE_string("validation", None, "Validation data; unset carves --validation_fraction off train.")
flags.DEFINE_float("validation_fraction", 0.1, "Fraction of train carved off as validation when --validation is unset; 0 keeps the last epoch instead.")
flags.DEFINE_string("test", None, "Test data, evaluated with the best epoch.")
flags.DEFINE_integer("train_examples", None, "Use a seeded random subset of this many training examples (before carving validation).")
flags.DEFINE_integer("train_examples_per_class", None, "Few-shot: a seeded subset of this many examples per class (before carving validation).")
flags.DEFINE_string("train_split", "train", "Split read from a directory or TFDS for --train.")
flags.DEFINE_string("validation_split", "validation", "Split read for --validation.")
flags.DEFINE_string("test_split", "test", "Split read for --test.")
flags.DEFINE_string("data_dir", None, "TFDS data directory (no downloads happen).")
flags.DEFINE_list("text_fields", ["text"], "Fields joined to form the text, e.g. title,body.")
flags.DEFINE_string("label_field", "label", "The label field.")
flags.DEFINE_enum("empty_text", "error", ["error", "keep"], "Empty texts: reject, or keep as [CLS] [SEP].")
flags.DEFINE_integer("sequence_length", 512, "Word pieces per input, [CLS] and [SEP] included.")
flags.DEFINE_enum("truncation", "head", ["head", "tail", "head_tail", "segments"], "Long-text handling; segments = hierarchical (see --segment_pooling).")
flags.DEFINE_integer("head_length", 128, "Head pieces kept under --truncation=head_tail.")
flags.DEFINE_enum("segment_pooling", "mean", ["mean", "max", "attention"], "Pooling of segment [CLS] vectors under --truncation=segments.")
flags.DEFINE_integer("max_segments", None, "Most segments per document (first ceil(m/2) + last floor(m/2) kept).")
flags.DEFINE_integer("segment_stride", 0, "Word pieces shared by consecutive segments.")
flags.DEFINE_enum("long_text", None, LONG_TEXT_STRATEGIES, "Shorthand for the paper's Table 2 rows: sets --truncation (and --segment_pooling).")
flags.DEFINE_enum("classifier", "cls", ["cls", "feature_bilstm"], "cls: softmax on [CLS]; feature_bilstm: BERT-Feat (frozen features of one layer into a BiLSTM with self-attention).")
flags.DEFINE_string("layers", "-1", "Layer(s) read: an int, comma-separated ints, first4, last4 or all.")
flags.DEFINE_enum("combine", "concat", ["concat", "mean", "max"], "How several layers combine.")
flags.DEFINE_bool("freeze_backbone", False, "Train the head only (feature-based baseline).")
flags.DEFINE_float("learning_rate", 2e-5, "Peak learning rate.")
flags.DEFINE_integer("batch_size", 24, "Batch size.")
flags.DEFINE_integer("epochs", 4, "Epochs.")
flags.DEFINE_float("warmup_proportion", 0.1, "Fraction of steps spent warming up.")
flags.DEFINE_enum("schedule", "warmup_linear", ["warmup_linear", "slanted_triangular"], "Learning-rate schedule.")
flags.DEFINE_float("layer_decay", 1.0, "ξ: each layer's rate is ξ times the one above (paper's best: 0.95).")
flags.DEFINE_enum("layer_decay_convention", "paper", ["paper", "official_code"], "paper: embeddings continue the decay; official_code: embeddings at the base rate.")
flags.DEFINE_float("weight_decay", 0.0, "Decoupled weight decay (AdamW), off LayerNorm and bias.")
flags.DEFINE_bool(
    "sparse_embedding_updates", False,
    "Speed switch: update only the word-embedding rows each batch looks up (LazyAdam), leaving "
    "the other rows' Adam moments and values alone. Departs from the paper's Adam. Not with "
    "--jit_compile.")
flags.DEFINE_float("dropout", 0.1, "Dropout before the softmax layer.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_string("output_dir", None, "Where metrics, checkpoints and the SavedModel go.")


def long_text_settings(long_text, truncation, segment_pooling):
    """(truncation, segment_pooling) from --long_text, or the explicit flags."""
    if long_text is None:
        return truncation, segment_pooling
    if long_text.startswith("segments_"):
        return "segments", long_text[len("segments_"):]
    return long_text, segment_pooling


def main(_):
    layers = recipe_main.parse_layers(FLAGS.layers)
    arguments.positive_int("train_examples", FLAGS.train_examples, allow_none=True)
    arguments.positive_int("train_examples_per_class", FLAGS.train_examples_per_class,
                           allow_none=True)
    arguments.in_range("validation_fraction", FLAGS.validation_fraction, 0, 1, high_open=True)
    read = dict(
        text_fields=FLAGS.text_fields, label_field=FLAGS.label_field,
        data_dir=FLAGS.data_dir, empty_text=FLAGS.empty_text,
    )
    train = kerasbert.read_labeled_texts(FLAGS.train, FLAGS.train_split, **read)
    if FLAGS.train_examples:
        train = train.sample(FLAGS.train_examples, seed=FLAGS.seed)
    if FLAGS.train_examples_per_class:
        train = train.sample_per_class(FLAGS.train_examples_per_class, seed=FLAGS.seed)
    read["label_names"] = train.label_names
    validation = None
    if FLAGS.validation:
        validation = kerasbert.read_labeled_texts(FLAGS.validation, FLAGS.validation_split, **read)
    elif FLAGS.validation_fraction > 0:
        train, validation = train.split(FLAGS.validation_fraction, seed=FLAGS.seed)
    test = kerasbert.read_labeled_texts(FLAGS.test, FLAGS.test_split, **read) if FLAGS.test else None

    truncation, segment_pooling = long_text_settings(
        FLAGS.long_text, FLAGS.truncation, FLAGS.segment_pooling
    )
    metrics = kerasbert.fine_tune(
        FLAGS.backbone, train, FLAGS.output_dir, validation=validation, test=test,
        sequence_length=FLAGS.sequence_length, truncation=truncation,
        head_length=FLAGS.head_length, segment_pooling=segment_pooling,
        max_segments=FLAGS.max_segments, segment_stride=FLAGS.segment_stride,
        classifier=FLAGS.classifier, layers=layers,
        combine=FLAGS.combine, dropout=FLAGS.dropout,
        freeze_backbone=FLAGS.freeze_backbone, learning_rate=FLAGS.learning_rate,
        batch_size=FLAGS.batch_size, epochs=FLAGS.epochs,
        warmup_proportion=FLAGS.warmup_proportion, schedule=FLAGS.schedule,
        layer_decay=FLAGS.layer_decay,
        layer_decay_convention=FLAGS.layer_decay_convention,
        weight_decay=FLAGS.weight_decay, sparse_embedding_updates=FLAGS.sparse_embedding_updates,
        **scale_settings(), seed=FLAGS.seed,
        checkpoint_every_steps=FLAGS.checkpoint_every_steps, overwrite=FLAGS.overwrite,
    )
    summary = {k: metrics[k] for k in ("best_epoch", "validation", "test") if k in metrics}
    print(json.dumps(summary, indent=2))
    if "test" in metrics:
        print(f"test error: {100 * metrics['test']['error']:.2f}% "
              f"({metrics['test']['examples']} examples, "
              f"training {metrics['train_seconds']:.0f} s)")


if __name__ == "__main__":
    recipe_main.run(main, required=["train", "output_dir"])
