r"""Fine-tune BERT for text classification (Sun et al. 2019, §5).

Defaults are the paper's: batch 24, dropout 0.1, Adam at 2e-5 with 10 %
warmup then linear decay, 4 epochs, length 512, best epoch on validation.
Every flag but --output_dir, --from_run and --long_text is a field of
`kerasbert.FineTuneConfig`.

Example (the README demo):
  .venv/bin/python recipes/finetune.py --flagfile=recipes/flags/trec_minilm.flags \
      --output_dir=runs/trec_minilm

Run a finished run again, with its recorded settings and data paths (flags
given on the command line replace recorded values):
  .venv/bin/python recipes/finetune.py --from_run=runs/trec_minilm --output_dir=runs/again
"""

import os

import recipe_main  # noqa: E402  (first: starts TensorFlow quietly)

from absl import flags  # noqa: E402

import kerasbert  # noqa: E402
from config_flags import check_flags_take_effect  # noqa: E402
from config_flags import config_from_flags  # noqa: E402
from config_flags import define_config_flags  # noqa: E402
from config_flags import define_long_text_flag  # noqa: E402
from config_flags import long_text_settings  # noqa: E402
from config_flags import recorded_settings  # noqa: E402
from kerasbert.training.fine_tuning import fine_tune_summary  # noqa: E402

define_config_flags(kerasbert.FineTuneConfig)
define_long_text_flag()
recipe_main.define_recipe_flags()
flags.DEFINE_string("output_dir", None, "Where metrics, checkpoints and the SavedModel go.")
flags.DEFINE_string("from_run", None, "A finished run directory whose recorded settings and "
                    "data paths this run repeats (flags given here replace them).")
FLAGS = flags.FLAGS


def main(_):
    base = recorded_settings(FLAGS.from_run) if FLAGS.from_run else None
    config = config_from_flags(kerasbert.FineTuneConfig, base)
    config = config.replace(**long_text_settings())
    check_flags_take_effect(config)
    # Local paths recorded absolute: --from_run works from any directory.
    config = config.replace(**{
        name: os.path.abspath(getattr(config, name))
        for name in ("train", "validation", "test", "backbone", "data_dir")
        if getattr(config, name) and os.path.exists(getattr(config, name))})
    if config.train is None:
        raise ValueError("--train is required (or --from_run).")
    metrics = kerasbert.fine_tune(config, output_dir=FLAGS.output_dir)
    for line in fine_tune_summary(metrics, FLAGS.output_dir):
        print(line)


if __name__ == "__main__":
    recipe_main.run(main, required=["output_dir"])
