"""Run cases in worker processes and collect one row per case (timings, parameters, GMACs, the machine)."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Sequence

from .. import cpu
from ..engine.process import training_env
from ..errors import BenchmarkError
from ..inference import backends
from . import workers
from .cases import Case, deploy_modes


def machine_info(threads: int) -> Dict[str, Any]:
    import paddle
    return {"cpu": cpu.model_name(), "isa": cpu.recorded_flags(), "cores": os.cpu_count(),
            "threads": threads, "paddle": paddle.__version__,
            "python": platform.python_version(), "mkl_debug_cpu_type": os.environ.get("MKL_DEBUG_CPU_TYPE"),
            "date": time.strftime("%Y-%m-%d %H:%M")}


def _worker_failed(what: str, returncode: int, stdout: str, stderr: str) -> Exception:
    """A worker's user error as one line; anything else with the worker's own traceback."""
    last = stdout.strip().splitlines()[-1:] if stdout.strip() else []
    if returncode == workers.USER_ERROR_EXIT and last:
        return BenchmarkError(json.loads(last[0])["error"])
    return RuntimeError(f"{what} failed (exit code {returncode}):\n{stderr.strip()[-4000:]}")


def _spawn(cases: Sequence[Case], kind: str, warmup: int, runs: int, threads: int) -> Dict[str, Dict[str, float]]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if kind == "dygraph":  # training steps run in the environment the training tool gives them
        env = training_env(env)
    res = subprocess.run([sys.executable, "-m", workers.__name__], input=workers.spec_json(
        cases, kind, warmup, runs, threads), text=True, capture_output=True, env=env)
    if res.returncode != 0:
        raise _worker_failed(f"benchmark worker ({kind})", res.returncode, res.stdout, res.stderr)
    return json.loads(res.stdout.strip().splitlines()[-1])


def threads_per_process(threads: int, procs: int) -> int:
    return max(1, threads // procs)


def _spawn_data_parallel(cases: Sequence[Case], procs: int, warmup: int, runs: int,
                         threads: int) -> Dict[str, Dict[str, float]]:
    """Training cases data parallel over ``procs`` CPU processes under Paddle's launcher (gloo), the threads shared
    out among them; every step ends with the gradient all-reduce, so rank 0's step times are the group's."""
    per_proc = threads_per_process(threads, procs)
    env = training_env(dict(os.environ, OMP_NUM_THREADS=str(per_proc), MKL_NUM_THREADS=str(per_proc)))
    with tempfile.TemporaryDirectory() as tmp:
        spec, out, log_dir = (os.path.join(tmp, n) for n in ("spec.json", "out.json", "log"))
        with open(spec, "w") as f:
            f.write(workers.spec_json(cases, "dygraph", warmup, runs, per_proc, out=out))
        res = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(procs),
                              "--log_dir", log_dir, workers.__file__, spec], capture_output=True, text=True,
                             env=env, cwd=tmp)
        if res.returncode != 0 or not os.path.isfile(out):
            logs = ""
            for name in sorted(os.listdir(log_dir)) if os.path.isdir(log_dir) else []:
                with open(os.path.join(log_dir, name), errors="replace") as f:
                    logs += f.read()
            errors = [ln for ln in logs.splitlines() if ln.startswith('{"error"')]
            raise _worker_failed(f"data-parallel benchmark worker ({procs} processes)",
                                 workers.USER_ERROR_EXIT if errors else res.returncode, "\n".join(errors),
                                 logs or res.stderr)
        with open(out) as f:
            return json.load(f)


def run_benchmark(cases: Sequence[Case], warmup: int = 3, runs: int = 30, threads: int = 2,
                  log=print) -> List[Dict[str, Any]]:
    """Measure every case (dygraph, then predictor, then training, each kind in its own process) and return rows:
    the case, the model's variant (every switch of its family), parameters, GMACs and timings."""
    from ..complexity import count_macs, count_params
    # each backend group in its own process (the table's ``benchmark_group``): oneDNN's OpenMP threads spin on after a
    # run and slowed ONNX Runtime in the same process
    deploy = deploy_modes()
    groups = {"dygraph": [c for c in cases if c.mode == "eval"]}
    for group in dict.fromkeys(b.benchmark_group for b in backends.BACKENDS):
        groups[group] = [c for c in cases if c.mode in deploy and
                         backends.get(deploy[c.mode]["backend"]).benchmark_group == group]
    groups["train"] = [c for c in cases if c.mode == "train" and c.procs == 1]
    timings: Dict[str, Dict[str, float]] = {}
    for kind, group in groups.items():
        if group:
            log(f"timing {len(group)} {kind} case(s): {warmup} warm-up + {runs} runs each, interleaved, "
                f"{threads} thread(s)")
            timings.update(_spawn(group, "dygraph" if kind == "train" else kind, warmup, runs, threads))
    for procs in sorted({c.procs for c in cases if c.procs > 1}):
        group = [c for c in cases if c.procs == procs]
        log(f"timing {len(group)} train case(s) data parallel over {procs} processes, "
            f"{threads_per_process(threads, procs)} thread(s) each: {warmup} warm-up + {runs} runs each, interleaved")
        timings.update(_spawn_data_parallel(group, procs, warmup, runs, threads))
    rows, stats = [], {}
    for case in cases:
        skey = Case(case.model, 1, case.size, "stats", case.variant).key
        if skey not in stats:
            net, shape = workers.build(case)
            stats[skey] = (count_params(net), count_macs(net, [1, *shape[1:]]) / 1e9, dict(net.default_cfg.variant))
        params, gmacs, variant = stats[skey]
        t = timings[case.key]
        rows.append({"model": case.model, **variant, "batch": case.batch, "size": case.size, "mode": case.mode,
                     "procs": case.procs, "params": params, "gmacs": round(gmacs, 4),
                     "median_ms": round(t["median_ms"], 3), "p10_ms": round(t["p10_ms"], 3),
                     "p90_ms": round(t["p90_ms"], 3), "images_per_sec": round(case.batch * 1000 / t["median_ms"], 2),
                     "runs": t["runs"], "threads": threads_per_process(threads, case.procs)})
    return rows
