import pytest

from kerasbert.reproduction import charts
from kerasbert.reproduction import grids
from kerasbert.reproduction import reports as grid_reports


def _run(error, epochs=2, correct=None):
    metrics = {"validation": {"error": error + 0.01},
               "test": {"error": error},
               "epochs": [{"loss": 1.0 / (e + 1), "val_error": error + 0.1 / (e + 1)}
                          for e in range(epochs)]}
    if correct is not None:
        metrics["test"]["per_example_correct"] = correct
    return metrics


def _one_seed(cells, errors, task="trec"):
    return {0: [(c, {task: _run(e)}) for c, e in zip(cells, errors)]}


def test_report_of_table_6_has_paper_figures_and_relative_reduction(tmp_path):
    cells = grids.table_cells(6, 6, corpora=("itpt",))
    results = _one_seed(cells, (0.05, 0.04, 0.03))
    report = open(grid_reports.write_report("table6", results, str(tmp_path), "cmd", "trec")).read()
    assert "| BERT-Feat | 5.00 | 4.20 | – |" in report
    assert "| BERT-FiT | 4.00 | 2.80 | +20.0 % |" in report
    assert "| BERT-ITPT-FiT | **3.00** | 3.20 | +40.0 % | backbone=pretraining/itpt/backbone |" in report
    assert (tmp_path / "error_per_cell.png").read_bytes()[:4] == b"\x89PNG"
    # One seed without per-example results: nothing to pair, said so.
    assert ("| fit | feat | -1.00 | – (one seed) | – | no interval: no per-example results |"
            in report)
    other = open(grid_reports.write_report("table6", results, str(tmp_path), "", "mydata")).read()
    assert "no figures for mydata" in other


def test_report_of_table_3_compares_layers_only_at_the_papers_depth(tmp_path):
    for num_layers, shown in ((12, "| layer_1 | 11.00 | 11.07 |"), (6, "| layer_1 | 11.00 | – |")):
        cells = grids.table_cells(3, num_layers)
        results = _one_seed(cells, [0.111 - 0.001 * i for i in range(len(cells))])
        report = open(grid_reports.write_report("table3", results, str(tmp_path))).read()
        assert shown in report
        assert "| last4_concat |" in report and "5.43 |" in report  # sets compare by name
        assert ("left out beside this 6-layer encoder" in report) == (num_layers == 6)


def test_report_of_table_4_lays_out_rates_by_decay(tmp_path):
    cells = grids.table_cells(4, 6, learning_rates=(1e-4, 2e-5))
    results = _one_seed(cells, [e / 100 for e in range(8, 0, -1)])
    report = open(grid_reports.write_report("table4", results, str(tmp_path))).read()
    assert "| lr | ξ=1.00 | ξ=0.95 | ξ=0.90 | ξ=0.85 |" in report
    assert "| 0.0001 | 8.00 | 7.00 | 6.00 | 5.00 |" in report
    assert "| 2e-05 | 4.00 | 3.00 | 2.00 | **1.00** |" in report
    assert "| lr2e-05_xi0.95 | 3.00 | 5.40 |" in report  # the paper's cell beside ours
    assert (tmp_path / "error_vs_decay.png").exists()


def test_report_of_table_7_has_a_column_pair_per_task(tmp_path):
    cells = grids.table_cells(7, 6, corpora=())
    fit = {"imdb": _run(0.06), "trec": _run(0.03)}
    mfit = {"imdb": {**_run(0.05), "joint": _run(0.07)},
            "trec": {"validation": {"error": 0.02}, "joint": _run(0.04)}}
    results = {0: list(zip(cells, (fit, mfit)))}
    report = open(grid_reports.write_report("table7", results, str(tmp_path))).read()
    assert "| method | imdb: ours | imdb: paper | trec: ours | trec: paper |" in report
    assert "| BERT-FiT | 6.00 (tes.) | 5.40 | 3.00 (tes.) | 2.80 |" in report
    assert "| BERT-MFiT-FiT | **5.00** (tes.) | 5.36 | **2.00** (val.) | – |" in report
    assert "| BERT-MFiT (joint phase only) | 7.00 (tes.) | – | 4.00 (tes.) | – |" in report


def _three_seeds(cells, errors_per_seed):
    return {seed: [(c, {"trec": _run(e)}) for c, e in zip(cells, errors)]
            for seed, errors in enumerate(errors_per_seed)}


