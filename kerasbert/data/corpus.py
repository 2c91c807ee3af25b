"""Streaming text corpora for further pre-training (Sun et al. 2019, §4.2).

In-task (ITPT), in-domain (IDPT) and cross-domain (CDPT) further pre-training
differ only in the corpus: one source, several sources of a domain, or
sources of several domains. `pretraining_dataset` mixes any number of
sources by weight, splits documents into sentences, packs consecutive
sentences into sequences of at most `sequence_length` word pieces and, for
next-sentence prediction, pairs them with their true continuation or, half
of the time, a random sentence run of another document. Documents are read
one at a time, so a corpus larger than memory streams.
"""

import collections
import itertools
import os
import random
import re

import tensorflow as tf

from kerasbert.data.generator_dataset import generator_dataset
from kerasbert.data.records import decoded_lines
from kerasbert.data.records import joined_text
from kerasbert.data.records import read_records
from kerasbert.data.records import record_format

# Sentence ends: English . ! ? followed by space, and Chinese 。！？ (no space).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")
_RANDOM_NEXT_BUFFER = 1000


def split_sentences(text):
    """Split text into sentences on . ! ? (then whitespace) and on 。！？.

    Examples:
    ```python
    kerasbert.data.corpus.split_sentences("It rains. Really? 我很好。你呢？")
    # ['It rains.', 'Really?', '我很好。', '你呢？']
    ```
    """
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def iter_documents(spec, text_fields=("text",), split="train", data_dir=None):
    """Yield the documents of a source one by one, as strings.

    Args:
        spec: str. A `.txt` file (documents separated by blank lines), a
            JSONL / CSV / TSV file, or `tfds:NAME` (read from `data_dir`).
        text_fields: sequence of str. Fields joined to form a document.
        split: str. The TFDS split.
        data_dir: str or None. The TFDS data directory.
    """
    if spec.startswith("tfds:"):
        import tensorflow_datasets as tfds

        dataset = tfds.builder(spec[5:], data_dir=data_dir).as_dataset(split=split)
        for example in tfds.as_numpy(dataset):
            yield " ".join(example[f].decode("utf-8") for f in text_fields)
        return
    if not os.path.isfile(spec):
        raise FileNotFoundError(f"Corpus source {spec!r} is not a file (nor a 'tfds:NAME').")
    extension = os.path.splitext(spec)[1].lower()
    if extension == ".txt":
        with open(spec, "rb") as file:
            paragraph = []
            for _, line in decoded_lines(file, spec):
                if line.strip():
                    paragraph.append(line.strip())
                elif paragraph:
                    yield " ".join(paragraph)
                    paragraph = []
            if paragraph:
                yield " ".join(paragraph)
    elif record_format(spec) is not None:
        for number, record in read_records(spec):
            yield joined_text(record, text_fields, f"{spec}:{number}")
    else:
        raise ValueError(
            f"Unknown corpus file type {spec!r}; expected .txt, .jsonl, .csv or .tsv."
        )


