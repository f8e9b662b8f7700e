"""Honest speed measurements: dygraph eval, the exported predictor (BatchNorms folded or not) and training steps.

How the timing is kept fair:

- every case is warmed up first, then measured ``runs`` times; we report the median and the 10th-90th percentile
  spread of single-batch latencies;
- the cases of one kind run interleaved, round-robin (one timed batch of each case per round), so that machine
  noise hits them alike;
- dygraph cases and predictor cases run in separate worker processes (a predictor and dygraph in one process
  interfere: after a predictor has run, dygraph ran on one thread), one kind at a time, with the thread count fixed
  (``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` for dygraph, ``set_cpu_math_library_num_threads`` for the predictor);
- the machine (CPU model, cores, Paddle version, threads) is written beside the results.

The package: ``cases`` (what to time), ``workers`` (the timing processes, started as ``python -m``), ``runner``
(spawns them, collects ``rows``), ``report`` (ratios, CSV, Markdown) and ``plots``. ``edgevit-benchmark --help`` (or
``python tools/benchmark.py --help``) for the command line; ``--out DIR`` writes ``results.csv``, ``results.md``,
``machine.json`` and PNG plots.
"""
from .cases import Case, build_cases, deploy_modes, modes, parse_variants
from .plots import plot_curves, plot_results
from .report import add_ratios, markdown_table, write_results
from .rows import COLUMNS
from .runner import machine_info, run_benchmark

__all__ = ["modes", "deploy_modes", "Case", "build_cases", "parse_variants", "plot_curves", "plot_results", "COLUMNS",
           "add_ratios", "markdown_table", "write_results", "machine_info", "run_benchmark"]
