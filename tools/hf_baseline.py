r"""HuggingFace transformers + PyTorch baseline for tools/benchmark.py.

Runs in its own interpreter (one that has torch and transformers):

  python tools/hf_baseline.py --model_dir=DIR --data_dir=data/trec --mode=end_to_end
  python tools/hf_baseline.py --model_dir=DIR --mode=throughput --sequence_length=128

end_to_end: the plain recipe the issue describes: tokenize, fine-tune
AutoModelForSequenceClassification with AdamW, linear warmup (10 %) then decay,
dynamic padding (DataCollatorWithPadding), batch 24, then test accuracy.
throughput: training and inference examples/second on fixed-length batches.
profile: forward / backward / optimizer-update milliseconds per training step.
inference: texts/s at batch 32 and batch-1 latency on the TREC test questions
and IMDb reviews (fast tokenizer, truncation to 512, dynamic padding,
torch.no_grad; --quantize_dynamic: int8 Linear layers; --bf16: bf16 autocast), as
tools/benchmark.py --mode=inference times kerasbert's artifacts.
Prints one JSON line.
"""

import argparse
import json
import os
import time

from host_memory import peak_host_memory_mb  # tools/, this script's directory
from timing import median_milliseconds
from timing import serving_speed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--mode", choices=["end_to_end", "throughput", "profile", "inference"],
                        default="end_to_end")
    parser.add_argument("--data_dir", default="data/trec")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=24)
    parser.add_argument("--learning_rate", type=float, default=5e-5)
    parser.add_argument("--sequence_length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--imdb", default=None)
    parser.add_argument("--imdb_texts", type=int, default=1000)
    parser.add_argument("--latency_texts", type=int, default=100)
    parser.add_argument("--inference_batch_size", type=int, default=32)
    parser.add_argument("--quantize_dynamic", action="store_true",
                        help="inference: PyTorch's dynamic int8 quantization of the Linear "
                             "layers (torch.ao.quantization.quantize_dynamic).")
    parser.add_argument("--bf16", action="store_true",
                        help="inference: run the model under torch.autocast('cpu', bfloat16).")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForSequenceClassification
    from transformers import AutoTokenizer
    from transformers import DataCollatorWithPadding
    from transformers import get_linear_schedule_with_warmup

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)

    if args.mode == "inference":
        print(json.dumps(serving(torch, tokenizer, args)))
        return

    if args.mode in ("profile", "throughput"):
        model = AutoModelForSequenceClassification.from_pretrained(args.model_dir, num_labels=2)
        ids = torch.randint(1000, 20000, (args.batch_size, args.sequence_length))
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
                 "labels": torch.zeros(args.batch_size, dtype=torch.long)}
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate)
        model.train()
        timing = step_profile if args.mode == "profile" else throughput
        print(json.dumps(timing(torch, model, batch, optimizer, args.steps)))
        return

    def read(split):
        with open(os.path.join(args.data_dir, f"{split}.jsonl"), encoding="utf-8") as file:
            rows = [json.loads(line) for line in file if line.strip()]
        return [r["text"] for r in rows], [r["label"] for r in rows]

    train_texts, train_labels = read("train")
    test_texts, test_labels = read("test")
    names = sorted(set(train_labels))
    index = {name: i for i, name in enumerate(names)}
    model = AutoModelForSequenceClassification.from_pretrained(
        args.model_dir, num_labels=len(names)
    )
    encode = lambda texts: tokenizer(texts, truncation=True, max_length=512)  # noqa: E731
    train_encoded, test_encoded = encode(train_texts), encode(test_texts)
    collator = DataCollatorWithPadding(tokenizer)

    def batches(encoded, labels, shuffle, generator=None):
        order = (torch.randperm(len(labels), generator=generator) if shuffle
                 else torch.arange(len(labels)))
        for start in range(0, len(labels), args.batch_size):
            chosen = order[start:start + args.batch_size].tolist()
            features = collator([{"input_ids": encoded["input_ids"][i],
                                  "attention_mask": encoded["attention_mask"][i]} for i in chosen])
            features["labels"] = torch.tensor([index[labels[i]] for i in chosen])
            yield features

    steps_per_epoch = -(-len(train_labels) // args.batch_size)
    total_steps = args.epochs * steps_per_epoch
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(0.1 * total_steps), total_steps)
    generator = torch.Generator().manual_seed(args.seed)
    train_started = time.perf_counter()
    model.train()
    for _ in range(args.epochs):
        for features in batches(train_encoded, train_labels, True, generator):
            optimizer.zero_grad()
            model(**features).loss.backward()
            optimizer.step()
            scheduler.step()
    train_seconds = time.perf_counter() - train_started
    model.eval()
    correct = 0
    with torch.no_grad():
        for features in batches(test_encoded, test_labels, False):
            labels = features.pop("labels")
            correct += int((model(**features).logits.argmax(-1) == labels).sum())
    print(json.dumps({
        "wall_seconds": time.perf_counter() - started,
        "train_seconds": train_seconds,
        "train_examples_per_second": args.epochs * len(train_labels) / train_seconds,
        "test_error": 1 - correct / len(test_labels),
        "peak_host_memory_mb": peak_host_memory_mb(),
    }))


