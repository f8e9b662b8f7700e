"""What a training run has done: ``RunState`` (the schema of ``latest.json`` and of the state saved beside each
checkpoint, restored on resume) and ``metrics.json``, its summary."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from ..files import write_json_atomic


@dataclass
class RunState:
    """What a run has done so far; saved beside every checkpoint and restored on resume."""

    epochs_done: int = 0
    global_step: int = 0
    best_top1: float = -1.0
    best_epoch: int = 0
    best_from: str = ""  # "model" or "ema": which weights scored best_top1 (and are checkpoints/best)
    train_seconds: float = 0.0
    history: List[Dict[str, Any]] = field(default_factory=list)
    identity: Dict[str, Any] = field(default_factory=dict)  # what the weights are (weights.model_identity)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def record_epoch(self, epoch: int, train_logs: Dict[str, Any], eval_logs: Dict[str, Optional[float]]) -> bool:
        """Add epoch ``epoch``'s results; returns whether its raw or EMA top-1 is a new best."""
        self.epochs_done = epoch
        top1, ema_top1 = eval_logs.get("acc_top1"), eval_logs.get("ema_acc_top1")
        candidates = [(v, src) for v, src in ((top1, "model"), (ema_top1, "ema")) if v is not None]
        score, source = max(candidates, key=lambda c: c[0]) if candidates else (None, "")
        improved = score is not None and score > self.best_top1
        if improved:
            self.best_top1, self.best_epoch, self.best_from = score, epoch, source
        self.history.append({"epoch": epoch, "train": train_logs, "eval": eval_logs})
        return improved

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "RunState":
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def well_formed(cls, d: Dict[str, Any]) -> bool:
        """Whether ``d`` (a checkpoint's JSON) holds every field it has with the type this class gives it (a file
        edited or damaged by hand is treated as damaged, not met as a TypeError later)."""
        kinds = {"int": int, "float": (int, float), "str": str, "List[Dict[str, Any]]": list,
                 "Dict[str, Any]": dict}
        for name, f in cls.__dataclass_fields__.items():
            want = kinds.get(f.type if isinstance(f.type, str) else getattr(f.type, "__name__", ""))
            if name in d and want is not None and (not isinstance(d[name], want) or isinstance(d[name], bool)):
                return False
        return "epochs_done" in d and d["epochs_done"] >= 0


def write_metrics(run_dir: str, state: RunState, final: Optional[Dict[str, Optional[float]]] = None) -> Dict:
    """``metrics.json``: final/best top-1, final top-5, epochs done, training seconds and the per-epoch history."""
    evals = [h["eval"] for h in state.history if h["eval"].get("acc_top1") is not None]
    last = final or (evals[-1] if evals else {})
    metrics = {
        "final_top1": last.get("acc_top1"),
        "final_top5": last.get("acc_top5"),
        "final_loss": last.get("loss"),
        "best_top1": state.best_top1 if state.best_top1 >= 0 else None,
        "best_epoch": state.best_epoch or None,
        "best_from": state.best_from or None,
        "epochs_done": state.epochs_done,
        "train_seconds": round(state.train_seconds, 2),
        "global_step": state.global_step,
        "history": state.history,
    }
    write_json_atomic(metrics, os.path.join(run_dir, "metrics.json"))
    return metrics
