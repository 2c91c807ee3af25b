r"""Training and inference speed of kerasbert, optionally against HF + PyTorch.

Throughput on fixed-length synthetic batches (examples/s, tokens/s, peak host
memory, and on a GPU the model FLOPs utilisation against --peak_tflops):

  .venv/bin/python tools/benchmark.py --backbone=minilm --sequence_length=128 --batch_size=24

End to end: the whole TREC-6 fine-tune (read, tokenize, train, evaluate),
3 epochs, batch 24, lr 5e-5, warmup 0.1 + linear decay, dynamic padding, no
validation carve — the HuggingFace recipe's settings:

  .venv/bin/python tools/benchmark.py --mode=end_to_end --compare

Profile: where a training step's time goes (milliseconds per step of the
forward pass, the backward pass, and the optimizer update), on the same
synthetic batch as throughput mode:

  .venv/bin/python tools/benchmark.py --mode=profile --sequence_length=18 --compare

Serving: the exported raw-text SavedModel (tokenizer in the graph) and the
int8 classifier (`kerasbert.export_int8`, LiteRT) on the 500 TREC-6 test
questions and on 1,000 IMDb reviews at length 512 — texts/s at batch 32 and
latency p50/p99 at batch 1, peak memory, each in its own process — against
HF's fast tokenizer + model under torch.no_grad with dynamic padding, in
fp32 and with PyTorch's dynamic int8 quantization of the Linear layers:

  .venv/bin/python tools/benchmark.py --mode=inference --compare

--compare runs tools/hf_baseline.py with the same settings in a child
process under --hf_python (an interpreter with torch and transformers; the
default is .venv-hf/bin/python) and prints the ratio of the two.

The limit: every mode measures the machine's GEMM ceiling (tools/ceiling.py:
fp32 TensorFlow matmul, and LiteRT's int8 fully-connected op when int8 is
timed, on a BERT layer's shapes) and reports, under "ceiling", the model
FLOPs each path achieves per second (counted from the real word-piece
counts of the texts it runs, padding not counted) and their fraction of the
ceiling.
"""

import functools
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "recipes"))  # the recipes' flag definitions

from config_flags import define_config_flags  # noqa: E402
from kerasbert.training.configs import RuntimeSettings  # noqa: E402
import ceiling  # noqa: E402  (tools/, this script's directory)
from host_memory import peak_host_memory_mb  # noqa: E402
from timing import median_milliseconds  # noqa: E402
from timing import concurrent_speed  # noqa: E402
from timing import serving_speed  # noqa: E402

flags.DEFINE_enum("mode", "throughput", ["throughput", "end_to_end", "profile", "inference"],
                  "What to time.")
flags.DEFINE_string("backbone", "minilm", "Backbone spec (a HF directory for --compare).")
flags.DEFINE_integer("sequence_length", 128, "Tokens per example (throughput mode).")
flags.DEFINE_integer("batch_size", 24, "Global batch size.")
flags.DEFINE_integer("steps", 20, "Timed steps (throughput mode), after 3 untimed.")
flags.DEFINE_float("peak_tflops", None, "Accelerator peak for MFU (e.g. 989 for H100/H200 dense bf16).")
flags.DEFINE_string("data_dir", os.path.join(ROOT, "data", "trec"), "End-to-end data (train/test JSONL).")
flags.DEFINE_integer("epochs", 3, "End-to-end epochs.")
flags.DEFINE_float("learning_rate", 5e-5, "End-to-end peak learning rate.")
flags.DEFINE_bool("compare", False, "Also run the HuggingFace + PyTorch baseline.")
flags.DEFINE_string("hf_python", os.path.join(ROOT, ".venv-hf", "bin", "python"), "Interpreter for the baseline.")
flags.DEFINE_integer("seed", 0, "Seed.")
flags.DEFINE_bool("keras_adam", False,
                  "Profile/throughput: Keras' Adam instead of kerasbert's FusedAdam (the default).")
flags.DEFINE_bool("sparse_embedding_updates", False,
                  "Update only the word-embedding rows a batch reads (see recipes/finetune.py).")
flags.DEFINE_string(
    "imdb", os.path.join(os.path.dirname(ROOT), "shared", "data", "imdb", "train.jsonl"),
    "Inference: IMDb reviews (JSON Lines with a text field); the first --imdb_texts are used.")