def test_report_over_seeds_shows_spread_per_seed_values_and_verdicts(tmp_path):
    cells = grids.table_cells(5, 6, corpora=("itpt", "cdpt"))
    # Errors (fraction) per seed for fit, itpt_fit, cdpt_fit: itpt is 1 point
    # better in every seed; cdpt is better in one seed and worse in two.
    results = _three_seeds(cells, [(0.040, 0.030, 0.045), (0.060, 0.050, 0.050),
                                   (0.050, 0.040, 0.060)])
    report = open(grid_reports.write_report("table5", results, str(tmp_path), "cmd", "trec")).read()
    assert "Seeds: 0, 1, 2. Each error is the mean ± sample standard deviation of 3 runs" in report
    assert "| BERT-FiT | 5.00 ± 1.00 | 2.80 |" in report
    assert "| BERT-ITPT-FiT | **4.00 ± 1.00** | 3.20 |" in report
    assert "| cell | seed 0 | seed 1 | seed 2 |" in report
    assert "| itpt_fit | 3.00 | 5.00 | 4.00 |" in report
    # itpt − fit = −1, −1, −1: an interval of zero width below zero.
    assert "| itpt_fit | fit | -1.00 | [-1.00, -1.00] | – | better |" in report
    # cdpt − fit = +0.5, −1, +1: mean 1/6, t(2) × sd/√3 = 2.59.
    assert ("| cdpt_fit | fit | +0.17 | [-2.42, +2.75] | – | not distinguishable at this budget |"
            in report)
    assert "paired Student-t interval of the per-seed differences" in report
    assert (tmp_path / "error_per_cell.png").read_bytes()[:4] == b"\x89PNG"


def test_one_seed_compares_by_bootstrap_over_test_examples(tmp_path):
    cells = grids.figure_cells(2, learning_rates=(2e-5, 4e-4, 1e-4))
    results = {0: [
        (cells[0], {"trec": _run(0.04, correct="1" * 96 + "0" * 4)}),
        (cells[1], {"trec": _run(0.80, correct="1" * 20 + "0" * 80)}),
        (cells[2], {"trec": _run(0.05, correct="1" * 95 + "0" * 5)}),
    ]}
    rows = grid_reports.compare_with_baselines(results, "trec", resamples=2000)
    assert [(name, baseline, seeds) for name, baseline, seeds, _, _ in rows] == [
        ("lr0.0004", "lr2e-05", None), ("lr0.0001", "lr2e-05", None)]
    assert rows[0][3].mean_difference == pytest.approx(76.0) and rows[0][4] == "worse"
    assert rows[1][4] == "not distinguishable at this budget"
    report = open(grid_reports.write_report("figure2", results, str(tmp_path))).read()
    assert "Seed: 0: one run per cell" in report and "## Per seed" not in report
    assert "| lr0.0004 | lr2e-05 | +76.00 | – (one seed) | [+" in report
    assert "run --seeds=3 for that" in report
    assert (tmp_path / "learning_rate_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_seeds_that_agree_by_one_question_each_are_not_called_better(tmp_path):
    # Three seeds, each one question of 100 better: the t interval has zero
    # width, the pooled answers (3 of 300) cannot separate the rows.
    cells = grids.table_cells(5, 6, corpora=("itpt",))
    base = "1" * 90 + "0" * 10
    better = "1" * 91 + "0" * 9
    results = {seed: [(cells[0], {"trec": _run(0.10, correct=base)}),
                      (cells[1], {"trec": _run(0.09, correct=better)})] for seed in range(3)}
    [(name, baseline, over_seeds, over_test, verdict)] = grid_reports.compare_with_baselines(
        results, "trec", resamples=2000)
    assert over_seeds.verdict == "better" and over_seeds.high - over_seeds.low == 0
    assert over_test.low < 0 <= over_test.high and "300 test examples" in over_test.method
    assert verdict == "not distinguishable at this budget"


def test_mean_curves_average_the_seeds_epoch_by_epoch():
    cell = grids.Cell("fit")
    results = {0: [(cell, {"t": {"epochs": [{"loss": 1.0}, {"loss": 0.5}]}})],
               1: [(cell, {"t": {"epochs": [{"loss": 3.0}, {"loss": 1.5}, {"loss": 1.0}]}})]}
    # Only the epochs every seed logged.
    assert charts.mean_curve(results, cell, "t", "loss") == [2.0, 1.0]


def test_figure_charts_are_drawn_for_sizes_and_steps(tmp_path):
    figure4 = grids.figure_cells(4, fractions=(0.01, 1.0), examples_per_class=(4,))
    results = _three_seeds(figure4, [[0.3, 0.2, 0.05, 0.04, 0.5, 0.3]] * 2 + [
        [0.32, 0.21, 0.06, 0.05, 0.52, 0.31]])
    report = open(grid_reports.write_report("figure4", results, str(tmp_path), "", "imdb")).read()
    for chart in ("error_vs_training_fraction.png", "error_vs_examples_per_class.png"):
        assert f"![{chart}]({chart})" in report
        assert (tmp_path / chart).read_bytes()[:4] == b"\x89PNG"
    assert "| itpt_fit_pc4 | fit_pc4 |" in report
    # The paper's one Figure 4 number pair (0.4 % of IMDb) sits beside a matching cell only.
    assert "17.26" not in report
    figure4 = grids.figure_cells(4, fractions=(0.004,))
    report = open(grid_reports.write_report(
        "figure4", _three_seeds(figure4, [[0.2, 0.1]] * 3), str(tmp_path), "", "imdb")).read()
    assert "| fit_frac0.004 | 20.00 ± 0.00 | 17.26 |" in report
