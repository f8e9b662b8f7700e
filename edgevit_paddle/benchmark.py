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

``python tools/benchmark.py --help`` for the command line; ``--out DIR`` writes ``results.csv``, ``results.md``,
``machine.json`` and PNG plots.
"""
from __future__ import annotations

import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

MODES = ("eval", "predictor", "predictor_nofold", "predictor_noonednn", "predictor_bf16", "train")
COLUMNS = ["model", "norm", "ffn", "batch", "size", "mode", "procs", "params", "gmacs", "median_ms", "p10_ms",
           "p90_ms", "images_per_sec", "runs", "threads"]


@dataclass
class Case:
    """One thing to time: a registered model and variant at a batch size, input size and mode. ``procs`` > 1 (train
    mode only): data parallel over that many CPU processes, ``batch`` being the global batch split among them."""

    model: str
    norm: Optional[str]
    ffn: Optional[str]
    batch: int
    size: int
    mode: str
    procs: int = 1

    @property
    def key(self) -> str:
        return f"{self.model}|{self.norm}|{self.ffn}|{self.batch}|{self.size}|{self.mode}|{self.procs}"


def parse_variants(text: str) -> List[tuple]:
    """'all' -> the six EdgeViT norm/ffn pairs; 'default' -> the presets'; 'gn-conv,ln-linear' -> those pairs."""
    if text == "all":
        return [(n, f) for n in ("gn", "ln", "bn") for f in ("conv", "linear")]
    if text == "default":
        return [(None, None)]
    pairs = [tuple(v.split("-")) for v in text.split(",")]
    if not all(len(p) == 2 and p[0] in ("gn", "ln", "bn") and p[1] in ("conv", "linear") for p in pairs):
        raise ValueError(f"--variants '{text}': use norm-ffn pairs such as gn-conv,ln-linear, or all")
    return pairs


def build_cases(models: Sequence[str], variants: str, batch_sizes: Sequence[int], sizes: Optional[Sequence[int]],
                modes: Sequence[str], train_batch: Optional[int] = None, quick: bool = False,
                train_procs: Sequence[int] = (1,)) -> List[Case]:
    """Every model x variant x size x mode x batch (train mode at ``train_batch``, default the largest batch, once
    per entry of ``train_procs``)."""
    from .registry import create_model, list_models
    unknown = [m for m in models if m not in list_models()]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)}; registered: {', '.join(list_models())}")
    if any(b < 1 for b in batch_sizes):
        raise ValueError("--batch-sizes must be >= 1")
    if any(p < 1 for p in train_procs):
        raise ValueError("--train-procs must be >= 1")
    pairs = parse_variants(variants)
    cases = []
    for name in models:
        default = create_model(name).default_input_size[1]
        for norm, ffn in (pairs if name.startswith("edgevit") else [(None, None)]):
            for size in sizes or ([64] if quick and name.startswith("edgevit") else [default]):
                for mode in modes:
                    if mode != "train":
                        cases += [Case(name, norm, ffn, b, size, mode) for b in batch_sizes]
                        continue
                    batch = train_batch or max(batch_sizes)
                    for procs in train_procs:
                        if batch % procs:
                            raise ValueError(f"train batch {batch} does not split evenly over {procs} processes: "
                                             "choose --train-batch divisible by every --train-procs")
                        cases.append(Case(name, norm, ffn, batch, size, mode, procs))
    return cases


def machine_info(threads: int) -> Dict[str, Any]:
    import paddle
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": threads, "paddle": paddle.__version__,
            "python": platform.python_version(), "mkl_debug_cpu_type": os.environ.get("MKL_DEBUG_CPU_TYPE"),
            "date": time.strftime("%Y-%m-%d %H:%M")}


def _build(case: Case):
    from .registry import create_model
    model = create_model(case.model, norm=case.norm, ffn=case.ffn)
    c = model.default_input_size[0]
    return model, [case.batch, c, case.size, case.size]


def _percentiles(times: List[float]) -> Dict[str, float]:
    ms = np.asarray(times) * 1000.0
    return {"median_ms": float(np.median(ms)), "p10_ms": float(np.percentile(ms, 10)),
            "p90_ms": float(np.percentile(ms, 90)), "runs": len(ms)}


