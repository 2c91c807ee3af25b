r"""Further pre-train BERT with masked LM (+ NSP) on task or domain text.

In-task (ITPT), in-domain (IDPT) and cross-domain (CDPT) pre-training differ
only in --corpus (Sun et al. 2019, §4.2). Paper settings: batch 32, length
128, lr 5e-5, 10k warmup steps, 100k steps, MLM + NSP.

  .venv/bin/python recipes/further_pretrain.py --backbone=minilm \
      --corpus=data/trec/train.jsonl --corpus=imdb.jsonl@2 --nsp \
      --steps=1000 --warmup_steps=100 --checkpoint_every=250 --output_dir=runs/cdpt
  .venv/bin/python recipes/finetune.py --backbone=runs/cdpt/backbone ...

Killed and started again with the same --output_dir, it resumes at the last
checkpoint.
"""

import recipe_main  # noqa: E402  (first: starts TensorFlow quietly)

from absl import flags  # noqa: E402

import kerasbert  # noqa: E402
from config_flags import config_from_flags  # noqa: E402
from config_flags import define_config_flags  # noqa: E402
from kerasbert.data.corpus import parse_source  # noqa: E402
from kerasbert.training.pretraining import pretraining_summary  # noqa: E402

define_config_flags(kerasbert.PretrainConfig)
recipe_main.define_recipe_flags()
flags.DEFINE_multi_string("corpus", None, "A corpus source, repeatable: a .txt/.jsonl/.csv/.tsv "
                          "file or tfds:NAME, optionally SPEC@WEIGHT.")
flags.DEFINE_string("output_dir", None, "Checkpoints, logs, metrics.json and backbone/.")
FLAGS = flags.FLAGS


def main(_):
    config = config_from_flags(kerasbert.PretrainConfig)
    metrics = kerasbert.further_pretrain(
        config, [parse_source(s) for s in FLAGS.corpus], FLAGS.output_dir)
    for line in pretraining_summary(metrics, FLAGS.output_dir):
        print(line)


if __name__ == "__main__":
    recipe_main.run(main, required=["corpus", "output_dir"])
