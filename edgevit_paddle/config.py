"""YAML configs: load, ``-o Section.key=value`` overrides, schema check (every key known, every type right) and dump.

Every problem is a ``ConfigError`` (a ``ValueError``) with one line naming the file, the key and the valid choices.
"""
from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from .data.datasets import DATASET_NAMES
from .data.transforms import check_transforms, output_size, with_sizes
from .errors import ConfigError, ModelError, did_you_mean
from .files import write_text_atomic
from .model_cfg import DEFAULT_CROP_PCT, ROUNDINGS
from .registry import model_entrypoint


@dataclass(frozen=True)
class Field:
    """One config key: accepted types, default, optional choices and bounds."""

    types: Tuple[type, ...]
    default: Any = None
    choices: Optional[Sequence[Any]] = None
    minimum: Optional[float] = None
    required: bool = False
    nullable: bool = False
    maximum: Optional[float] = None


def setting(types, default=None, choices=None, minimum=None, required=False, nullable=None, maximum=None) -> Field:
    """A config setting of ``types`` (one or a tuple); ``nullable`` defaults to whether the default is None."""
    types = types if isinstance(types, tuple) else (types,)
    return Field(types, default, choices, minimum, required, default is None if nullable is None else nullable,
                 maximum)


_SPLIT = {
    "split": setting(str, "train"),
    "batch_size": setting(int, 64, minimum=1),
    "transforms": setting(list, None),
    "shuffle": setting(bool, None),
    "max_samples": setting(int, None, minimum=1),
}