def _dygraph_runners(cases: Sequence[Case]):
    import paddle
    from paddle.static import InputSpec
    runners = {}
    for case in cases:
        model, shape = _build(case)
        shape[0] //= case.procs  # data parallel: this process's share of the global batch
        x = paddle.randn(shape)
        if case.mode == "eval":
            model.eval()

            def run(model=model, x=x):
                with paddle.no_grad():
                    model(x).numpy()
        else:
            net = model
            api = paddle.Model(net, inputs=[InputSpec([None, *shape[1:]], "float32", "x")],
                               labels=[InputSpec([None, 1], "int64", "label")])
            api.prepare(paddle.optimizer.AdamW(1e-4, parameters=net.parameters()), paddle.nn.CrossEntropyLoss())
            y = np.random.randint(0, net.num_classes, [shape[0], 1]).astype("int64")
            xs = x.numpy()

            def run(api=api, xs=xs, y=y):
                api.train_batch([xs], [y])
        runners[case.key] = run
    return runners


def _predictor_runners(cases: Sequence[Case], threads: int, workdir: str):
    from .export import export_model
    from .inference import Predictor, PredictorOptions
    runners = {}
    exported: Dict[str, str] = {}
    for case in cases:
        fold = case.mode != "predictor_nofold"
        tag = f"{case.model}_{case.norm}_{case.ffn}_{case.size}_{'fold' if fold else 'nofold'}"
        if tag not in exported:
            model, shape = _build(case)
            model.eval()
            out = os.path.join(workdir, tag)
            export_model(model, out, shape[1:], {"preprocess": [], "class_names": []}, fold=fold)
            exported[tag] = out
        pred = Predictor(exported[tag], PredictorOptions(cpu_threads=threads, mkldnn=case.mode != "predictor_noonednn",
                                                         precision="bf16" if case.mode == "predictor_bf16" else "fp32"))
        x = np.random.RandomState(0).standard_normal([case.batch, *pred.input_size]).astype(np.float32)
        runners[case.key] = lambda pred=pred, x=x: pred.run(x)
    return runners


def worker(cases: Sequence[Case], kind: str, warmup: int, runs: int, threads: int) -> Dict[str, Dict[str, float]]:
    """Time ``cases`` (all dygraph or all predictor) interleaved round-robin in this process."""
    from tqdm import tqdm
    with tempfile.TemporaryDirectory() as tmp:
        runners = _dygraph_runners(cases) if kind == "dygraph" else _predictor_runners(cases, threads, tmp)
        for run in runners.values():
            for _ in range(warmup):
                run()
        times: Dict[str, List[float]] = {k: [] for k in runners}
        for _ in tqdm(range(runs), desc=f"{kind} rounds ({len(runners)} cases)", file=sys.stderr, leave=False):
            for key, run in runners.items():
                t0 = time.perf_counter()
                run()
                times[key].append(time.perf_counter() - t0)
    return {k: _percentiles(v) for k, v in times.items()}