flags.DEFINE_integer("imdb_texts", 1000, "Inference: IMDb reviews to classify.")
flags.DEFINE_integer("latency_texts", 100, "Inference: texts timed one by one for latency.")
flags.DEFINE_integer("inference_batch_size", 32, "Inference: batch size for texts/s.")
flags.DEFINE_integer("tokens_per_chunk", None,
                     "Inference: the SavedModel's chunk size (kerasbert.export_serving); unset: "
                     "its default, 0: whole batches.")
flags.DEFINE_list("client_threads", ["1", "4"],
                  "Inference: threads calling one shared classifier at once (TREC texts/s each; "
                  "a server's request threads).")
flags.DEFINE_enum("serving", "both", ["both", "saved_model", "int8"],
                  "Inference: which of kerasbert's artifacts to time (each in its own process).")
flags.DEFINE_bool(
    "static_shapes", False,
    "Profile: trace the steps for the batch's exact shape instead of any batch size and length "
    "(kerasbert's training loop and serving signature trace for unknown sizes).")
define_config_flags(RuntimeSettings)
FLAGS = flags.FLAGS


def against_ceiling(flops, seconds, ceiling_gflops):
    """Achieved model GFLOP/s and its fraction of a GEMM ceiling."""
    achieved = flops / seconds / 1e9
    return {"model_gflops_per_second": achieved,
            "fraction_of_ceiling": achieved / ceiling_gflops}


def make_optimizer(model):
    import keras

    import kerasbert

    if FLAGS.keras_adam:
        return keras.optimizers.Adam(2e-5, epsilon=1e-6)
    return kerasbert.optimizers.build_optimizer(
        model, 2e-5, total_steps=1000, sparse_embedding_updates=FLAGS.sparse_embedding_updates)


