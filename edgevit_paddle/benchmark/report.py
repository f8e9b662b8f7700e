"""Benchmark rows (``rows.py``) as ratios, CSV, a Markdown table and ``machine.json``, with the plots (``plots.py``)."""
from __future__ import annotations

import csv
import json
import os
from typing import Any, Dict, List

from .plots import plot_results
from .rows import MEASURED, variant_columns


def add_ratios(rows: List[Dict[str, Any]], baseline: Dict[str, Any]) -> None:
    """``speedup`` = the baseline's median / this row's, at the same batch, size, mode and number of processes
    (except what the baseline selects). A baseline naming a variant (``model`` or a switch) compares every variant
    with it; one that does not (e.g. ``{"procs": 1}``) compares each variant with itself.

    ``baseline`` selects the reference rows, e.g. ``{"norm": "ln", "ffn": "linear"}`` or ``{"model": "vit_mnist"}``.
    """
    variant = ["model", *variant_columns(rows)]
    fields = [f for f in ["batch", "size", "mode", "procs"] if f not in baseline]
    if not any(f in baseline for f in variant):  # e.g. procs=1: compare each variant with itself
        fields += variant

    def key(r):
        return tuple(int(r.get(f) or 1) if f == "procs" else r.get(f) for f in fields)

    base = {key(r): r["median_ms"] for r in rows if all(str(r.get(k)) == str(v) for k, v in baseline.items())}
    for r in rows:
        ref = base.get(key(r))
        r["speedup"] = round(ref / r["median_ms"], 3) if ref else None


def write_results(rows: List[Dict[str, Any]], out_dir: str, machine: Dict[str, Any]) -> Dict[str, str]:
    """``results.csv``, ``results.md``, ``machine.json`` and plots in ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    cols = ["model", *variant_columns(rows), *MEASURED] + (["speedup"] if rows and "speedup" in rows[0] else [])
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
    isa = ", ".join(machine.get("isa", [])) or "no AVX2"
    head = (f"Machine: {machine['cpu']} ({isa}), {machine['cores']} cores, {machine['threads']} thread(s), Paddle "
            f"{machine['paddle']}, {machine['date']}. Median of {rows[0]['runs'] if rows else 0} runs after warm-up "
            "(p10-p90 in brackets), cases interleaved.\n\n")
    extra = "speedup" in (rows[0] if rows else {})
    cols = variant_columns(rows)
    lines = ["| model | " + "".join(f"{c} | " for c in cols) + "mode | batch | size | ms / batch | images/s |"
             + (" speedup |" if extra else ""),
             "| --- | " + "--- | " * len(cols) + "--- | ---: | ---: | ---: | ---: |" + (" ---: |" if extra else "")]
    for r in rows:
        mode = r["mode"] + (f" x{r['procs']} procs" if int(r.get("procs") or 1) > 1 else "")
        line = (f"| {r['model']} | " + "".join(f"{r.get(c) or '-'} | " for c in cols) +
                f"{mode} | {r['batch']} | {r['size']} | "
                f"{r['median_ms']:.1f} [{r['p10_ms']:.1f}-{r['p90_ms']:.1f}] | {r['images_per_sec']:.1f} |")
        if extra:
            line += f" {r['speedup']:.2f}x |" if r.get("speedup") else " - |"
        lines.append(line)
    return head + "\n".join(lines)