def _spawn(cases: Sequence[Case], kind: str, warmup: int, runs: int, threads: int) -> Dict[str, Dict[str, float]]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    spec = json.dumps({"cases": [asdict(c) for c in cases], "kind": kind, "warmup": warmup, "runs": runs,
                       "threads": threads})
    res = subprocess.run([sys.executable, "-m", "edgevit_paddle.benchmark", "--worker"], input=spec, text=True,
                         capture_output=True, env=env, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if res.returncode != 0:
        raise RuntimeError(f"benchmark worker ({kind}) failed: {res.stderr.strip().splitlines()[-1:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _threads_per_process(threads: int, procs: int) -> int:
    return max(1, threads // procs)


def _spawn_data_parallel(cases: Sequence[Case], procs: int, warmup: int, runs: int,
                         threads: int) -> Dict[str, Dict[str, float]]:
    """Training cases data parallel over ``procs`` CPU processes under Paddle's launcher (gloo), the threads shared
    out among them; every step ends with the gradient all-reduce, so rank 0's step times are the group's."""
    per_proc = _threads_per_process(threads, procs)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, OMP_NUM_THREADS=str(per_proc), MKL_NUM_THREADS=str(per_proc),
               PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    with tempfile.TemporaryDirectory() as tmp:
        spec, out = os.path.join(tmp, "spec.json"), os.path.join(tmp, "out.json")
        with open(spec, "w") as f:
            json.dump({"cases": [asdict(c) for c in cases], "kind": "dygraph", "warmup": warmup, "runs": runs,
                       "threads": per_proc, "out": out}, f)
        script = os.path.join(tmp, "dp_worker.py")
        with open(script, "w") as f:
            f.write("import sys\nfrom edgevit_paddle.benchmark import data_parallel_worker\n"
                    "data_parallel_worker(sys.argv[1])\n")
        res = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(procs),
                              "--log_dir", os.path.join(tmp, "log"), script, spec], capture_output=True, text=True,
                             env=env, cwd=tmp)
        if res.returncode != 0 or not os.path.isfile(out):
            logs = ""
            for name in sorted(os.listdir(os.path.join(tmp, "log"))) if os.path.isdir(os.path.join(tmp, "log")) else []:
                with open(os.path.join(tmp, "log", name), errors="replace") as f:
                    logs += f.read()
            lines = [ln for ln in (logs or res.stderr).strip().splitlines() if "Error" in ln] or [res.stderr[-300:]]
            raise RuntimeError(f"data-parallel benchmark worker ({procs} processes) failed: {lines[-1]}")
        with open(out) as f:
            return json.load(f)


def data_parallel_worker(spec_path: str) -> None:
    """One process of ``_spawn_data_parallel``: join the group, time the cases, rank 0 writes the result."""
    import warnings
    warnings.filterwarnings("ignore")
    import paddle
    import paddle.distributed as dist
    with open(spec_path) as f:
        spec = json.load(f)
    dist.init_parallel_env()
    paddle.base.core.set_num_threads(spec["threads"])
    result = worker([Case(**c) for c in spec["cases"]], spec["kind"], spec["warmup"], spec["runs"], spec["threads"])
    if dist.get_rank() == 0:
        with open(spec["out"], "w") as f:
            json.dump(result, f)


def run_benchmark(cases: Sequence[Case], warmup: int = 3, runs: int = 30, threads: int = 2,
                  log=print) -> List[Dict[str, Any]]:
    """Measure every case (dygraph, then predictor, then training, each kind in its own process) and return rows."""
    from .complexity import count_macs, count_params
    groups = {"dygraph": [c for c in cases if c.mode == "eval"],
              "predictor": [c for c in cases if c.mode.startswith("predictor")],
              "train": [c for c in cases if c.mode == "train" and c.procs == 1]}
    timings: Dict[str, Dict[str, float]] = {}
    for kind, group in groups.items():
        if group:
            log(f"timing {len(group)} {kind} case(s): {warmup} warm-up + {runs} runs each, interleaved, "
                f"{threads} thread(s)")
            timings.update(_spawn(group, "dygraph" if kind == "train" else kind, warmup, runs, threads))
    for procs in sorted({c.procs for c in cases if c.procs > 1}):
        group = [c for c in cases if c.procs == procs]
        log(f"timing {len(group)} train case(s) data parallel over {procs} processes, "
            f"{_threads_per_process(threads, procs)} thread(s) each: {warmup} warm-up + {runs} runs each, interleaved")
        timings.update(_spawn_data_parallel(group, procs, warmup, runs, threads))
    rows, stats = [], {}
    for case in cases:
        skey = (case.model, case.norm, case.ffn, case.size)
        if skey not in stats:
            model, shape = _build(case)
            stats[skey] = (count_params(model), count_macs(model, [1, *shape[1:]]) / 1e9,
                           getattr(model, "norm_name", None), getattr(model, "ffn_name", None))
        t = timings[case.key]
        variant = {"norm": case.norm or stats[skey][2], "ffn": case.ffn or stats[skey][3]}
        rows.append({**asdict(case), **variant, "params": stats[skey][0], "gmacs": round(stats[skey][1], 4),
                     "median_ms": round(t["median_ms"], 3), "p10_ms": round(t["p10_ms"], 3),
                     "p90_ms": round(t["p90_ms"], 3), "images_per_sec": round(case.batch * 1000 / t["median_ms"], 2),
                     "runs": t["runs"], "threads": _threads_per_process(threads, case.procs)})
    return rows


def add_ratios(rows: List[Dict[str, Any]], baseline: Dict[str, Any]) -> None:
    """``speedup`` = the baseline's median / this row's, at the same batch, size, mode and number of processes
    (except what the baseline selects). A baseline naming a variant (``model``/``norm``/``ffn``) compares every
    variant with it; one that does not (e.g. ``{"procs": 1}``) compares each variant with itself.

    ``baseline`` selects the reference rows, e.g. ``{"norm": "ln", "ffn": "linear"}`` or ``{"model": "vit_mnist"}``.
    """
    variant = ["model", "norm", "ffn"]
    fields = [f for f in ["batch", "size", "mode", "procs"] if f not in baseline]
    if not any(f in baseline for f in variant):  # e.g. procs=1: compare each variant with itself
        fields += variant

    def key(r):
        return tuple(int(r.get(f) or 1) if f == "procs" else r[f] for f in fields)

    base = {key(r): r["median_ms"] for r in rows if all(str(r.get(k)) == str(v) for k, v in baseline.items())}
    for r in rows:
        ref = base.get(key(r))
        r["speedup"] = round(ref / r["median_ms"], 3) if ref else None


def write_results(rows: List[Dict[str, Any]], out_dir: str, machine: Dict[str, Any]) -> Dict[str, str]:
    """``results.csv``, ``results.md``, ``machine.json`` and plots in ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    cols = COLUMNS + [k for k in rows[0] if k not in COLUMNS] if rows else COLUMNS
    paths = {"csv": os.path.join(out_dir, "results.csv"), "md": os.path.join(out_dir, "results.md"),
             "machine": os.path.join(out_dir, "machine.json")}
    with open(paths["csv"], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    with open(paths["machine"], "w") as f:
        json.dump(machine, f, indent=2)
    with open(paths["md"], "w") as f:
        f.write(markdown_table(rows, machine) + "\n")
    paths.update(plot_results(rows, out_dir))
    return paths


def markdown_table(rows: List[Dict[str, Any]], machine: Dict[str, Any]) -> str:
    head = (f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['threads']} thread(s), Paddle "
            f"{machine['paddle']}, {machine['date']}. Median of {rows[0]['runs'] if rows else 0} runs after warm-up "
            "(p10-p90 in brackets), cases interleaved.\n\n")
    extra = "speedup" in (rows[0] if rows else {})
    lines = ["| model | norm | ffn | mode | batch | size | ms / batch | images/s |" + (" speedup |" if extra else ""),
             "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |" + (" ---: |" if extra else "")]
    for r in rows:
        mode = r["mode"] + (f" x{r['procs']} procs" if int(r.get("procs") or 1) > 1 else "")
        line = (f"| {r['model']} | {r['norm'] or '-'} | {r['ffn'] or '-'} | {mode} | {r['batch']} | {r['size']} | "
                f"{r['median_ms']:.1f} [{r['p10_ms']:.1f}-{r['p90_ms']:.1f}] | {r['images_per_sec']:.1f} |")
        if extra:
            line += f" {r['speedup']:.2f}x |" if r.get("speedup") else " - |"
        lines.append(line)
    return head + "\n".join(lines)


def _label(r: Dict[str, Any]) -> str:
    procs = int(r.get("procs") or 1)
    return r["model"] + (f" {r['norm']}/{r['ffn']}" if r["norm"] else "") + (f" x{procs} procs" if procs > 1 else "")


def plot_results(rows: List[Dict[str, Any]], out_dir: str) -> Dict[str, str]:
    """Latency vs batch size per variant and mode, and throughput bars at the largest batch."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out = {}
    modes = [m for m in MODES if any(r["mode"] == m for r in rows)]
    fig, axes = plt.subplots(1, len(modes), figsize=(5 * len(modes), 4), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        for label in sorted({_label(r) for r in rows if r["mode"] == mode}):
            pts = sorted((r["batch"], r["median_ms"]) for r in rows if r["mode"] == mode and _label(r) == label)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        ax.set_title(f"{mode}: latency vs batch")
        ax.set_xlabel("batch size")
        ax.set_ylabel("ms per batch (median)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    out["latency_png"] = os.path.join(out_dir, "latency_vs_batch.png")
    fig.savefig(out["latency_png"], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(rows)), 4))
    top = max(r["batch"] for r in rows)
    sel = [r for r in rows if r["batch"] == top]
    ax.bar(range(len(sel)), [r["images_per_sec"] for r in sel])
    ax.set_xticks(range(len(sel)))
    ax.set_xticklabels([f"{_label(r)}\n{r['mode']}" for r in sel], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel(f"images/s at batch {top}")
    ax.set_title("throughput")
    fig.tight_layout()
    out["throughput_png"] = os.path.join(out_dir, "throughput.png")
    fig.savefig(out["throughput_png"], dpi=110)
    plt.close(fig)
    return out


def plot_curves(run_dirs: Sequence[str], out_png: str, metric: str = "acc_top1") -> str:
    """Eval accuracy vs epoch for training runs (their ``metrics.json``), one line per run."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for run in run_dirs:
        with open(os.path.join(run, "metrics.json")) as f:
            hist = json.load(f)["history"]
        pts = [(h["epoch"], h["eval"][metric]) for h in hist if h["eval"].get(metric) is not None]
        ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], marker="o", label=os.path.basename(run.rstrip("/")))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"eval {metric} (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


if __name__ == "__main__" and "--worker" in sys.argv:
    import warnings
    warnings.filterwarnings("ignore")
    spec = json.loads(sys.stdin.read())
    result = worker([Case(**c) for c in spec["cases"]], spec["kind"], spec["warmup"], spec["runs"], spec["threads"])
    print(json.dumps(result))
