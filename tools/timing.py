"""Timing shared by tools/benchmark.py and tools/hf_baseline.py (which runs
in another interpreter, without kerasbert)."""

import concurrent.futures
import time

import numpy as np


def median_milliseconds(step, steps):
    """Median milliseconds of `step()` over `steps` calls, after 3 untimed ones.

    The median, not the mean: on a shared machine a few steps stall.
    """
    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        times.append(1000 * (time.perf_counter() - started))
    return float(np.median(times))


def serving_speed(classify, texts, batch_size, latency_texts):
    """texts/s of `classify` on `texts` in batches, and batch-1 latency (ms)."""
    batches = [texts[i:i + batch_size] for i in range(0, len(texts), batch_size)]
    for batch in batches[:2]:
        classify(batch)
    started = time.perf_counter()
    for batch in batches:
        classify(batch)
    seconds = time.perf_counter() - started
    for text in texts[:3]:
        classify([text])
    latencies = []
    for text in texts[:latency_texts]:
        started = time.perf_counter()
        classify([text])
        latencies.append(1000 * (time.perf_counter() - started))
    return {
        "texts_per_second": len(texts) / seconds,
        "latency_p50_ms": float(np.percentile(latencies, 50)),
        "latency_p99_ms": float(np.percentile(latencies, 99)),
    }


def concurrent_speed(classify, texts, batch_size, threads):
    """texts/s of `classify` called from `threads` threads at once, each
    taking the next batch of `texts` (a server's request threads)."""
    batches = [texts[i:i + batch_size] for i in range(0, len(texts), batch_size)]
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(classify, batches[:threads]))  # every thread warmed up
        started = time.perf_counter()
        list(pool.map(classify, batches))
        seconds = time.perf_counter() - started
    return len(texts) / seconds
