"""Reports of the paper's grids: `report.md` in the paper's layout, with charts.

Our error sits beside the paper's BERT-base figure wherever the paper has
one: Tables 2–4 exist in the paper for IMDb only; Tables 5–7 have a column
per dataset, picked by the dataset's registry name
(`kerasbert.data.registry.DATASETS`); of Figures 2–4 only Figure 4 gives
numbers (0.4 % of IMDb). Over several seeds every error is a mean ± sample
standard deviation with a per-seed table beside it, and every row is
compared with its baseline row (`kerasbert.reproduction.statistics`).
"""

import os

from kerasbert.reproduction import grids
from kerasbert.reproduction import statistics
from kerasbert.reproduction.charts import write_charts
from kerasbert.reproduction.results import ROW_NAMES
from kerasbert.reproduction.results import error_of
from kerasbert.reproduction.results import seed_errors
from kerasbert.utils.files import atomic_path

# The paper's IMDb test errors (%) of Tables 2–4, BERT-base (../shared/PAPER.md).
PAPER_IMDB = {
    2: {"head": 5.63, "tail": 5.44, "head_tail": 5.42, "segments_mean": 5.89,
        "segments_max": 5.71, "segments_attention": 5.49},
    3: {**{f"layer_{i}": e for i, e in enumerate(
        [11.07, 9.81, 9.29, 8.66, 7.83, 6.83, 6.83, 6.41, 6.04, 5.70, 5.46, 5.42], start=1)},
        "first4_concat": 8.69, "first4_mean": 9.09, "first4_max": 8.76, "last4_concat": 5.43,
        "last4_mean": 5.44, "last4_max": 5.42, "all_concat": 5.44},
    4: {"lr2.5e-05_xi1": 5.52, "lr2.5e-05_xi0.95": 5.46, "lr2.5e-05_xi0.9": 5.44,
        "lr2.5e-05_xi0.85": 5.58, "lr2e-05_xi1": 5.42, "lr2e-05_xi0.95": 5.40,
        "lr2e-05_xi0.9": 5.52, "lr2e-05_xi0.85": 5.65},
}
PAPER_LAYERS = 12  # BERT-base, the encoder of Table 3's per-layer rows
# Tables 5–7 per dataset: BERT-Feat, BERT-FiT, BERT-{ITPT,IDPT,CDPT}-FiT
# (Table 6, which repeats Table 5's in-task, "all <domain>" and "all" rows)
# and the multi-task rows of Table 7.
PAPER_BY_DATASET = {
    "imdb": {"feat": 6.79, "fit": 5.40, "itpt_fit": 4.37, "idpt_fit": 4.88, "cdpt_fit": 5.18,
             "mfit_fit": 5.36, "cdpt_mfit_fit": 4.96},
    "yelp_p": {"feat": 2.39, "fit": 2.28, "itpt_fit": 1.92, "idpt_fit": 1.87, "cdpt_fit": 1.97,
               "mfit_fit": 2.19, "cdpt_mfit_fit": 2.06},
    "yelp_f": {"feat": 30.47, "fit": 30.06, "itpt_fit": 29.42, "idpt_fit": 29.25,
               "cdpt_fit": 29.20},
    "trec": {"feat": 4.20, "fit": 2.80, "itpt_fit": 3.20, "idpt_fit": 2.20, "cdpt_fit": 2.80},
    "yahoo": {"feat": 22.72, "fit": 22.42, "itpt_fit": 22.38, "idpt_fit": 21.86,
              "cdpt_fit": 21.94},
    "ag_news": {"feat": 5.92, "fit": 5.25, "itpt_fit": 4.80, "idpt_fit": 4.88, "cdpt_fit": 5.08,
                "mfit_fit": 5.20, "cdpt_mfit_fit": 5.13},
    "dbpedia": {"feat": 0.70, "fit": 0.71, "itpt_fit": 0.68, "idpt_fit": 0.65, "cdpt_fit": 0.67,
                "mfit_fit": 0.68, "cdpt_mfit_fit": 0.67},
    "sogou": {"feat": 2.50, "fit": 2.43, "itpt_fit": 1.93},
}
# The paper's Figure 4 gives one pair of numbers: 0.4 % of IMDb's training set.
PAPER_FIGURE4_IMDB = {"fit_frac0.004": 17.26, "itpt_fit_frac0.004": 9.23}
TITLES = {"table2": "long-text strategies", "table3": "features of each layer",
          "table4": "layer-wise decay ξ × learning rate", "table5": "further pre-training",
          "table6": "BERT-Feat, BERT-FiT and further pre-training",
          "table7": "multi-task fine-tuning",
          "figure2": "learning rate and catastrophic forgetting",
          "figure3": "error against further pre-training steps",
          "figure4": "few-shot: BERT-FiT against BERT-ITPT-FiT"}


