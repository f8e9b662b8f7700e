"""The mobile runtimes: every EdgeViT exports to MNN and ncnn at its default size and passes the export's checks; the
sampler is a pooling in the exported graph (ncnn has no strided slice); the backends' one-line errors."""
import os

import numpy as np
import onnx
import paddle
import paddle.nn.functional as F
import pytest

import edgevit_paddle as ep
from edgevit_paddle.errors import ExportError, PredictorError
from edgevit_paddle.export import edge, export_registered
from edgevit_paddle.inference import Predictor, PredictorOptions
from edgevit_paddle.layers.subsample import Subsample

EDGEVITS = [n for n in ep.list_models() if ep.create_model(n).default_cfg.family == "edgevit"]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    return {}


@pytest.mark.parametrize("name", EDGEVITS)
def test_every_edgevit_exports_to_mnn_and_ncnn_at_its_default_size(name, tmp_path, exports):
    """Converted from the ONNX file and checked against the Paddle predictor at export (probabilities within 1e-4,
    the same top-1 for every check image), at 224; the graph samples with a pooling, not a strided slice."""
    out = tmp_path / name
    res = export_registered(name, str(out))
    for fmt in ("mnn", "ncnn"):
        assert res["checks"][fmt]["max_abs_diff"] < 1e-4 and res["checks"][fmt]["top1_agreement"] == 1.0
    assert {"mnn", "ncnn_param", "ncnn_bin"} <= set(res["files"]) and not res["skipped"]
    graph = onnx.load(str(out / "inference.onnx")).graph
    ops = [n.op_type for n in graph.node]
    samplers = sum(1 for layer in ep.create_model(name).sublayers() if isinstance(layer, Subsample))
    assert ops.count("AveragePool") == samplers > 0 and "Slice" not in ops
    # GroupNorm (the default variant's): oneDNN's layer_norm for Paddle Inference, instance_norm for paddle2onnx
    program = (out / "inference.json").read_text()
    norms = sum(1 for layer in ep.create_model(name).sublayers() if type(layer).__name__.startswith("GroupNorm"))
    assert program.count('"1.layer_norm"') == norms > 0 and "instance_norm" not in program
    assert ops.count("InstanceNormalization") == norms and "LayerNormalization" not in ops
    assert [f for f in out.iterdir() if f.name.startswith(".")] == []  # no converter leftovers
    exports[name] = out


def test_the_sampler_picks_the_same_values_in_dygraph_and_in_a_program():
    """A strided slice in dygraph (training), a pooling with kernel 1 and stride r once traced: the same values at
    224, at a non-square size and at a small odd one."""
    for shape, r in (((1, 3, 224, 224), 4), ((2, 5, 64, 96), 2), ((1, 2, 7, 5), 4)):
        x = paddle.randn(shape)
        picked = Subsample(r)(x)
        assert picked.shape[2:] == [-(-shape[2] // r), -(-shape[3] // r)]
        np.testing.assert_array_equal(picked.numpy(), F.avg_pool2d(x, kernel_size=1, stride=r).numpy())
        program = paddle.jit.to_static(Subsample(r), full_graph=True)
        np.testing.assert_array_equal(program(x).numpy(), picked.numpy())


def test_mnn_takes_any_size_ncnn_only_the_exported_one(exports, tmp_path):
    model_dir = exports.get("edgevit_xxs")
    if model_dir is None:
        model_dir = tmp_path / "xxs"
        export_registered("edgevit_xxs", str(model_dir))
    x = np.random.RandomState(0).standard_normal([2, 3, 64, 96]).astype(np.float32)
    ref = Predictor(str(model_dir), PredictorOptions(backend="onnxruntime")).run(x)
    np.testing.assert_allclose(Predictor(str(model_dir), PredictorOptions(backend="mnn")).run(x), ref, atol=1e-5)
    ncnn = Predictor(str(model_dir), PredictorOptions(backend="ncnn"))
    with pytest.raises(PredictorError, match=r"the ncnn files take 224x224 inputs only .* got 64x96"):
        ncnn.run(x)
    x = np.random.RandomState(1).standard_normal([3, 3, 224, 224]).astype(np.float32)  # a batch, image by image
    np.testing.assert_allclose(ncnn.run(x), Predictor(str(model_dir), PredictorOptions(backend="onnxruntime")).run(x),
                               atol=1e-5)


def test_the_converters_work_in_folders_of_their_own(tmp_path, monkeypatch):
    """MNN's converter keeps the weights in ``./.__convert_external_data.bin`` while it works: two exports at once
    from one working directory swapped each other's weights (seen twice in the suite: 2e-3 and 0.53 off). Each
    converter now runs in a private folder inside the export, removed after."""
    seen = []
    real = edge._run

    def run(cmd, what, cwd=None):
        seen.append(cwd)
        real(cmd, what, cwd=cwd)
        assert os.listdir(cwd) == [] or what.startswith("pnnx")  # MNN's scratch file is gone when it is done
    monkeypatch.setattr(edge, "_run", run)
    monkeypatch.chdir(tmp_path)
    export_registered("edgevit_xxs", str(tmp_path / "out"), image_size=64)
    assert len(seen) == 2 and all(c and os.path.dirname(c).startswith(str(tmp_path / ".out.staging-")) for c in seen)
    assert os.listdir(tmp_path) == ["out"]  # nothing in the working directory


def test_a_missing_converter_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(edge, "available", lambda fmt: False)
    with pytest.raises(ExportError, match=r"--format ncnn needs ncnn and pnnx \(`pip install ncnn && pip install "
                                          r"--no-deps pnnx`"):
        export_registered("edgevit_xxs", str(tmp_path / "a"), formats="ncnn", image_size=64)
    res = export_registered("edgevit_xxs", str(tmp_path / "b"), image_size=64)  # all: the others, and why not these
    assert "mnn" not in res["files"] and len(res["skipped"]) == 2 and "--format mnn needs mnn" in res["skipped"][0]