def serving(torch, tokenizer, args):
    """texts/s and batch-1 latency of tokenizer + model, as a server runs them."""
    from transformers import AutoModelForSequenceClassification

    def read(path, limit=None):
        with open(path, encoding="utf-8") as file:
            return [json.loads(line)["text"] for line in file if line.strip()][:limit]

    with open(os.path.join(args.data_dir, "train.jsonl"), encoding="utf-8") as file:
        classes = len({str(json.loads(line)["label"]) for line in file if line.strip()})
    model = AutoModelForSequenceClassification.from_pretrained(args.model_dir, num_labels=classes)
    model.eval()
    if args.quantize_dynamic:
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)

    def classify(batch):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            features = tokenizer(batch, truncation=True, max_length=512, padding=True,
                                 return_tensors="pt")
            return torch.softmax(model(**features).logits.float(), dim=-1).numpy()

    texts = {"trec": read(os.path.join(args.data_dir, "test.jsonl")),
             "imdb": read(args.imdb, args.imdb_texts)}
    result = {name: serving_speed(classify, chosen, args.inference_batch_size,
                                  args.latency_texts) for name, chosen in texts.items()}
    result["peak_host_memory_mb"] = peak_host_memory_mb()
    return result


def step_profile(torch, model, batch, optimizer, steps):
    """Forward / backward / optimizer-update milliseconds of one training step."""

    def forward():
        with torch.no_grad():
            model(**batch).loss.item()

    def forward_backward():
        optimizer.zero_grad()
        model(**batch).loss.backward()

    def train_step():
        forward_backward()
        optimizer.step()

    forward_ms = median_milliseconds(forward, steps)
    forward_backward_ms = median_milliseconds(forward_backward, steps)
    return {
        "forward_ms": forward_ms,
        "backward_ms": forward_backward_ms - forward_ms,
        "optimizer_update_ms": median_milliseconds(optimizer.step, steps),
        "train_step_ms": median_milliseconds(train_step, steps),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


def throughput(torch, model, batch, optimizer, steps):
    """Training and inference examples/second on one fixed batch."""

    def train_step():
        optimizer.zero_grad()
        model(**batch).loss.backward()
        optimizer.step()

    def inference_step():
        with torch.no_grad():
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])

    examples_per_ms = len(batch["input_ids"]) / median_milliseconds(train_step, steps)
    model.eval()
    inference_per_ms = len(batch["input_ids"]) / median_milliseconds(inference_step, steps)
    return {
        "train_examples_per_second": 1000 * examples_per_ms,
        "inference_examples_per_second": 1000 * inference_per_ms,
        "peak_host_memory_mb": peak_host_memory_mb(),
    }


if __name__ == "__main__":
    main()
