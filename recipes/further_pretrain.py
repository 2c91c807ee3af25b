r"""Further pre-train BERT with masked LM (+ NSP) on task or domain text.

In-task (ITPT), in-domain (IDPT) and cross-domain (CDPT) pre-training differ
only in --corpus (Sun et al. 2019, §4.2). Paper settings: batch 32, length
128, lr 5e-5, 10k warmup steps, 100k steps, MLM + NSP.

  python recipes/further_pretrain.py --backbone=minilm \
      --corpus=data/trec/train.jsonl --corpus=imdb.jsonl@2 --nsp \
      --steps=1000 --warmup_steps=100 --checkpoint_every=250 --output_dir=runs/cdpt
  python recipes/finetune.py --backbone=runs/cdpt/backbone ...

Killed and started again with the same --output_dir, it resumes at the last
checkpoint.
"""

import json
import os

import recipe_main  # noqa: E402  (first: starts TensorFlow quietly)

from absl import flags  # noqa: E402

import kerasbert  # noqa: E402
from scale_flags import define_scale_flags  # noqa: E402
from scale_flags import scale_settings  # noqa: E402
from kerasbert.data.corpus import parse_source  # noqa: E402

flags.DEFINE_string("backbone", "minilm", "Backbone spec for kerasbert.load_backbone.")
flags.DEFINE_multi_string("corpus", None, "A corpus source, repeatable: a .txt/.jsonl/.csv/.tsv file or tfds:NAME, optionally SPEC@WEIGHT.")
flags.DEFINE_list("text_fields", ["text"], "Text fields of JSONL/CSV/TSV sources.")
flags.DEFINE_string("data_dir", None, "TFDS data directory.")
flags.DEFINE_integer("steps", 100_000, "Training steps (a multiple of --checkpoint_every).")
flags.DEFINE_integer("warmup_steps", 10_000, "Linear warmup steps.")
flags.DEFINE_float("learning_rate", 5e-5, "Peak learning rate.")
flags.DEFINE_integer("batch_size", 32, "Sequences per step.")
flags.DEFINE_integer("sequence_length", 128, "Word pieces per sequence.")
flags.DEFINE_bool("nsp", False, "Add next-sentence prediction (the paper used MLM + NSP).")
flags.DEFINE_float("mask_rate", 0.15, "Fraction of word pieces selected for MLM.")
flags.DEFINE_integer("max_predictions", 20, "Most MLM predictions per sequence.")
flags.DEFINE_bool("whole_word_masking", False, "Mask all word pieces of a selected word together.")
flags.DEFINE_float("weight_decay", 0.01, "AdamW weight decay (off LayerNorm and bias).")
flags.DEFINE_integer("checkpoint_every", 1000, "Steps between checkpoints.")
flags.DEFINE_integer("keep_checkpoints", 2, "Recent checkpoints kept.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_string("output_dir", None, "Checkpoints, logs, metrics.json and backbone/.")
define_scale_flags()
recipe_main.define_run_flags(checkpoint_every_steps=False)
FLAGS = flags.FLAGS


def main(_):
    metrics = kerasbert.further_pretrain(
        FLAGS.backbone, [parse_source(s) for s in FLAGS.corpus], FLAGS.output_dir,
        steps=FLAGS.steps, warmup_steps=FLAGS.warmup_steps,
        learning_rate=FLAGS.learning_rate, batch_size=FLAGS.batch_size,
        sequence_length=FLAGS.sequence_length, nsp=FLAGS.nsp,
        mask_rate=FLAGS.mask_rate, max_predictions=FLAGS.max_predictions,
        whole_word_masking=FLAGS.whole_word_masking,
        weight_decay=FLAGS.weight_decay, checkpoint_every=FLAGS.checkpoint_every,
        keep_checkpoints=FLAGS.keep_checkpoints, text_fields=FLAGS.text_fields,
        data_dir=FLAGS.data_dir, seed=FLAGS.seed, overwrite=FLAGS.overwrite,
        **scale_settings(),
    )
    print(json.dumps({k: metrics[k] for k in ("resumed_from_step", "final_step")}))
    if metrics["history"]:
        print(json.dumps(metrics["history"][-1]))
    print(f"backbone written to {os.path.join(FLAGS.output_dir, 'backbone')}")


if __name__ == "__main__":
    recipe_main.run(main, required=["corpus", "output_dir"])
