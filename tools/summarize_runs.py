r"""Print a markdown table of fine-tuning runs from their metrics.json.

  python tools/summarize_runs.py runs/grid_t4/*

Columns: run, validation error, test error (%), best epoch, training seconds.
"""

import json
import os
import sys


def row(run_dir):
    with open(os.path.join(run_dir, "metrics.json")) as file:
        metrics = json.load(file)

    def error(split):
        value = metrics.get(split, {}).get("error")
        return "–" if value is None else f"{100 * value:.2f}"

    seconds = metrics.get("train_seconds")
    return (
        f"| {os.path.basename(os.path.normpath(run_dir))} | {error('validation')} | "
        f"{error('test')} | {metrics.get('best_epoch', '–')} | "
        f"{'–' if seconds is None else round(seconds)} |"
    )


def main(run_dirs):
    print("| run | validation error % | test error % | best epoch | train s |")
    print("|---|---|---|---|---|")
    for run_dir in run_dirs:
        if os.path.exists(os.path.join(run_dir, "metrics.json")):
            print(row(run_dir))


if __name__ == "__main__":
    main(sys.argv[1:])