def paper_errors(grid, dataset):
    """The paper's figures for `grid`'s cells on `dataset`, or `{}`."""
    kind, number = grids.parse_grid(grid)
    if kind == "figure":
        return PAPER_FIGURE4_IMDB if grid == "figure4" and dataset == "imdb" else {}
    if number in PAPER_IMDB:
        return PAPER_IMDB[number]
    return PAPER_BY_DATASET.get(dataset, {})


def compare_with_baselines(results, task, resamples=10_000):
    """Each row against its baseline row (`Cell.baseline`), for `task`.

    Two intervals for the difference (row − baseline, percentage points):
    over several seeds, a paired t interval of the per-seed differences
    (the variation between seeds); and a paired bootstrap over the test
    examples, every seed's answers pooled (the test set's size), when the
    runs recorded `test.per_example_correct`. The verdict is "better" or
    "worse" only when every interval there is says so.

    Args:
        results: `{seed: run_grid's list}`.
        task: str. The task's name.
        resamples: int. Bootstrap resamples.

    Returns:
        A list of `(cell name, baseline name, seeds, test, verdict)`: the
        `statistics.Comparison` over seeds (None for one seed), over test
        examples (None without per-example results), and the verdict (None
        when there is no interval at all).

    Example:
    ```python
    from kerasbert.reproduction import grids, reports
    fit, itpt = grids.table_cells(5, 6, corpora=("itpt",))
    run = lambda error: {"trec": {"test": {"error": error}}}
    results = {s: [(fit, run(0.05 + s / 100)), (itpt, run(0.03 + s / 100))] for s in (0, 1, 2)}
    [row[4] for row in reports.compare_with_baselines(results, "trec")]  # ['better']
    ```
    """
    cells = [cell for cell, _ in next(iter(results.values()))]
    errors, _ = seed_errors(results, task)
    rows = []
    for cell in cells:
        if cell.baseline is None or cell.baseline not in errors:
            continue
        over_seeds = None
        if len(results) > 1:
            over_seeds = statistics.paired_t_interval(errors[cell.name], errors[cell.baseline])
        answers = {name: "" for name in (cell.name, cell.baseline)}
        for per_seed in results.values():
            by_name = {c.name: m[task] for c, m in per_seed}
            for name in answers:
                correct = by_name[name].get("test", {}).get("per_example_correct")
                answers[name] = None if correct is None or answers[name] is None else (
                    answers[name] + correct)
        over_test = None
        row, base = answers[cell.name], answers[cell.baseline]
        if row and base and len(row) == len(base):
            over_test = statistics.paired_bootstrap(
                [c == "1" for c in row], [c == "1" for c in base], resamples=resamples)
        comparisons = [c for c in (over_seeds, over_test) if c is not None]
        verdict = statistics.combined_verdict(comparisons) if comparisons else None
        rows.append((cell.name, cell.baseline, over_seeds, over_test, verdict))
    return rows


