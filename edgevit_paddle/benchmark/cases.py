"""What to time: a ``Case`` is a registered model and variant at a batch size, input size and mode."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from ..errors import BenchmarkError
from ..inference import backends
from ..model_cfg import ModelCfg
from ..registry import create_model, list_models


def deploy_modes() -> Dict[str, Dict[str, Any]]:
    """The exported-model modes, read off the backend table: how each is exported (BatchNorms folded or not) and run
    (backend, precision, options)."""
    return backends.benchmark_modes()


def modes() -> tuple:
    """Every mode: dygraph ``eval``, the deploy modes, ``train``."""
    return ("eval", *deploy_modes(), "train")


@dataclass
class Case:
    """One thing to time. ``variant``: the model's switches (e.g. ``{"norm": "gn", "ffn": "conv"}``; empty for the
    preset). ``procs`` > 1 (train mode only): data parallel over that many CPU processes, ``batch`` being the global
    batch split among them."""

    model: str
    batch: int
    size: int
    mode: str
    variant: Dict[str, Any] = field(default_factory=dict)
    procs: int = 1

    @property
    def key(self) -> str:
        variant = ",".join(f"{k}={v}" for k, v in sorted(self.variant.items()))
        return f"{self.model}|{variant}|{self.batch}|{self.size}|{self.mode}|{self.procs}"


def parse_variants(text: str, cfg: ModelCfg) -> List[Dict[str, Any]]:
    """The variants of a model (its ``default_cfg.switches``) that ``--variants`` names: ``default`` (the preset's),
    ``all`` (every combination), or values in the order of the switches, e.g. ``gn-conv,ln-linear`` for EdgeViT's
    norm and ffn. A family without switches has only its preset."""
    switches = cfg.switches
    if text == "default" or not switches:
        return [{}]
    if text == "all":
        return list(cfg.variants())
    names = list(switches)
    out = []
    for item in text.split(","):
        values = item.split("-")
        if len(values) != len(names) or any(v not in switches[n] for n, v in zip(names, values)):
            example = ",".join("-".join(str(switches[n][i % len(switches[n])]) for n in names) for i in range(2))
            raise BenchmarkError(f"--variants '{text}': give {'-'.join(names)} values such as {example}, or all "
                                 f"(choices: {'; '.join(f'{n}: ' + ', '.join(map(str, switches[n])) for n in names)})")
        out.append(dict(zip(names, values)))
    return out


def build_cases(models: Sequence[str], variants: str, batch_sizes: Sequence[int], sizes: Optional[Sequence[int]],
                wanted_modes: Sequence[str], train_batch: Optional[int] = None, quick: bool = False,
                train_procs: Sequence[int] = (1,)) -> List[Case]:
    """Every model x variant x size x mode x batch (train mode at ``train_batch``, default the largest batch, once
    per entry of ``train_procs``). Sizes default to each model's ``default_cfg`` (``quick``: its small size).

    What this machine cannot run is refused here, before any worker starts."""
    unknown = [m for m in models if m not in list_models()]
    if unknown:
        raise BenchmarkError(f"unknown model(s) {', '.join(unknown)}; registered: {', '.join(list_models())}")
    if any(b < 1 for b in batch_sizes):
        raise BenchmarkError("--batch-sizes must be >= 1")
    if any(p < 1 for p in train_procs):
        raise BenchmarkError("--train-procs must be >= 1")
    bad = [m for m in wanted_modes if m not in modes()]
    if bad:
        raise BenchmarkError(f"unknown mode(s) {', '.join(bad)}; valid: {', '.join(modes())}")
    for mode in wanted_modes:
        why = deploy_problem(mode)
        if why:
            raise BenchmarkError(f"mode {mode}: {why}; drop it from --modes")
    cases = []
    for name in models:
        cfg = create_model(name).default_cfg
        for variant in parse_variants(variants, cfg):
            for size in sizes or [cfg.small_size() if quick else cfg.input_size[1]]:
                if size % cfg.stride:
                    raise BenchmarkError(f"size {size} is not valid for {name}: use a multiple of {cfg.stride}")
                for mode in wanted_modes:
                    if mode != "train":
                        cases += [Case(name, b, size, mode, variant) for b in batch_sizes]
                        continue
                    batch = train_batch or max(batch_sizes)
                    for procs in train_procs:
                        if batch % procs:
                            raise BenchmarkError(f"train batch {batch} does not split evenly over {procs} processes: "
                                                 "choose --train-batch divisible by every --train-procs")
                        cases.append(Case(name, batch, size, mode, variant, procs))
    return cases


def deploy_options(mode: str, threads: int):
    """The ``PredictorOptions`` a deploy mode runs with."""
    from ..inference import PredictorOptions
    settings = {k: v for k, v in deploy_modes()[mode].items() if k != "fold"}
    return PredictorOptions(cpu_threads=threads, **settings)


def deploy_problem(mode: str):
    """Why this machine cannot run a deploy mode (its backend's option check, e.g. bf16 on a CPU without
    AVX512-BF16, or its library missing), or None."""
    if mode not in deploy_modes():
        return None
    backend = backends.get(deploy_modes()[mode]["backend"])
    if not backend.available():
        return f"the {backend.name} backend is not installed (pip install {backend.package})"
    return backend.option_problem(deploy_options(mode, 1))


def reads_beyond_paddle(mode: str) -> bool:
    """Whether a deploy mode's backend reads a file converted from the Paddle files (ONNX, MNN, ncnn: the export must
    write every format)."""
    settings = deploy_modes()[mode]
    roles = backends.get(settings["backend"]).files.get(settings["precision"], ())
    return any(not role.startswith("paddle") for alternatives in roles for role in alternatives)
