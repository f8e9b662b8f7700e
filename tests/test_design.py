"""The package's structure: a new model family gets folding, FLOP counting, benchmark and export from its own file;
weights of another variant are refused everywhere; no import cycles, deployment code apart from training code; only
user errors become one-line errors."""
import ast
import contextlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import paddle
import paddle.nn as nn
import pytest
import yaml
from conftest import ROOT, randomise_bn

import edgevit_paddle as ep
from edgevit_paddle import registry
from edgevit_paddle.benchmark import build_cases
from edgevit_paddle.benchmark import runner as bench_runner
from edgevit_paddle.benchmark import workers as bench_workers
from edgevit_paddle.builder import build_model_from_config
from edgevit_paddle.complexity import count_macs
from edgevit_paddle.engine.checkpoint import save_checkpoint
from edgevit_paddle.errors import BenchmarkError, WeightsError
from edgevit_paddle.export import export_registered, fold_batchnorm, remaining_batchnorms
from edgevit_paddle.inference import Predictor
from edgevit_paddle.models.base import Classifier
from edgevit_paddle.weights import model_identity

PACKAGE = os.path.join(ROOT, "edgevit_paddle")


# ------------------------------------------------------------------ a throwaway family, as its own model file would be

class Double(nn.Layer):
    """A parameter-free leaf layer paddle.flops does not know: it declares its own count."""

    def forward(self, x):
        return x * 2.0

    def count_macs(self, inputs, output) -> int:
        return int(inputs[0].numel())


class Block(nn.Layer):
    """Named like ViT's block on purpose: only what this class declares is folded (no rules keyed by class names)."""

    bn_folds = (("bn", "conv", "out"), ("pre", "pw", "in"))

    def __init__(self, dim, act):
        super().__init__()
        self.conv = nn.Conv2D(dim, dim, 3, padding=1, bias_attr=False)
        self.bn = nn.BatchNorm2D(dim)
        self.act = nn.ReLU() if act == "relu" else nn.GELU()
        self.pre = nn.BatchNorm2D(dim)
        self.pw = nn.Conv2D(dim, dim, 1)
        self.twice = Double()

    def forward(self, x):
        x = x + self.act(self.bn(self.conv(x)))
        return self.twice(self.pw(self.pre(x)))


class ToyNet(Classifier):
    family = "toynet"
    switches = {"act": ("relu", "gelu")}
    stride = 4
    bn_folds = (("norm", "head", "in"),)

    def __init__(self, width=8, in_chans=3, num_classes=5, act="relu", drop_rate=0.0):
        super().__init__()
        self.check_class_and_channel_counts(num_classes, in_chans)
        self.in_chans, self.num_classes, self.num_features = in_chans, num_classes, width
        self.variant = {"act": act}
        self.stem = nn.Conv2D(in_chans, width, 4, stride=4)
        self.block = Block(width, act)
        self.norm = nn.BatchNorm2D(width)
        self.head = nn.Linear(width, num_classes)

    def forward_features(self, x):
        return self.norm(self.block(self.stem(x)))

    def forward_head(self, x, pre_logits=False):
        x = x.mean(axis=[2, 3])
        return x if pre_logits else self.head(x)


default_cfgs = {"toynet_test": dict(input_size=(3, 32, 32), crop_pct=1.0)}


@pytest.fixture
def toynet():
    def toynet_test(**kwargs):
        return registry.build_model(ToyNet, "toynet_test", dict(width=8), kwargs)
    toynet_test.__module__ = __name__
    registry.register_model(toynet_test)
    try:
        yield "toynet_test"
    finally:
        registry.unregister_model("toynet_test")


