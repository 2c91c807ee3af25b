r"""Convert a Google TF1 BERT checkpoint into a preset kerasbert loads.

  python tools/convert_checkpoint.py --checkpoint_dir=uncased_L-12_H-768_A-12 \
      --output_dir=checkpoints/bert_base_uncased
  python recipes/finetune.py --backbone=checkpoints/bert_base_uncased ...
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

flags.DEFINE_string("checkpoint_dir", None, "bert_model.ckpt.*, bert_config.json, vocab.txt.")
flags.DEFINE_string("output_dir", None, "Preset directory to write.")
flags.DEFINE_bool("lowercase", True, "Uncased vocabulary (uncased_* releases).")
FLAGS = flags.FLAGS


def main(_):
    from kerasbert.tf1_checkpoint import convert_tf1_checkpoint

    convert_tf1_checkpoint(FLAGS.checkpoint_dir, FLAGS.output_dir, lowercase=FLAGS.lowercase)
    print(f"wrote {FLAGS.output_dir}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["checkpoint_dir", "output_dir"])
    app.run(main)
