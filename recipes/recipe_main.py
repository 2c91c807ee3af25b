"""What every recipe shares: run-directory flags and one-line failures.

A recipe imports this module before TensorFlow, calls `define_recipe_flags()`
at import and `run(main, required=…)` under `if __name__ == "__main__":`. A
failure then prints one line, `RECIPE: error: MESSAGE`, and exits with
status 1; `--traceback` (or the environment variable `KERASBERT_TRACEBACK=1`)
shows the Python traceback instead.

Importing it keeps TensorFlow's known noise off the console for the whole
run: the C++ lines a CPU machine prints at start-up (oneDNN notices, "Could
not find cuda drivers", "failed call to cuInit", CPU feature notes) and
later (oneDNN's "supports DT_INT64 only on platforms with AVX-512"), and
TensorFlow's INFO lines about SavedModel and checkpoint internals. Every
other line, C++ errors included, reaches the console; `--verbosity=1`
(absl's flag) shows everything.

The C++ runtime writes to file descriptor 2 whenever it likes, so the
filter sits there: stderr becomes a pipe read by a small process of its
own (this file run as a script), which copies every line that is not known
noise to the real stderr. Being a process, not a thread, it still passes on
the last lines of a run that aborts (a fatal `F…` log line, a crash dump).
"""

import atexit
import logging
import os
import re
import select
import signal
import subprocess
import sys

# An INFO, WARNING or ERROR line of TensorFlow's C++ logging (a FATAL one is
# never noise): `E0000 00:00:1796445820.436328  17872 util.cc:131] …`
# (absl), or `2024-01-31 12:00:00.000000: E tensorflow/…/x.cc:45] …`.
CPP_LOG_LINE = re.compile(
    rb"^([IWE]\d{4} \d+:\d+:[\d.]+\s+\d+ |\d{4}-\d\d-\d\d \d\d:\d\d:[\d.]+: [IWE] )"
    rb"\S+:\d+\] "
)
# Known noise of the C++ runtime on a machine without a GPU (or AVX-512),
# dropped only from lines of C++ logging.
RUNTIME_NOISE = re.compile(
    rb"absl::InitializeLog|cudart_stub|cuda_(driver|executor|diagnostics|dnn|fft|blas|platform)|"
    rb"cuInit|Could not find cuda|cpu_feature_guard|This TensorFlow binary is optimized|"
    rb"oneDNN custom operations|TF_ENABLE_ONEDNN_OPTS|"
    rb"oneDNN supports DT_INT64 only on platforms with AVX-512|"
    rb"Unable to register cu(DNN|FFT|BLAS) factory|computation placer already registered|"
    rb"TensorRT"
)
# Noise printed without the C++ prefix: the line before absl logging starts,
# the second line of the CPU feature note, and LiteRT's note on its CPU
# kernels (int8 serving).
UNPREFIXED_NOISE = re.compile(
    rb"^WARNING: All log messages before absl::InitializeLog\(\) is called|"
    rb"^To enable the following instructions: .*rebuild TensorFlow with the appropriate|"
    rb"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$"
)
# A collective aborted because a peer worker is gone: C++ error lines whose
# message goes on over unprefixed lines, closed by the status payload. The
# recipe says it in one line of its own (`WorkerLostError`).
PEER_ABORT = re.compile(rb"StartAbort|Aborting RingReduce|Collective ops is aborted|"
                        rb"CollectiveExecutor.*abort", re.IGNORECASE)
PAYLOAD_END = re.compile(rb"\[type\.googleapis\.com/[^\]]*\]\s*$")
# The forms the rest of such a message takes; any other line (the recipe's
# own error line, a traceback) ends it and is shown.
PEER_ABORT_CONTINUATION = re.compile(
    rb"^(/job:\S+\s*$|The tasks have crashed|The error could be from a previous operation|"
    rb"Additional GRPC error)")
# A line begun but not ended for this long (a progress display) is passed on
# as it comes: C++ log lines arrive whole.
PARTIAL_LINE_SECONDS = 0.2


def is_noise(line):
    """Whether `line` (bytes) is known noise of TensorFlow's C++ runtime."""
    return bool(
        (CPP_LOG_LINE.match(line) and RUNTIME_NOISE.search(line)) or UNPREFIXED_NOISE.match(line)
    )