def test_a_new_family_gets_metadata_folding_flops_benchmark_and_export(toynet, tmp_path):
    model = randomise_bn(ep.create_model(toynet, act="gelu"))
    cfg = model.default_cfg
    assert (cfg.name, cfg.family, cfg.input_size, cfg.stride, cfg.crop_pct) == (toynet, "toynet", (3, 32, 32), 4, 1.0)
    assert cfg.variant == {"act": "gelu"} and list(cfg.variants()) == [{"act": "relu"}, {"act": "gelu"}]
    assert cfg.arch == {"width": 8, "in_chans": 3, "act": "gelu"}  # dropout is not part of what the weights are

    # folding: exactly what the family declares, exact
    model.eval()
    x = paddle.randn([2, 3, 32, 32])
    folded = fold_batchnorm(model)
    assert sorted(folded.folded_bn) == ["block.bn", "block.pre", "norm"] and remaining_batchnorms(folded) == []
    np.testing.assert_allclose(folded(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)

    # FLOPs: the new leaf layer's own count is added to what paddle.flops knows
    with contextlib.redirect_stdout(io.StringIO()):
        paddle_only = paddle.flops(model, [1, 3, 32, 32])
    assert count_macs(model, [1, 3, 32, 32]) - paddle_only == 8 * 8 * 8  # Double: one op per element of [1, 8, 8, 8]

    # benchmark: every variant of its switches, timed in dygraph (eval, training) and through the predictor
    cases = build_cases([toynet], "all", [1, 2], None, ["eval", "predictor", "train"])
    assert {c.variant["act"] for c in cases} == {"relu", "gelu"} and {c.size for c in cases} == {32}
    dygraph = bench_workers.time_cases([c for c in cases if c.mode != "predictor"], "dygraph", 0, 1, 1)
    predictor = bench_workers.time_cases([c for c in cases if c.mode == "predictor"], "predictor", 0, 1, 1)
    assert len(dygraph) + len(predictor) == len(cases) == 10
    assert {**dygraph, **predictor}.keys() == {c.key for c in cases}  # every case ran, once (runs=1), no time asserted
    assert all(t["runs"] == 1 and np.isfinite(t["median_ms"]) for t in [*dygraph.values(), *predictor.values()])

    # export: its own preprocessing and variant in the sidecar, the predictor equal to dygraph
    out = str(tmp_path / "inf")
    export_registered(toynet, out, act="gelu")
    meta = yaml.safe_load(open(os.path.join(out, "inference.yml")))
    assert meta["model"] == toynet and meta["variant"] == {"act": "gelu"} and meta["stride"] == 4
    # (a model's own preprocessing resizes as timm's create_transform does: PIL, antialiased)
    assert meta["preprocess"][:2] == [{"resize": {"size": 32, "interpolation": "bilinear", "antialias": True}},
                                      {"center_crop": {"size": 32}}]
    net = ep.create_model(toynet, act="gelu")
    paddle.save(net.state_dict(), str(tmp_path / "w.pdparams"))
    pred = Predictor(out)
    xs = np.random.RandomState(1).randn(3, 3, 32, 32).astype("float32")
    assert pred.run(xs).shape == (3, 5)


def test_the_registry_needs_a_default_cfg_and_checks_arguments(toynet):
    def orphan(**kwargs):
        return ToyNet(**kwargs)
    with pytest.raises(ValueError, match="no entry in default_cfgs"):
        registry.register_model(orphan)
    with pytest.raises(ep.errors.ModelError, match="unknown argument 'widht' .*did you mean 'width'"):
        ep.create_model(toynet, widht=4)
    # a subclass that passes **kwargs on takes its base's arguments (ViTBN is built this way)
    assert "img_size" in registry.constructor_params(ep.ViTBN) and "norm" in registry.constructor_params(ep.ViTBN)


# ------------------------------------------------------------------ weights of another variant are refused

def quickstart(tmp_path, *overrides):
    from edgevit_paddle.config import load_config
    return load_config(os.path.join(ROOT, "configs", "quickstart.yaml"), [f"Global.output_dir={tmp_path}",
                                                                         *overrides])


def test_export_refuses_another_variants_weights(tmp_path):
    cfg = quickstart(tmp_path)
    net = build_model_from_config(cfg, num_classes=10)  # gn/conv, as the quickstart trains it
    ckpt = tmp_path / "run" / "checkpoints"
    prefix = save_checkpoint(str(ckpt), "best", net, None, {"identity": model_identity(net)})
    (tmp_path / "run" / "labels.txt").write_text("\n".join(map(str, range(10))) + "\n")
    config = os.path.join(ROOT, "configs", "quickstart.yaml")
    tool = [sys.executable, os.path.join(ROOT, "tools", "export.py"), "-c", config, "--weights", prefix]

    res = subprocess.run(tool + ["--out", str(tmp_path / "ok")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    # gn and ln weights have the same keys and shapes: only the identity saved beside them tells them apart
    res = subprocess.run(tool + ["-o", "Model.norm=ln", "--out", str(tmp_path / "no")], capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("error: weights ") and "do not fit this config: Model.norm: 'gn' in the weights, 'ln' in " \
                                                  "the config" in line
    assert not (tmp_path / "no").exists()
    # the same check in the Python API, for every caller of the one builder
    with pytest.raises(WeightsError, match="Model.ffn: 'conv' in the weights, 'linear'"):
        build_model_from_config(quickstart(tmp_path, "Model.ffn=linear"), weights=prefix)
    with pytest.raises(WeightsError, match="Model.num_classes: 10 in the weights, 3"):
        build_model_from_config(cfg, num_classes=3, weights=prefix)


def test_old_checkpoints_name_their_model_section(tmp_path):
    cfg = quickstart(tmp_path)
    net = build_model_from_config(cfg, num_classes=10)
    prefix = save_checkpoint(str(tmp_path), "old", net, None, {"model": {"name": "edgevit_xxs", "norm": "ln"}})
    assert "identity" not in json.loads(open(prefix + ".json").read())
    with pytest.raises(WeightsError, match="Model.norm: 'ln' in the weights, 'gn' in the config"):
        build_model_from_config(cfg, weights=prefix)


# ------------------------------------------------------------------ imports

def _imports():
    """{module: set of package modules it imports anywhere (top level or inside functions)}."""
    graph = {}
    modules = set()
    for dirpath, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, f), ROOT)[:-3].replace(os.sep, ".")
                modules.add(rel[: -len(".__init__")] if f == "__init__.py" else rel)
    for dirpath, _, files in os.walk(PACKAGE):
        for f in files:
            if not f.endswith(".py"):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
            is_pkg = f == "__init__.py"
            name = rel[: -len(".__init__")] if is_pkg else rel
            base = name if is_pkg else name.rsplit(".", 1)[0]
            deps = set()
            for node in ast.walk(ast.parse(open(path).read())):
                if isinstance(node, ast.ImportFrom):
                    if node.level:
                        parts = base.split(".")
                        mod = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
                    else:
                        mod = node.module or ""
                    # ``from pkg import module`` needs that module; ``from module import name`` needs the module
                    subs = {f"{mod}.{alias.name}" for alias in node.names}
                    deps |= subs if subs <= modules else {mod}
                elif isinstance(node, ast.Import):
                    deps.update(a.name for a in node.names)
            graph[name] = deps
    return {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}


def test_no_import_cycles_and_inference_stands_alone():
    graph = _imports()
    assert "edgevit_paddle.inference.predictor" in graph and "edgevit_paddle.config" in graph

    def reach(start):
        seen, todo = set(), [start]
        while todo:
            for dep in graph[todo.pop()]:
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen

    cycles = sorted(m for m in graph if m in reach(m))
    assert cycles == [], f"import cycles through {cycles}"
    for module in (m for m in graph if m.startswith("edgevit_paddle.inference")):
        bad = sorted(d for d in reach(module) if d.startswith(("edgevit_paddle.data", "edgevit_paddle.engine")))
        assert bad == [], f"{module} imports training code: {bad}"


# ------------------------------------------------------------------ errors

def test_only_user_errors_become_one_line_errors(tmp_path):
    script = ("import sys\nfrom edgevit_paddle.cli import run\nfrom edgevit_paddle.errors import ConfigError\n"
              "def user(argv): raise ConfigError('bad key Global.x - use Global.epochs')\n"
              "def bug(argv): return {}['missing']\n"
              "run(user if sys.argv[1] == 'user' else bug)\n")
    (tmp_path / "t.py").write_text(script)
    res = subprocess.run([sys.executable, str(tmp_path / "t.py"), "user"], capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr == "error: bad key Global.x - use Global.epochs\n"
    res = subprocess.run([sys.executable, str(tmp_path / "t.py"), "bug"], capture_output=True, text=True)
    assert res.returncode == 1 and "Traceback" in res.stderr and "KeyError: 'missing'" in res.stderr


def test_benchmark_mode_errors_are_user_errors(monkeypatch):
    from edgevit_paddle.inference import paddle_backend
    monkeypatch.setattr(paddle_backend, "cpu_supports_bf16", lambda: False)
    with pytest.raises(BenchmarkError, match="mode predictor_bf16: this CPU has no AVX512-BF16/AMX"):
        build_cases(["vit_mnist"], "default", [1], None, ["predictor_bf16"])
    with pytest.raises(BenchmarkError, match="size 50 is not valid for edgevit_xxs: use a multiple of 32"):
        build_cases(["edgevit_xxs"], "default", [1], [50], ["eval"])
    # a worker's user error comes back as its one line; anything else with the worker's traceback
    err = bench_runner._worker_failed("w", bench_workers.USER_ERROR_EXIT, '{"error": "no GPU 3 visible"}', "")
    assert isinstance(err, BenchmarkError) and str(err) == "no GPU 3 visible"
    err = bench_runner._worker_failed("w", 1, "", "Traceback (most recent call last):\nKeyError: 'x'")
    assert isinstance(err, RuntimeError) and "KeyError: 'x'" in str(err)


def test_processes_started_by_tests_run_the_checkout(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT
    res = subprocess.run([sys.executable, "-c", "import edgevit_paddle; print(edgevit_paddle.__file__)"],
                         capture_output=True, text=True, cwd=str(tmp_path))
    assert res.returncode == 0 and os.path.dirname(os.path.dirname(res.stdout.strip())) == ROOT, res.stdout


def test_a_new_backend_is_one_class_and_one_line_in_the_table(tmp_path, monkeypatch):
    """A backend declared once (here: ONNX Runtime under another name, first for auto, with an option of its own)
    appears in the option checks, auto's choice, the CLI's choices and help, the benchmark's modes and groups, and is
    its own precision_agreement reference, with nothing else edited."""
    import argparse

    from edgevit_paddle.benchmark import cases as bench_cases
    from edgevit_paddle.cli import infer as infer_cli
    from edgevit_paddle.export import export_registered
    from edgevit_paddle.inference import Predictor, PredictorOptions, backends, check_options
    from edgevit_paddle.inference.onnx_backend import OnnxRuntimeBackend

    class Toy(OnnxRuntimeBackend):
        name, summary, rank, honours = "toy", "a test backend", {"cpu": 0}, ("ort_spin",)
        benchmark_group, benchmark_mode = "toy", "toy"

    monkeypatch.setattr(backends, "BACKENDS", (*backends.BACKENDS, Toy))
    assert "toy" in backends.choices() and "toy: a test backend" in backends.help_text()
    assert bench_cases.deploy_modes()["toy_int8"] == {"backend": "toy", "precision": "int8"}
    assert "toy" in bench_cases.modes()
    with pytest.raises(SystemExit), monkeypatch.context() as m:
        seen = {}
        m.setattr(argparse.ArgumentParser, "parse_args", lambda self, argv=None: seen.update(
            help=" ".join(self.format_help().split())) or sys.exit(0))
        infer_cli.main([])
    assert "{" + ",".join(backends.choices()) + "}" in seen["help"] and "toy: a test backend" in seen["help"]
    assert backends.choices()[-2:] == ("toy", "auto")
    with pytest.raises(ep.errors.PredictorError, match="precision bf16 is not available on cpu with --backend toy"):
        check_options(PredictorOptions(backend="toy", precision="bf16"))
    out = str(tmp_path / "m")
    export_registered("vit_mnist", out)
    assert Predictor(out).backend_name == "toy"  # auto: first by rank
    assert Predictor(out, PredictorOptions(ort_spin=True)).backend_name == "toy"
    with pytest.raises(ep.errors.PredictorError, match="--ort-spin is an option of onnxruntime and toy"):
        check_options(PredictorOptions(backend="openvino", ort_spin=True))
