"""What a result row is: the case (model, batch, size, mode, processes), the model's variant (one column per switch of
its family, e.g. ``norm`` and ``ffn``) and the measurements."""
from __future__ import annotations

from typing import Any, Dict, List

#: the columns every row has, after ``model`` and the variant's columns
MEASURED = ["batch", "size", "mode", "procs", "params", "gmacs", "median_ms", "p10_ms", "p90_ms", "images_per_sec",
            "runs", "threads"]
COLUMNS = ["model", *MEASURED]


def variant_columns(rows: List[Dict[str, Any]]) -> List[str]:
    """The switches that appear in ``rows``, in order of appearance."""
    cols: List[str] = []
    for r in rows:
        cols += [k for k in r if k not in COLUMNS and k != "speedup" and k not in cols]
    return cols


def label(r: Dict[str, Any], cols: List[str]) -> str:
    """``edgevit_xxs gn/conv x2 procs``: the model, its variant's values and the number of processes."""
    values = "/".join(str(r[c]) for c in cols if r.get(c) is not None)
    procs = int(r.get("procs") or 1)
    return r["model"] + (f" {values}" if values else "") + (f" x{procs} procs" if procs > 1 else "")
