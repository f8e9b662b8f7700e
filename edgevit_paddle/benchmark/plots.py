"""Plots: benchmark latency and throughput (``plot_results``), and accuracy per epoch of training runs
(``plot_curves``). Matplotlib with the Agg backend: no display needed."""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Sequence

from .cases import modes as all_modes
from .rows import label, variant_columns


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_results(rows: List[Dict[str, Any]], out_dir: str) -> Dict[str, str]:
    """Latency vs batch size per variant and mode, and throughput bars at the largest batch."""
    plt = _pyplot()
    cols = variant_columns(rows)
    out = {}
    modes = [m for m in all_modes() if any(r["mode"] == m for r in rows)]
    fig, axes = plt.subplots(1, len(modes), figsize=(5 * len(modes), 4), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        for name in sorted({label(r, cols) for r in rows if r["mode"] == mode}):
            pts = sorted((r["batch"], r["median_ms"]) for r in rows if r["mode"] == mode and label(r, cols) == name)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
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
    ax.set_xticklabels([f"{label(r, cols)}\n{r['mode']}" for r in sel], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel(f"images/s at batch {top}")
    ax.set_title("throughput")
    fig.tight_layout()
    out["throughput_png"] = os.path.join(out_dir, "throughput.png")
    fig.savefig(out["throughput_png"], dpi=110)
    plt.close(fig)
    return out


def plot_curves(run_dirs: Sequence[str], out_png: str, metric: str = "acc_top1") -> str:
    """Eval accuracy vs epoch for training runs (their ``metrics.json``), one line per run."""
    plt = _pyplot()
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