SCHEMA: Dict[str, Any] = {
    "Global": {
        "output_dir": setting(str, "output"),
        "run_name": setting(str, None),
        "device": setting(str, "cpu", choices=("cpu", "gpu")),
        "cpu_threads": setting(int, None, minimum=1),  # per process; default: the cores shared out among the processes
        "seed": setting(int, 42, minimum=0, maximum=2**31 - 1),  # NumPy's and Paddle's seeds both take it
        "epochs": setting(int, 10, minimum=1),
        "log_freq": setting(int, 10, minimum=1),
        "save_freq": setting(int, 1, minimum=1),
        "eval_freq": setting(int, 1, minimum=1),
        "keep_checkpoints": setting(int, 2, minimum=1),
        "use_visualdl": setting(bool, True),
        "sync_bn": setting(bool, True),
        "verbose": setting(int, 1, choices=(0, 1, 2)),
        # fine-tuning (pretrained.py): weights to start from; strict: every tensor but a resized head must fit;
        # any_variant: accept weights of another variant with the same shapes (e.g. GroupNorm into LayerNorm)
        "pretrained_model": setting(str, None),
        "pretrained_strict": setting(bool, True),
        "pretrained_any_variant": setting(bool, False),
    },
    # every other Model key is a create_model argument (model_arguments)
    "Model": {"name": setting(str, required=True), "freeze_stages": setting(int, 0, minimum=0), "__any__": True},
    "Data": {
        "dataset": setting(str, required=True, choices=DATASET_NAMES),
        "root": setting(str, None),
        "image_size": setting(int, 224, minimum=8),  # the size transforms that state none get (with_sizes)
        "crop_pct": setting(float, DEFAULT_CROP_PCT, minimum=0.01),  # a sizeless eval Resize: image_size / crop_pct
        # how Resize and CenterCrop round (model_cfg.ROUNDINGS): PaddleClas's, what deployed clients compute, or timm's
        "rounding": setting(str, ROUNDINGS[0], choices=ROUNDINGS),
        "channels": setting(int, 3, choices=(1, 3)),
        "num_workers": setting(int, 0, minimum=0),
        "split_seed": setting(int, 0),
        "train_fraction": setting(float, 0.8, minimum=0.0),
        "cache_dir": setting(str, None),
        "Train": {**_SPLIT,
                  "sampler": setting(str, "default", choices=("default", "repeated")),  # repeated: DeiT's RASampler
                  "repeats": setting(int, 3, minimum=1)},
        "Eval": {**_SPLIT, "split": setting(str, "test")},
    },
    "Optimizer": {
        "name": setting(str, "AdamW", choices=("Adam", "AdamW", "Momentum", "SGD")),
        "lr": setting(float, 1e-3, minimum=0.0),
        "lr_reference_batch": setting(int, None, minimum=1),  # lr is for this global batch: scaled by global batch / it
        "backbone_lr_mult": setting(float, 1.0, minimum=0.0),  # every parameter but the head's learns at lr x this
        "weight_decay": setting(float, 0.05, minimum=0.0),
        "decay_norm_and_bias": setting(bool, False),
        "momentum": setting(float, 0.9, minimum=0.0),
        "beta1": setting(float, 0.9, minimum=0.0),
        "beta2": setting(float, 0.999, minimum=0.0),
        "grad_clip": setting(float, None, minimum=0.0),
        "Scheduler": {
            # timm_cosine: the authors' (DeiT's) per-epoch cosine, warm-up inside it (engine/optim.py TimmCosineLR)
            "name": setting(str, "cosine", choices=("constant", "cosine", "step", "timm_cosine")),
            "warmup_epochs": setting(float, 0.0, minimum=0.0),
            "warmup_start_lr": setting(float, 0.0, minimum=0.0),
            "by_epoch": setting(bool, False),
            "min_lr": setting(float, 0.0, minimum=0.0),
            "step_epochs": setting(int, 30, minimum=1),
            "gamma": setting(float, 0.1, minimum=0.0),
        },
    },
    "Loss": {
        "name": setting(str, "CrossEntropy", choices=("CrossEntropy",)),
        "label_smoothing": setting(float, 0.0, minimum=0.0),
    },
    "Metric": {"topk": setting(list, [1, 5])},
    "Mixup": {  # batch Mixup/CutMix (timm's semantics); on when either alpha > 0
        "mixup_alpha": setting(float, 0.0, minimum=0.0),
        "cutmix_alpha": setting(float, 0.0, minimum=0.0),
        "prob": setting(float, 1.0, minimum=0.0),
        "switch_prob": setting(float, 0.5, minimum=0.0),
    },
    "EMA": {"decay": setting(float, None, minimum=0.0)},  # model EMA, evaluated and checkpointed beside the weights
    "AMP": {"level": setting(str, "O0", choices=("O0", "O1", "O2"))},
    "Export": {
        "image_size": setting(int, None, minimum=8),
        "output_dir": setting(str, None),
        "fold_bn": setting(bool, True),
        "paddlex_name": setting(str, None),  # inference.yml's Global.model_name (default: Model.name)
    },
    "Infer": {
        "topk": setting(int, 5, minimum=1),
        "label_file": setting(str, None),
    },
}


#: PaddleClas's names for what has another name here: a pointer, not an alias (one name per thing)
PADDLECLAS_NAMES = {
    "Global.checkpoints": "resume a run with tools/train.py --resume output/<run> (Global.keep_checkpoints is how "
                          "many are kept)",
    "Arch": "the model section is Model (Model.name, Model.num_classes, ...)",
    "Global.class_num": "the class count is Model.num_classes (or taken from the data)",
    "Global.print_batch_step": "it is Global.log_freq",
    "Global.save_interval": "it is Global.save_freq",
    "Global.eval_interval": "it is Global.eval_freq",
    "Global.eval_during_train": "evaluation runs every Global.eval_freq epochs",
    "Global.save_model_dir": "it is Global.output_dir",
}