def write_report(grid, results, output_dir, command="", dataset=None):
    """Write `report.md` and PNG charts for a finished grid.

    Args:
        grid: str. One of `kerasbert.reproduction.grids.GRIDS`.
        results: `{seed: what run_grid returned for it}`.
        output_dir: str. The grid directory.
        command: str. The command that ran the grid, quoted in the report.
        dataset: str or None. The dataset's registry name, which picks the
            paper's column in Tables 5–7.

    Returns:
        The path of `report.md`.

    Example:
    ```python
    import tempfile
    from kerasbert.reproduction import grids, reports
    cells = grids.figure_cells(2, learning_rates=(2e-5, 4e-4))
    run = lambda error: {"test": {"error": error}, "epochs": [{"loss": 0.5}]}
    results = {0: [(cells[0], {"trec": run(0.03)}), (cells[1], {"trec": run(0.8)})]}
    reports.write_report("figure2", results, tempfile.mkdtemp())  # '.../report.md'
    ```
    """
    kind, number = grids.parse_grid(grid)
    first = next(iter(results.values()))
    tasks = list(first[0][1])
    seeds = list(results)
    lines = [f"# {kind.capitalize()} {number}: {TITLES[grid]}", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    if len(seeds) > 1:
        lines += [f"Seeds: {', '.join(map(str, seeds))}. Each error is the mean ± sample "
                  f"standard deviation of {len(seeds)} runs, one per seed.", ""]
    else:
        lines += [f"Seed: {seeds[0]}: one run per cell (no spread over seeds).", ""]
    if grid == "table7":
        lines += _multitask_table(results, tasks)
    else:
        if grid == "table4":
            lines += _decay_matrix(results, tasks[0])
        lines += _single_task_table(grid, results, tasks[0], dataset)
    if len(seeds) > 1:
        lines += ["", "## Per seed", ""] + _per_seed_table(results, tasks)
    lines += ["", "## Against the baseline", ""] + _comparison_table(results, tasks)
    lines += ["", "Every cell is a recipe run in its own directory, `seed_<S>/<cell>`; its "
              "`metrics.json` holds all settings, per-epoch figures and which test examples "
              "it got right.", ""]
    charts = write_charts(grid, results, tasks[0], output_dir)
    lines += [f"![{os.path.basename(c)}]({os.path.basename(c)})" for c in charts]
    path = os.path.join(output_dir, "report.md")
    with atomic_path(path) as partial:
        with open(partial, "w", encoding="utf-8") as file:
            file.write("\n".join(lines) + "\n")
    return path


def _shown(values):
    """`mean ± std` (or the one value) of each cell, the lowest mean in bold."""
    means = {k: statistics.mean_and_std(v) for k, v in values.items()}
    best = min(m for m, _ in means.values()) if means else None
    shown = {}
    for key, (mean, std) in means.items():
        text = f"{mean:.2f} ± {std:.2f}" if len(values[key]) > 1 else f"{mean:.2f}"
        shown[key] = f"**{text}**" if mean == best else text
    return shown


def _single_task_table(grid, results, task, dataset):
    cells = [cell for cell, _ in next(iter(results.values()))]
    errors, split = seed_errors(results, task)
    shown = _shown(errors)
    paper = paper_errors(grid, dataset)
    notes = []
    layer_rows = [c for c in cells if c.name.startswith("layer_")]
    if grid == "table3" and len(layer_rows) != PAPER_LAYERS:
        # Layer i of a shallower encoder is not the paper's layer i.
        paper = {k: v for k, v in paper.items() if not k.startswith("layer_")}
        notes.append(f"The paper's per-layer figures are for {PAPER_LAYERS} layers and are left "
                     f"out beside this {len(layer_rows)}-layer encoder.")
    source = "IMDb" if (grid in ("table2", "table3", "table4") or
                        (grid == "figure4" and paper)) else (dataset or "this dataset")
    header = f"| cell | ours ({split} error %) | paper (BERT-base, {source} test) |"
    rule = "|---|---|---|"
    if grid == "table6":
        header += " Δ vs BERT-Feat (ours) |"
        rule += "---|"
    lines = [header + " settings |", rule + "---|"]
    means = {name: statistics.mean_and_std(values)[0] for name, values in errors.items()}
    for cell in cells:
        theirs = paper.get(cell.name)
        row = (f"| {ROW_NAMES.get(cell.name, cell.name)} | {shown[cell.name]} | "
               f"{'–' if theirs is None else f'{theirs:.2f}'} |")
        if grid == "table6":
            feat = means.get("feat")
            row += " – |" if cell.name == "feat" or not feat else (
                f" {100 * (feat - means[cell.name]) / feat:+.1f} % |")
        lines.append(f"{row} {_settings_text(cell, results, task)} |")
    if not paper:
        what = "this figure" if grid.startswith("figure") else source
        lines += ["", f"The paper reports no figures for {what}."]
    lines += [line for note in notes for line in ("", note)]
    if grid == "table6":
        lines += ["", "Δ is the relative error reduction against BERT-Feat, as in the paper's "
                  "Avg Δ column."]
    return lines


def _settings_text(cell, results, task):
    settings = dict(cell.settings)
    if cell.train_subset:
        kind, size = cell.train_subset
        metrics = next(m[task] for c, m in next(iter(results.values())) if c.name == cell.name)
        settings[kind] = size
        subset = metrics.get("train_subset")
        if subset:  # seed 0's draw: a small fraction can miss a class
            settings["examples"] = subset["examples"]
            settings["classes"] = f"{subset['classes']}/{subset['of_classes']}"
        settings["epochs"] = metrics.get("settings", {}).get("epochs", "?")
    text = ", ".join(f"{k}={v}" for k, v in settings.items())
    if cell.pretraining:
        where = (f"pretraining/{cell.pretraining}/backbone" if cell.pretraining_step is None
                 else f"pretraining/{cell.pretraining}_snapshots/snapshots/step_"
                      f"{cell.pretraining_step}")
        text = ", ".join(filter(None, [f"backbone={where}", text]))
    return text


def _decay_matrix(results, task):
    """Table 4 as the paper lays it out: a row per learning rate, a column per ξ."""
    cells = [cell for cell, _ in next(iter(results.values()))]
    by_name, split = seed_errors(results, task)
    errors = {(c.settings["learning_rate"], c.settings["layer_decay"]): by_name[c.name]
              for c in cells}
    shown = _shown(errors)
    rates = list(dict.fromkeys(rate for rate, _ in errors))
    decays = list(dict.fromkeys(decay for _, decay in errors))
    lines = [f"Ours ({split} error %):", "",
             "| lr |" + "".join(f" ξ={d:.2f} |" for d in decays),
             "|---|" + "---|" * len(decays)]
    for rate in rates:
        lines.append(f"| {rate:g} |" + "".join(f" {shown.get((rate, d), '–')} |" for d in decays))
    return lines + ["", "Per cell, beside the paper's IMDb figure where it ran the same cell:", ""]


def _multitask_table(results, tasks):
    header = "| method |" + "".join(f" {t}: ours | {t}: paper |" for t in tasks)
    lines = [header, "|---|" + "---|---|" * len(tasks)]
    cells = [cell for cell, _ in next(iter(results.values()))]
    by_seed = [{c.name: m for c, m in per_seed} for per_seed in results.values()]
    rows = []  # (label, cell name, {task: (split, [errors per seed])})
    for cell in cells:
        for joint in ((False, True) if cell.multitask else (False,)):
            per_task = {}
            for t in tasks:
                values = []
                for by_name in by_seed:
                    metrics = by_name[cell.name][t]
                    split, error = error_of(metrics["joint"] if joint else metrics)
                    values.append(error)
                per_task[t] = (split, values)
            label = (f"{ROW_NAMES[cell.name][:-4]} (joint phase only)" if joint
                     else ROW_NAMES.get(cell.name, cell.name))
            rows.append((label, None if joint else cell.name, per_task))
    shown = {t: _shown({label: errors[t][1] for label, _, errors in rows}) for t in tasks}
    for label, name, errors in rows:
        columns = ""
        for t in tasks:
            theirs = PAPER_BY_DATASET.get(t, {}).get(name)
            columns += (f" {shown[t][label]} ({errors[t][0][:3]}.) |"
                        f" {'–' if theirs is None else f'{theirs:.2f}'} |")
        lines.append(f"| {label} |{columns}")
    lines += ["", "Error %; (tes.) = test split, (val.) = validation split. The paper's "
              "Table 7 covers IMDb, Yelp P., AG's News and DBpedia only."]
    return lines


def _per_seed_table(results, tasks):
    seeds = list(results)
    lines = []
    for task in tasks:
        errors, split = seed_errors(results, task)
        if len(tasks) > 1:
            lines += [f"{task} ({split} error %):", ""]
        lines += ["| cell |" + "".join(f" seed {s} |" for s in seeds),
                  "|---|" + "---|" * len(seeds)]
        lines += [f"| {name} |" + "".join(f" {e:.2f} |" for e in values)
                  for name, values in errors.items()]
        lines.append("")
    return lines[:-1]


def _comparison_table(results, tasks, resamples=10_000):
    lines = []
    several = len(results) > 1
    missing = False
    for task in tasks:
        rows = compare_with_baselines(results, task, resamples)
        if not rows:
            continue
        if len(tasks) > 1:
            lines += [f"{task}:", ""]
        lines += ["| cell | baseline | Δ error (points) | 95 % interval over seeds | "
                  "95 % interval over test answers | verdict |", "|---|---|---|---|---|---|"]
        errors, _ = seed_errors(results, task)
        for name, baseline, over_seeds, over_test, verdict in rows:
            difference = (statistics.mean_and_std(errors[name])[0]
                          - statistics.mean_and_std(errors[baseline])[0])
            seeds_text = "– (one seed)" if over_seeds is None else _interval(over_seeds)
            test_text = "–" if over_test is None else _interval(over_test)
            missing = missing or over_test is None
            lines.append(f"| {name} | {baseline} | {difference:+.2f} | {seeds_text} | "
                         f"{test_text} | {verdict or 'no interval: no per-example results'} |")
        lines.append("")
    if not lines:
        return ["This grid has no baseline row."]
    lines += [
        "Δ is the row's mean error minus its baseline's, in percentage points (negative: fewer "
        "errors). The interval over seeds is a paired Student-t interval of the per-seed "
        "differences (both runs of a seed saw the same data): the variation between seeds, on "
        "this test set. The interval over test answers is a paired bootstrap "
        f"({resamples:,} resamples) of the two rows' answers to the same test examples, every "
        "seed's answers pooled: the test set's size. \"better\" or \"worse\" when every "
        f"interval excludes zero on the same side, else \"{statistics.UNDECIDED}\"."
        + ("" if several else " One seed shows nothing of the variation between seeds: "
           "run --seeds=3 for that.")]
    if missing:
        lines += ["", "– over test answers: a run without `test.per_example_correct` (no test "
                  "split, so the error is the validation error, or a cell finished before "
                  "kerasbert recorded it)."]
    return lines


def _interval(comparison):
    return f"[{comparison.low:+.2f}, {comparison.high:+.2f}]"
