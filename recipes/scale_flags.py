"""The absl flags every recipe shares for scale: strategy, precision, XLA."""

from absl import flags

from kerasbert.training.distribute import STRATEGIES
from kerasbert.training.distribute import make_strategy
from kerasbert.training.precision import PRECISIONS


def define_scale_flags():
    """Define `--strategy`, `--tpu`, `--mixed_precision`, `--jit_compile` and
    `--per_worker_input`."""
    flags.DEFINE_enum("strategy", "default", list(STRATEGIES),
                      "tf.distribute strategy; multi_worker reads TF_CONFIG.")
    flags.DEFINE_string("tpu", None, "TPU name or grpc:// address for --strategy=tpu.")
    flags.DEFINE_enum("mixed_precision", None, [p for p in PRECISIONS if p],
                      "16-bit compute with float32 weights (float16 with loss scaling); "
                      "classifier heads, softmax and losses stay float32. On a CPU, "
                      "mixed_bfloat16 pays only with AVX512-BF16 or AMX (oneDNN bf16 "
                      "kernels); on an AVX2-only CPU it ran 6.6x slower per step than float32.")
    flags.DEFINE_bool("per_worker_input", False,
                      "Under --strategy=multi_worker: each worker reads its own share of the "
                      "raw texts before tokenizing (large corpora), instead of one pipeline "
                      "split by the strategy (which reproduces single-process batches).")
    flags.DEFINE_bool("jit_compile", False,
                      "Compile train/eval steps with XLA (fine-tuning batches are then padded "
                      "to bucket boundaries).")


def scale_settings(values=flags.FLAGS):
    """`strategy`, `mixed_precision`, `jit_compile` and `per_worker_input`
    arguments from the flags."""
    return {
        "strategy": make_strategy(values.strategy, values.tpu),
        "mixed_precision": values.mixed_precision,
        "jit_compile": values.jit_compile,
        "per_worker_input": values.per_worker_input,
    }