def check_source(spec, weight, text_fields=("text",), data_dir=None):
    """Raise a one-line error unless source `spec` exists and its first
    document reads, before a long run starts (the rest streams later)."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
        raise ValueError(f"Corpus weight of {spec!r} must be a number > 0. Received: {weight!r}")
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"A corpus source must be a path or 'tfds:NAME'. Received: {spec!r}")
    if spec.startswith("tfds:"):
        return
    if not os.path.isfile(spec):
        raise FileNotFoundError(f"Corpus source {spec!r} is not a file (nor a 'tfds:NAME').")
    for _ in iter_documents(spec, text_fields):
        return
    raise ValueError(f"Corpus source {spec!r} holds no text.")


def parse_source(source):
    """`"spec@weight"` → `(spec, weight)`; a bare spec has weight 1."""
    spec, _, weight = source.rpartition("@")
    if not spec or not re.fullmatch(r"[0-9.eE+-]+", weight):
        return source, 1.0
    if float(weight) <= 0:
        raise ValueError(f"Corpus weight must be positive. Received: {source!r}")
    return spec, float(weight)


class SentencePacker:
    """Pack a stream of documents into pre-training examples.

    Consecutive sentences of one document are packed greedily into runs of
    at most `max_pieces` word pieces. Without NSP each run is one example
    `(run, "", 0)`. With NSP a run is cut at a random sentence boundary into
    A and B; half of the time B is replaced by a random run of an earlier
    document, giving `(A, B, 1)`, otherwise `(A, B, 0)`. A one-sentence run
    is cut in the middle of its words. Counting uses the tokenizer, so the
    packed lengths are in word pieces.
    """

    def __init__(self, tokenizer, max_pieces, nsp=False, seed=0):
        self.tokenizer = tokenizer
        self.max_pieces = max_pieces
        self.nsp = nsp
        self.random = random.Random(seed)
        self.others = collections.deque(maxlen=_RANDOM_NEXT_BUFFER)

    def _lengths(self, sentences):
        # Eager keras-hub tokenizers return Python lists.
        return [len(ids) for ids in self.tokenizer(sentences)]

    def runs(self, document):
        sentences = split_sentences(document)
        if not sentences:
            return
        run, run_pieces = [], 0
        for sentence, pieces in zip(sentences, self._lengths(sentences)):
            if run and run_pieces + pieces > self.max_pieces:
                yield run
                run, run_pieces = [], 0
            run.append(sentence)
            run_pieces += pieces
        yield run

    def examples(self, documents):
        for document_index, document in enumerate(documents):
            for run in self.runs(document):
                if not self.nsp:
                    yield " ".join(run), "", 0
                    continue
                if len(run) == 1:
                    words = run[0].split()
                    half = max(1, len(words) // 2)
                    run = [" ".join(words[:half]), " ".join(words[half:])]
                cut = self.random.randint(1, len(run) - 1)
                first, second = " ".join(run[:cut]), " ".join(run[cut:])
                candidates = [r for d, r in self.others if d != document_index]
                if candidates and self.random.random() < 0.5:
                    yield first, self.random.choice(candidates), 1
                else:
                    yield first, second, 0
                self.others.append((document_index, second))


def file_identity(spec):
    """`(size, modification time)` of a corpus file; None for `tfds:NAME` or
    a missing file."""
    if spec.startswith("tfds:") or not os.path.isfile(spec):
        return None
    stat = os.stat(spec)
    return stat.st_size, stat.st_mtime_ns


def check_unchanged(spec, identity):
    """Raises if the corpus file `spec` no longer has `identity`."""
    if not spec.startswith("tfds:") and file_identity(spec) != identity:
        raise ValueError(
            f"Corpus source {spec!r} changed while the run read it (its size or modification "
            "time); reading on would mix two versions of it. Restore it, or start over "
            "with --overwrite (overwrite=True).")


def pretraining_dataset(
    sources,
    tokenizer,
    sequence_length=128,
    nsp=False,
    text_fields=("text",),
    data_dir=None,
    seed=0,
    shard=None,
):
    """An endless, seeded `tf.data.Dataset` of pre-training text examples.

    Args:
        sources: list of `(spec, weight)` (see `iter_documents`, `parse_source`).
            Examples are drawn from source i with probability weight_i / Σ.
            Each source repeats when exhausted.
        tokenizer: the backbone's tokenizer, for counting word pieces.
        sequence_length: int. Model input length; runs hold at most
            `sequence_length − 2` pieces (− 3 with NSP).
        nsp: bool. Produce sentence pairs for next-sentence prediction.
        text_fields: sequence of str. Fields of JSONL/CSV/TSV sources.
        data_dir: str or None. TFDS data directory.
        seed: int. Seeds NSP sampling and the mixing of sources.
        shard: `(count, index)` or None. Read only every `count`-th document
            of each source, starting at `index` (one worker's share, chosen
            before tokenizing).

    Returns:
        A `tf.data.Dataset` of `(text_a, text_b, is_random_next)` with
        `tf.string`, `tf.string`, `tf.int32` scalars (`text_b` is empty
        without NSP).
    """
    max_pieces = sequence_length - (3 if nsp else 2)
    signature = (
        tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.int32)
    )

    def source_dataset(index, spec):
        identity = file_identity(spec)

        def generate():
            packer = SentencePacker(tokenizer, max_pieces, nsp, seed=seed + index)
            while True:
                # Checked at every pass, before and after: a file replaced
                # or edited mid-run would mix two versions of the corpus.
                check_unchanged(spec, identity)
                count = 0
                documents = iter_documents(spec, text_fields, data_dir=data_dir)
                if shard is not None:
                    documents = itertools.islice(documents, shard[1], None, shard[0])
                for example in packer.examples(documents):
                    count += 1
                    yield example
                if count == 0:
                    raise ValueError(f"Corpus source {spec!r} holds no text.")
                check_unchanged(spec, identity)

        return generator_dataset(generate, signature)

    datasets = [source_dataset(i, spec) for i, (spec, _) in enumerate(sources)]
    if len(datasets) == 1:
        return datasets[0]
    weights = [weight for _, weight in sources]
    total = sum(weights)
    return tf.data.Dataset.sample_from_datasets(
        datasets, weights=[w / total for w in weights], seed=seed
    )