def _copy_without_noise(source, target):
    """Copy `source` to `target` (file descriptors) until end of file,
    dropping noise lines. Reading goes on if `target` closes, so that the
    writer never meets a broken pipe."""
    held = b""  # the start of a line, kept until its end decides
    passing = False  # the current line is being passed on as it comes
    continuing = False  # inside a dropped multi-line peer-abort message

    def write(data):
        nonlocal target
        if target is not None:
            try:
                os.write(target, data)
            except OSError:
                target = None

    while True:
        ready, _, _ = select.select([source], [], [], None if not held else PARTIAL_LINE_SECONDS)
        if not ready:  # a partial line sat too long: pass it on
            write(held)
            held, passing = b"", True
            continue
        data = os.read(source, 65536)
        if not data:
            if held and not is_noise(held):
                write(held)
            return
        for line in re.findall(rb"[^\n]*\n|[^\n]+", data):
            ended = line.endswith(b"\n")
            if passing:
                write(line)
                passing = not ended
                continue
            held += line
            if ended:
                if continuing and PEER_ABORT_CONTINUATION.match(held):
                    # The rest of a dropped peer-abort message.
                    continuing = not PAYLOAD_END.search(held)
                elif CPP_LOG_LINE.match(held) and PEER_ABORT.search(held):
                    continuing = not PAYLOAD_END.search(held)
                elif not is_noise(held):
                    continuing = False
                    write(held)
                held = b""


if __name__ == "__main__":  # the filter's own process (see `_filter_console`)
    # Ctrl-C reaches the whole process group; the filter outlives the recipe
    # to pass on what it prints when interrupted.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _copy_without_noise(sys.stdin.fileno(), sys.stdout.fileno())
    sys.exit(0)


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


def _filter_console():
    """Route file descriptor 2 through the noise filter for the rest of the
    process's life (and its children's, which inherit it)."""
    try:
        console = os.dup(2)
    except OSError:  # no stderr at all: nothing to keep quiet
        return
    read_end, write_end = os.pipe()
    try:
        process = subprocess.Popen(
            [sys.executable, "-S", os.path.abspath(__file__)],
            stdin=read_end, stdout=console, stderr=console,
        )
    except OSError:
        os.close(read_end)
        os.close(write_end)
        os.close(console)
        return
    os.close(read_end)
    sys.stderr.flush()
    os.dup2(write_end, 2)
    os.close(write_end)

    owner = os.getpid()

    def restore():
        # At exit: let the filter drain and finish before the shell's prompt
        # comes back; anything printed after this goes straight through.
        if os.getpid() != owner:  # a forked child exiting normally
            return
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(console, 2)
        os.close(console)
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass  # a child of the recipe still holds the pipe: it ends with it

    atexit.register(restore)


VERBOSE = _verbose_requested(sys.argv)
if not VERBOSE:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _filter_console()
    # SavedModel and checkpoint internals log at INFO through this logger.
    logging.getLogger("tensorflow").setLevel(logging.WARNING)


class _WithoutTensorFlowInfo(logging.Filter):
    """Drops INFO lines that TensorFlow's own modules log through absl
    (SavedModel signatures, checkpoint sharding, fingerprints); kerasbert's
    INFO lines, such as the per-layer rate table, pass."""

    def filter(self, record):
        return record.levelno > logging.INFO or f"{os.sep}tensorflow{os.sep}" not in record.pathname


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


def interrupted_message(program):
    """What an interrupted recipe says: where its progress is and how to go
    on (the last step checkpoint under --output_dir, if any)."""
    output_dir = FLAGS["output_dir"].value if "output_dir" in FLAGS else None
    if not output_dir or not os.path.isdir(output_dir):
        return f"{program}: interrupted"
    from kerasbert.training.checkpoint_directory import last_saved_step

    step = last_saved_step(output_dir)
    if step is None:
        return (f"{program}: interrupted before the first checkpoint; the same command starts "
                f"{output_dir} again from the beginning.")
    return (f"{program}: interrupted; progress up to step {step} is saved in {output_dir}: "
            "run the same command to resume.")


# absl's --help lists the main module's own flags alone, and exits with 1.
HELP_FLAGS = {"--help", "-h", "-?", "--helpshort"}


def print_help():
    """The recipe's docstring and its flags, grouped: its own, then its
    config's by settings group, and a pointer to --helpfull."""
    from config_flags import grouped_help

    # The recipe's own flags, and those config_flags adds beside the config's.
    own = [flag.name for module in (sys.argv[0], "config_flags")
           for flag in FLAGS.get_key_flags_for_module(module)]
    print(grouped_help(sys.modules["__main__"].__doc__, own + ["traceback"]))


def run(main, required=()):
    """`absl.app.run(main)` with `required` flags and one-line failures."""
    flags.mark_flags_as_required(list(required))
    program = os.path.basename(sys.argv[0])
    if any(argument.split("=")[0] in HELP_FLAGS
           and argument.split("=", 1)[-1].lower() not in ("false", "0")
           for argument in sys.argv[1:]):
        print_help()
        sys.exit(0)

    def guarded_main(argv):
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments (not flags): {argv[1:]}")
        try:
            return main(argv)
        except KeyboardInterrupt:
            print(interrupted_message(program), file=sys.stderr, flush=True)
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