def throughput():
    import numpy as np
    import tensorflow as tf

    import kerasbert
    from kerasbert.training.distribute import make_strategy

    strategy = make_strategy(FLAGS.strategy, FLAGS.tpu)
    with strategy.scope():
        backbone, _ = kerasbert.load_backbone(FLAGS.backbone, dtype=FLAGS.mixed_precision)
        model = kerasbert.LayerSelectedClassifier(backbone, 2)
        model.compile(optimizer=make_optimizer(model), jit_compile=FLAGS.jit_compile)
    rng = np.random.default_rng(FLAGS.seed)
    shape = (FLAGS.batch_size, FLAGS.sequence_length)
    features = {
        # Ordinary word pieces: skip the special tokens at the start of the vocabulary.
        "token_ids": rng.integers(
            min(1000, backbone.vocabulary_size // 2), backbone.vocabulary_size, shape
        ).astype("int32"),
        "segment_ids": np.zeros(shape, "int32"),
        "padding_mask": np.ones(shape, "int32"),
    }
    labels = rng.integers(0, 2, FLAGS.batch_size)

    # Median step times (tools/timing.py), as the HuggingFace baseline measures.
    train_seconds = median_milliseconds(lambda: model.train_on_batch(features, labels),
                                        FLAGS.steps) / 1000
    infer_seconds = median_milliseconds(lambda: model.predict_on_batch(features),
                                        FLAGS.steps) / 1000
    examples = FLAGS.batch_size
    result = {
        "train_examples_per_second": examples / train_seconds,
        "inference_examples_per_second": examples / infer_seconds,
        "train_tokens_per_second": examples * FLAGS.sequence_length / train_seconds,
        "inference_tokens_per_second": examples * FLAGS.sequence_length / infer_seconds,
        "peak_host_memory_mb": peak_host_memory_mb(),
        "devices": [d.name for d in tf.config.list_logical_devices()],
    }
    lengths = [FLAGS.sequence_length] * examples
    if FLAGS.peak_tflops:
        flops = ceiling.model_flops(backbone, lengths, training=True)
        result["train_mfu"] = flops / train_seconds / (FLAGS.peak_tflops * 1e12)
    elif not tf.config.list_physical_devices("GPU"):
        fp32 = ceiling.fp32_gemm_gflops(backbone.hidden_dim)
        result["ceiling"] = {
            "fp32_gemm_gflops": fp32,
            "training": against_ceiling(
                ceiling.model_flops(backbone, lengths, training=True), train_seconds, fp32),
            "inference": against_ceiling(
                ceiling.model_flops(backbone, lengths), infer_seconds, fp32),
        }
    return result


def profile():
    import keras
    import numpy as np
    import tensorflow as tf

    import kerasbert

    backbone, _ = kerasbert.load_backbone(FLAGS.backbone, dtype=FLAGS.mixed_precision)
    model = kerasbert.LayerSelectedClassifier(backbone, 2)
    optimizer = make_optimizer(model)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    rng = np.random.default_rng(FLAGS.seed)
    shape = (FLAGS.batch_size, FLAGS.sequence_length)
    features = {
        "token_ids": tf.constant(rng.integers(
            min(1000, backbone.vocabulary_size // 2), backbone.vocabulary_size, shape), tf.int32),
        "segment_ids": tf.zeros(shape, tf.int32),
        "padding_mask": tf.ones(shape, tf.int32),
    }
    labels = tf.constant(rng.integers(0, 2, FLAGS.batch_size))
    variables = model.trainable_variables
    optimizer.build(variables)
    jit = FLAGS.jit_compile
    # Traced like kerasbert's training loop: for any batch size and length
    # (--static_shapes: for this batch's shape only).
    dimension = FLAGS.batch_size if FLAGS.static_shapes else None
    length = FLAGS.sequence_length if FLAGS.static_shapes else None
    signature = [{name: tf.TensorSpec((dimension, length), tf.int32) for name in features},
                 tf.TensorSpec((dimension,), labels.dtype)]

    def function(step):
        return tf.function(step, jit_compile=jit, input_signature=signature)

    @function
    def forward(features, labels):
        return loss_fn(labels, model(features, training=True))

    @function
    def forward_backward(features, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(features, training=True))
        return tape.gradient(loss, variables)

    gradients = forward_backward(features, labels)

    @tf.function(jit_compile=jit)
    def update():
        optimizer.apply(gradients, variables)

    @function
    def train_step(features, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(features, training=True))
        optimizer.apply(tape.gradient(loss, variables), variables)

    def wait(outputs):
        for output in tf.nest.flatten(outputs):
            (output.values if isinstance(output, tf.IndexedSlices) else output).numpy()

    def milliseconds(step):
        return median_milliseconds(lambda: wait(step()), FLAGS.steps)

    # A step's ops have all run when its function returns; reading the
    # (scalar) step counter, not a variable, keeps a copy out of the timing.
    def train_step_done():
        train_step(features, labels)
        return optimizer.iterations

    def update_done():
        update()
        return optimizer.iterations

    forward_ms = milliseconds(lambda: forward(features, labels))
    forward_backward_ms = milliseconds(lambda: forward_backward(features, labels))
    train_step_ms = milliseconds(train_step_done)
    result = {
        "forward_ms": forward_ms,
        "backward_ms": forward_backward_ms - forward_ms,
        "optimizer_update_ms": milliseconds(update_done),
        "train_step_ms": train_step_ms,
        "trainable_parameters": int(sum(np.prod(v.shape) for v in variables)),
    }
    if not tf.config.list_physical_devices("GPU"):
        fp32 = ceiling.fp32_gemm_gflops(backbone.hidden_dim)
        flops = ceiling.model_flops(backbone, [FLAGS.sequence_length] * FLAGS.batch_size,
                                    training=True)
        result["ceiling"] = {"fp32_gemm_gflops": fp32,
                             "train_step": against_ceiling(flops, train_step_ms / 1000, fp32)}
    return result


def inference_texts():
    """{"trec": the 500 TREC-6 test questions, "imdb": the first IMDb reviews}."""
    sets = {"trec": os.path.join(FLAGS.data_dir, "test.jsonl"), "imdb": FLAGS.imdb}
    texts = {}
    for name, path in sets.items():
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--mode=inference reads {name} texts from {path}: no such file")
        with open(path, encoding="utf-8") as file:
            texts[name] = [json.loads(line)["text"] for line in file if line.strip()]
    texts["imdb"] = texts["imdb"][: FLAGS.imdb_texts]
    return texts


def inference():
    """Time kerasbert's artifacts, each in a child process of its own (so
    that each one's peak memory is its own), and both against the ceiling."""
    if FLAGS.serving != "both":
        return serve_artifact(FLAGS.serving)
    result = {}
    for artifact in ("saved_model", "int8"):
        command = [sys.executable, os.path.abspath(__file__), f"--serving={artifact}",
                   *[argument for argument in sys.argv[1:]
                     if not argument.startswith(("--serving", "--compare"))]]
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"Timing {artifact} failed:\n{completed.stderr[-3000:]}")
        result[artifact] = json.loads(completed.stdout[completed.stdout.index("{"):])["kerasbert"]
    return result


def inference_label_names():
    """The classes of --data_dir's training file (the served head's size)."""
    with open(os.path.join(FLAGS.data_dir, "train.jsonl"), encoding="utf-8") as file:
        return sorted({str(json.loads(line)["label"]) for line in file if line.strip()})


def serve_artifact(artifact):
    """texts/s, latency and peak memory of one artifact on TREC and IMDb."""
    import tensorflow as tf

    import kerasbert

    texts = inference_texts()
    label_names = inference_label_names()
    model = kerasbert.LayerSelectedClassifier.from_preset(
        FLAGS.backbone, label_names=label_names, sequence_length=512,
        dtype=FLAGS.mixed_precision,
    )
    result = {}
    with tempfile.TemporaryDirectory() as path:
        if artifact == "int8":
            kerasbert.export_int8(model, model.preprocessor, path, label_names)
            classifier = kerasbert.Int8Classifier(path)

            def classify(batch):
                return classifier(batch)[0]
        else:
            chunk = {None: "auto", 0: None}.get(FLAGS.tokens_per_chunk, FLAGS.tokens_per_chunk)
            kerasbert.export_serving(model, model.preprocessor, path, label_names, chunk)
            serving = tf.saved_model.load(path)

            def classify(batch):
                return serving.serve(tf.constant(batch))["probabilities"].numpy()

        for name, chosen in texts.items():
            result[name] = serving_speed(
                classify, chosen, FLAGS.inference_batch_size, FLAGS.latency_texts)
        # One classifier shared by request threads (safe: see prediction.Classifier).
        result["trec_texts_per_second_by_client_threads"] = {
            threads: concurrent_speed(classify, texts["trec"], FLAGS.inference_batch_size,
                                      int(threads))
            for threads in FLAGS.client_threads}
    result["peak_host_memory_mb"] = peak_host_memory_mb()
    return result


@functools.cache
def float32_backbone():
    """`(backbone, tokenizer)` of --backbone in float32, loaded once: what
    the FLOP counts read."""
    import kerasbert

    return kerasbert.load_backbone(FLAGS.backbone)


def word_piece_counts(texts):
    """Word pieces of each text as a classifier reads it: [CLS] text [SEP],
    cut to 512 (the head+tail or head cut keeps 512)."""
    _, tokenizer = float32_backbone()
    pieces = tokenizer(texts)
    return [min(512, len(row) + 2) for row in pieces]


def serving_ceiling(results, texts):
    """The GEMM ceilings, and each timed path's model GFLOP/s against the
    ceiling of its precision, from the word pieces of the texts it ran."""
    backbone, _ = float32_backbone()
    head = backbone.hidden_dim * len(inference_label_names())
    flops = {name: ceiling.model_flops(backbone, word_piece_counts(chosen), head_parameters=head)
             for name, chosen in texts.items()}
    limits = {"fp32": ceiling.fp32_gemm_gflops(backbone.hidden_dim)}
    if any("int8" in path for path in results):
        limits["int8"] = ceiling.int8_gemm_gflops(backbone.hidden_dim)
    report = {"fp32_gemm_gflops": limits["fp32"]}
    if "int8" in limits:
        report["int8_gemm_gflops"] = limits["int8"]
    for path, result in results.items():
        limit = limits["int8" if "int8" in path else "fp32"]
        report[path] = {
            name: {"model_gflop": flops[name] / 1e9,
                   **against_ceiling(flops[name],
                                     len(texts[name]) / result[name]["texts_per_second"], limit)}
            for name in texts
        }
    return report


def end_to_end():
    import kerasbert

    started = time.perf_counter()
    train = kerasbert.read_labeled_texts(FLAGS.data_dir, "train")
    test = kerasbert.read_labeled_texts(FLAGS.data_dir, "test", label_names=train.label_names)
    with tempfile.TemporaryDirectory() as output_dir:
        metrics = kerasbert.fine_tune(
            FLAGS.backbone, train, output_dir, test=test, learning_rate=FLAGS.learning_rate,
            batch_size=FLAGS.batch_size, epochs=FLAGS.epochs, seed=FLAGS.seed,
            mixed_precision=FLAGS.mixed_precision, jit_compile=FLAGS.jit_compile,
            sparse_embedding_updates=FLAGS.sparse_embedding_updates, export=False, verbose=0,
        )
    result = {
        "wall_seconds": time.perf_counter() - started,
        "train_seconds": metrics["train_seconds"],
        "train_examples_per_second": FLAGS.epochs * len(train) / metrics["train_seconds"],
        "test_error": metrics["test"]["error"],
        "peak_host_memory_mb": peak_host_memory_mb(),
    }
    backbone, _ = float32_backbone()
    fp32 = ceiling.fp32_gemm_gflops(backbone.hidden_dim)
    train_flops = FLAGS.epochs * ceiling.model_flops(
        backbone, word_piece_counts(train.texts), training=True)
    # The test stage's seconds cover two passes: evaluate, then the predicted classes.
    test_flops = 2 * ceiling.model_flops(backbone, word_piece_counts(test.texts))
    result["ceiling"] = {
        "fp32_gemm_gflops": fp32,
        "training": against_ceiling(train_flops, metrics["train_seconds"], fp32),
        "evaluation": against_ceiling(test_flops, metrics["test"]["seconds"], fp32),
    }
    return result


def huggingface(extra=()):
    from kerasbert import backbones

    model_dir = backbones.minilm_directory() if FLAGS.backbone == "minilm" else FLAGS.backbone
    command = [
        FLAGS.hf_python, os.path.join(ROOT, "tools", "hf_baseline.py"), f"--model_dir={model_dir}",
        f"--mode={FLAGS.mode}", f"--data_dir={FLAGS.data_dir}", f"--epochs={FLAGS.epochs}",
        f"--batch_size={FLAGS.batch_size}", f"--learning_rate={FLAGS.learning_rate}",
        f"--sequence_length={FLAGS.sequence_length}", f"--steps={FLAGS.steps}",
        f"--seed={FLAGS.seed}",
    ]
    if FLAGS.mode == "inference":
        command += [f"--imdb={FLAGS.imdb}", f"--imdb_texts={FLAGS.imdb_texts}",
                    f"--latency_texts={FLAGS.latency_texts}",
                    f"--inference_batch_size={FLAGS.inference_batch_size}"]
    command += list(extra)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"The HuggingFace baseline failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(_):
    if FLAGS.sparse_embedding_updates and FLAGS.keras_adam:
        raise app.UsageError("--sparse_embedding_updates needs kerasbert's FusedAdam; "
                             "drop --keras_adam.")
    for name in ("imdb_texts", "latency_texts", "inference_batch_size", "steps"):
        if FLAGS[name].value < 1:
            raise app.UsageError(f"--{name} must be positive.")
    ours = {"throughput": throughput, "end_to_end": end_to_end, "profile": profile,
            "inference": inference}[FLAGS.mode]()
    if FLAGS.mode == "inference" and (FLAGS.serving == "both" or FLAGS.compare):
        inference_report(ours if FLAGS.serving == "both" else {FLAGS.serving: ours})
        return
    print(json.dumps({"kerasbert": ours}, indent=2))
    if FLAGS.compare:
        theirs = huggingface()
        print(json.dumps({"huggingface_pytorch": theirs}, indent=2))
        key = {"end_to_end": "wall_seconds", "throughput": "train_examples_per_second",
               "profile": "train_step_ms"}[FLAGS.mode]
        print(f"kerasbert / huggingface {key}: {ours[key] / theirs[key]:.3f}")


def inference_report(ours):
    """Print kerasbert's and (--compare) HF's serving figures, the ratios,
    and every path against the GEMM ceiling of its precision."""
    paths = {f"kerasbert_{name}": result for name, result in ours.items()}
    if FLAGS.compare:
        paths["huggingface_fp32"] = huggingface()
        paths["huggingface_bf16"] = huggingface(["--bf16"])
        paths["huggingface_int8"] = huggingface(["--quantize_dynamic"])
    paths_ceiling = serving_ceiling(paths, inference_texts())
    print(json.dumps({**paths, "ceiling": paths_ceiling}, indent=2))
    if not FLAGS.compare:
        return
    for ours_name in [name for name in paths if name.startswith("kerasbert_")]:
        for theirs_name in ("huggingface_fp32", "huggingface_bf16", "huggingface_int8"):
            for name in ("trec", "imdb"):
                ratios = ", ".join(
                    f"{key} {paths[ours_name][name][key] / paths[theirs_name][name][key]:.3f}"
                    for key in ("texts_per_second", "latency_p50_ms", "latency_p99_ms"))
                print(f"{name} {ours_name} / {theirs_name}: {ratios}")


if __name__ == "__main__":
    app.run(main)
