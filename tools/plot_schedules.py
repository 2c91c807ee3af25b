r"""Plot kerasbert's learning-rate schedules to a PNG.

  .venv/bin/python tools/plot_schedules.py --total_steps=1000 --output=schedules.png

Needs matplotlib (`pip install -e ".[plot]"`).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

flags.DEFINE_float("peak_learning_rate", 2e-5, "Peak learning rate.")
flags.DEFINE_integer("total_steps", 1000, "Schedule length.")
flags.DEFINE_float("warmup_proportion", 0.1, "Warmup proportion / cut fraction.")
flags.DEFINE_float("ratio", 32, "SlantedTriangular's peak-to-floor ratio.")
flags.DEFINE_string("output", "schedules.png", "PNG path.")
FLAGS = flags.FLAGS


def main(_):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    import kerasbert

    steps = np.arange(FLAGS.total_steps + 1)
    schedules = {
        "WarmupLinearDecay": kerasbert.schedules.WarmupLinearDecay(
            FLAGS.peak_learning_rate, FLAGS.total_steps, FLAGS.warmup_proportion
        ),
        f"SlantedTriangular (ratio {FLAGS.ratio:g})": kerasbert.schedules.SlantedTriangular(
            FLAGS.peak_learning_rate, FLAGS.total_steps, FLAGS.warmup_proportion, FLAGS.ratio
        ),
    }
    figure, axes = plt.subplots(figsize=(7, 4))
    for label, schedule in schedules.items():
        axes.plot(steps, np.asarray(schedule(steps)), label=label)
    axes.set_xlabel("step")
    axes.set_ylabel("learning rate")
    axes.set_title(f"warmup / cut fraction {FLAGS.warmup_proportion:g}")
    axes.legend()
    figure.tight_layout()
    figure.savefig(FLAGS.output, dpi=120)
    print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
