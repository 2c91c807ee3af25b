"""What every recipe shares: run-directory flags and one-line failures.

A recipe imports this module before TensorFlow, calls `define_recipe_flags()`
at import and `run(main, required=…)` under `if __name__ == "__main__":`. A
failure then prints one line, `RECIPE: error: MESSAGE`, and exits with
status 1; `--traceback` (or the environment variable `KERASBERT_TRACEBACK=1`)
shows the Python traceback instead.

Importing it starts TensorFlow quietly: the C++ start-up lines a CPU machine
prints (oneDNN notices, "Could not find cuda drivers", "failed call to
cuInit", CPU feature notes) and TensorFlow's INFO lines about SavedModel and
checkpoint internals are held back; `--verbosity=1` (absl's flag) shows them.
"""

import logging
import os
import re
import sys
import tempfile

# Start-up noise of TensorFlow's C++ runtime on a machine without a GPU.
START_UP_NOISE = re.compile(
    r"absl::InitializeLog|cudart_stub|cuda_(driver|executor|diagnostics|dnn|fft|blas)|"
    r"cuInit|Could not find cuda|cpu_feature_guard|This TensorFlow binary is optimized|"
    r"rebuild TensorFlow with the appropriate compiler flags|oneDNN custom operations|"
    r"TF_ENABLE_ONEDNN_OPTS|Unable to register cu(DNN|FFT|BLAS) factory|"
    r"computation placer already registered|AVX2 FMA|TensorRT"
)


def _verbose_requested(argv):
    for index, argument in enumerate(argv):
        for name in ("--verbosity", "-v"):
            value = None
            if argument.startswith(name + "="):
                value = argument.split("=", 1)[1]
            elif argument == name and index + 1 < len(argv):
                value = argv[index + 1]
            if value is not None:
                try:
                    return int(value) >= 1
                except ValueError:
                    return False
    return False


VERBOSE = _verbose_requested(sys.argv)
if not VERBOSE:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _start_tensorflow_quietly():
    """Import TensorFlow and list its devices with stderr held back, then
    pass on every line that is not known start-up noise (also when the
    import fails). The runtime itself is not started: multi-worker
    strategies must configure collective ops before it is."""
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        sys.stderr.flush()
        os.dup2(held.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            for line in held.read().decode("utf-8", "replace").splitlines():
                if line.strip() and not START_UP_NOISE.search(line):
                    print(line, file=sys.stderr)
    # SavedModel and checkpoint internals log at INFO through this logger.
    logging.getLogger("tensorflow").setLevel(logging.WARNING)


class _WithoutTensorFlowInfo(logging.Filter):
    """Drops INFO lines that TensorFlow's own modules log through absl
    (SavedModel signatures, checkpoint sharding, fingerprints); kerasbert's
    INFO lines, such as the per-layer rate table, pass."""

    def filter(self, record):
        return record.levelno > logging.INFO or f"{os.sep}tensorflow{os.sep}" not in record.pathname


if not VERBOSE:
    _start_tensorflow_quietly()

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging as absl_logging  # noqa: E402

if not VERBOSE:
    absl_logging.get_absl_handler().addFilter(_WithoutTensorFlowInfo())

FLAGS = flags.FLAGS
# TensorFlow errors can quote whole graphs; a one-line message stays short.
MESSAGE_LIMIT = 2000


def define_recipe_flags():
    """Define `--traceback`, which every recipe offers."""
    flags.DEFINE_bool("traceback", False, "Show the Python traceback of a failure.")


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
        except KeyboardInterrupt:
            print(f"{program}: interrupted", file=sys.stderr, flush=True)
            sys.exit(130)
        except BrokenPipeError:
            # The reader of our output went away (`| head`): stop quietly.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except Exception as error:  # noqa: BLE001 — every failure becomes one line
            if FLAGS.traceback or os.environ.get("KERASBERT_TRACEBACK") == "1":
                raise
            print(f"{program}: error: {one_line(error)}", file=sys.stderr, flush=True)
            sys.exit(1)

    app.run(guarded_main)