class _ConfigLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that also refuses what a config never needs and an attacker would use: aliases (``*name``:
    a 1.6 KB file of them expands to gigabytes) and a key given twice (the second would win silently)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None, None, f"YAML aliases (*{event.anchor}) are not accepted in configs: write the value out",
                event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key '{key}' is given twice in one mapping: keep one", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(text: str) -> Any:
    """YAML text as Python values, through ``_ConfigLoader`` (raises ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=_ConfigLoader)


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters for a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_value(field: Field, value: Any, where: str, src: str) -> Any:
    if value is None:
        if field.required:
            raise ConfigError(f"{src}: '{where}' is required")
        if field.nullable or field.default is None:
            return None
        raise ConfigError(f"{src}: '{where}' must not be empty (default {field.default!r})")
    if float in field.types and isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if float in field.types and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, field.types) and not (isinstance(value, bool) and bool not in field.types)
    if not ok:
        names = " or ".join(t.__name__ for t in field.types)
        raise ConfigError(f"{src}: '{where}' must be {names}, got {type(value).__name__} {_short(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{src}: '{where}' is {value}: give a finite number")
    if field.choices is not None and value not in field.choices:
        raise ConfigError(f"{src}: '{where}' is {_short(value)}{did_you_mean(value, field.choices, cutoff=0.5)}; "
                          f"valid: {', '.join(map(str, field.choices))}")
    if field.minimum is not None and value < field.minimum:
        raise ConfigError(f"{src}: '{where}' must be >= {field.minimum}, got {value}")
    if field.maximum is not None and value > field.maximum:
        raise ConfigError(f"{src}: '{where}' must be <= {field.maximum}, got {value}")
    return value


def _validate(schema: Dict[str, Any], data: Dict[str, Any], prefix: str, src: str) -> Dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"{src}: '{prefix.rstrip('.') or 'the config'}' must be a mapping of keys, "
                          f"got {type(data).__name__}")
    free = schema.get("__any__", False)
    out = {}
    for key, value in data.items():
        where = f"{prefix}{key}"
        if key not in schema:
            if free:
                out[key] = value
                continue
            valid = [k for k in schema if k != "__any__"]
            if where in PADDLECLAS_NAMES:
                raise ConfigError(f"{src}: unknown key '{where}' (PaddleClas's name): {PADDLECLAS_NAMES[where]}")
            raise ConfigError(f"{src}: unknown key '{where}'{did_you_mean(key, valid, cutoff=0.5)}; valid keys"
                              f"{' in ' + prefix.rstrip('.') if prefix else ''}: {', '.join(valid)}")
        spec = schema[key]
        out[key] = _validate(spec, value or {}, where + ".", src) if isinstance(spec, dict) else \
            _check_value(spec, value, where, src)
    for key, spec in schema.items():
        if key == "__any__" or key in out:
            continue
        if isinstance(spec, dict):
            out[key] = _validate(spec, {}, f"{prefix}{key}.", src)
        elif spec.required:
            raise ConfigError(f"{src}: '{prefix}{key}' is required")
        else:
            out[key] = copy.deepcopy(spec.default)
    return out


def _parse_override(text: str) -> Tuple[List[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like Section.key=value, e.g. -o Optimizer.lr=0.0005")
    key, raw = text.split("=", 1)
    try:
        value = read_yaml(raw) if raw.strip() else None
    except yaml.constructor.ConstructorError as e:  # an alias: refused, not taken for a string
        raise ConfigError(f"override '{_short(text)}': {e.problem}") from None
    except yaml.YAMLError:
        value = raw
    return [p for p in key.strip().split(".") if p], value


def apply_overrides(data: Dict[str, Any], overrides: Sequence[str], src: str = "-o") -> Dict[str, Any]:
    """Set ``Section.key=value`` (dotted paths, list indices) on a raw config dict; values are YAML scalars."""
    data = copy.deepcopy(data)
    for text in overrides or []:
        path, value = _parse_override(text)
        if len(path) < 2:
            raise ConfigError(f"override '{text}' must name a section and a key, e.g. -o Global.epochs=5")
        node: Any = data
        for i, part in enumerate(path[:-1]):
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"override '{text}': '{part}' is not an index of the list at "
                                      f"'{'.'.join(path[:i])}' (0..{len(node) - 1})")
                node = node[int(part)]
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
        last = path[-1]
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise ConfigError(f"override '{text}': '{last}' is not an index of that list")
            node[int(last)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise ConfigError(f"override '{text}': '{'.'.join(path[:-1])}' is a value, not a section")
    return data


def validate(data: Dict[str, Any], src: str = "config") -> Dict[str, Any]:
    """Check every key and type against ``SCHEMA`` and fill defaults; returns the resolved config."""
    cfg = _validate(SCHEMA, data or {}, "", src)
    topk = cfg["Metric"]["topk"]
    if not topk or not all(isinstance(k, int) and k >= 1 for k in topk):
        raise ConfigError(f"{src}: 'Metric.topk' must be a list of positive integers, e.g. [1, 5]")
    try:
        model_entrypoint(cfg["Model"]["name"])  # an unknown name is named with the closest registered ones
    except ModelError as e:
        raise ConfigError(f"{src}: Model.name: {e}") from None
    for key in ("prob", "switch_prob"):
        if cfg["Mixup"][key] > 1:
            raise ConfigError(f"{src}: 'Mixup.{key}' is a probability: between 0 and 1, got {cfg['Mixup'][key]}")
    decay = cfg["EMA"]["decay"]
    if decay is not None and not 0 < decay < 1:
        raise ConfigError(f"{src}: 'EMA.decay' must be between 0 and 1 (exclusive), e.g. 0.9999, got {decay}; "
                          "leave it empty for no EMA")
    size = cfg["Data"]["image_size"]
    for split in ("Train", "Eval"):
        spec = cfg["Data"][split]["transforms"]
        check_transforms(spec, f"{src}: Data.{split}.transforms")
        spec = cfg["Data"][split]["transforms"] = with_sizes(spec, size, cfg["Data"]["crop_pct"],
                                                             cfg["Data"]["rounding"])
        out = output_size(spec)
        if out is not None and out != size:
            where = f"{out}x{out}" if out > 0 else "a non-square size"
            fix = f", or set Data.image_size={out}" if out > 0 else ""
            raise ConfigError(f"{src}: Data.{split}.transforms end at {where}, but Data.image_size is {size}: make "
                              f"the last crop or resize {size}{fix}")
    return cfg


def section_defaults(section: str) -> Dict[str, Any]:
    """The default values of one config section (e.g. ``"Optimizer"``), as a config without it would have them."""
    return _validate(SCHEMA[section], {}, f"{section}.", "defaults")


def load_config(path: Optional[str], overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """Read a YAML config, apply ``-o`` overrides and validate. ``path=None`` starts from an empty config."""
    data: Dict[str, Any] = {}
    src = path or "config"
    if path:
        if not os.path.isfile(path):
            raise ConfigError(f"config file '{path}' not found: give a path such as configs/quickstart.yaml")
        try:
            with open(path, encoding="utf-8") as f:
                data = read_yaml(f.read())
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}): save the config as UTF-8") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise ConfigError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a config is a mapping of sections (Global:, Model:, Data:, ...), but this "
                              f"file holds a {type(data).__name__}; see configs/quickstart.yaml")
    cfg = validate(apply_overrides(data, overrides), src)
    cfg["__source__"] = path
    return cfg


def dump_config(cfg: Dict[str, Any], path: str) -> None:
    """Write the fully resolved config (what the run actually used) as YAML."""
    clean = {k: v for k, v in cfg.items() if not k.startswith("__")}
    write_text_atomic(path, yaml.safe_dump(clean, sort_keys=False, default_flow_style=None))


def model_arguments(model_section: Dict[str, Any]) -> Dict[str, Any]:
    """The ``create_model`` arguments of a config's ``Model`` section: every key but the schema's own settings."""
    own = {k for k in SCHEMA["Model"] if not k.startswith("__")}
    return {k: v for k, v in model_section.items() if k not in own}
