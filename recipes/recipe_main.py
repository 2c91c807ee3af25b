"""What every recipe shares: run-directory flags and one-line failures.

A recipe calls `define_run_flags()` at import and `run(main, required=…)`
under `if __name__ == "__main__":`. A failure then prints one line,
`RECIPE: error: MESSAGE`, and exits with status 1; `--traceback` (or the
environment variable `KERASBERT_TRACEBACK=1`) shows the Python traceback
instead.
"""

import os
import sys

from absl import app
from absl import flags

FLAGS = flags.FLAGS
# TensorFlow errors can quote whole graphs; a one-line message stays short.
MESSAGE_LIMIT = 2000


def define_run_flags(checkpoint_every_steps=True):
    """Define `--overwrite`, `--traceback` and `--checkpoint_every_steps`."""
    flags.DEFINE_bool(
        "overwrite", False,
        "Clear --output_dir first when it holds a run with other settings (without it such "
        "a run is refused; the same settings resume or finish it).",
    )
    flags.DEFINE_bool("traceback", False, "Show the Python traceback of a failure.")
    if checkpoint_every_steps:
        flags.DEFINE_integer(
            "checkpoint_every_steps", 200,
            "Steps between mid-epoch checkpoints (also at every epoch end): the most work a "
            "kill can cost. A resumed run ends as if never stopped.",
        )


def parse_layers(value):
    """--layers: first4, last4, all, an int or comma-separated ints."""
    if value in ("first4", "last4", "all"):
        return value
    try:
        indices = [int(part) for part in value.split(",")]
    except ValueError:
        raise ValueError(
            "--layers must be an int, comma-separated ints, first4, last4 or all. "
            f"Received: {value!r}"
        ) from None
    return indices[0] if len(indices) == 1 else indices


def one_line(error):
    """`TypeName: message` of an exception, on one line."""
    message = " ".join(str(error).split()) or repr(error)
    if len(message) > MESSAGE_LIMIT:
        message = message[:MESSAGE_LIMIT] + " …"
    return f"{type(error).__name__}: {message}"


def run(main, required=()):
    """`absl.app.run(main)` with `required` flags and one-line failures."""
    flags.mark_flags_as_required(list(required))
    program = os.path.basename(sys.argv[0])

    def guarded_main(argv):
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments (not flags): {argv[1:]}")
        try:
            return main(argv)
        except Exception as error:  # noqa: BLE001 — every failure becomes one line
            if FLAGS.traceback or os.environ.get("KERASBERT_TRACEBACK") == "1":
                raise
            print(f"{program}: error: {one_line(error)}", file=sys.stderr, flush=True)
            sys.exit(1)

    app.run(guarded_main)
