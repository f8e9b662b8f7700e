"""Deployment as a user meets it: a trained quickstart model exported (Paddle + ONNX + INT8) and run through both
backends on real, non-square photos and broken files; dynamic input sizes; NaN weights; damaged model files."""
import json
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest
import yaml
from conftest import ROOT, exported_output, flowers_jpegs

import edgevit_paddle as ep
from edgevit_paddle import cpu
from edgevit_paddle.config import load_config
from edgevit_paddle.engine import train
from edgevit_paddle.errors import ExportError, PredictorError
from edgevit_paddle.export import export_model
from edgevit_paddle.image import read_image
from edgevit_paddle.inference import Predictor, PredictorOptions, backends

#: one worker runs this module, so that its module fixtures (a trained run, its export) are built once
pytestmark = pytest.mark.xdist_group("test_deploy")

INFER = os.path.join(ROOT, "tools", "infer.py")
EXPORT = os.path.join(ROOT, "tools", "export.py")


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory):
    """The quickstart config, trained briefly (its own transforms: Resize(32) on the short side only)."""
    out = tmp_path_factory.mktemp("quick")
    paddle.seed(0)
    train(load_config(os.path.join(ROOT, "configs", "quickstart.yaml"),
                      [f"Global.output_dir={out}", "Global.epochs=2", "Global.verbose=0", "Data.Train.max_samples=256",
                       "Data.Eval.max_samples=64", "Data.Train.batch_size=32"]))
    return out / "quickstart"


@pytest.fixture(scope="module")
def quickstart_export(quickstart_run):
    res = subprocess.run([sys.executable, EXPORT, "-c", str(quickstart_run / "config.yaml"), "--weights",
                          str(quickstart_run / "checkpoints" / "best"), "--int8", "--calib-images", "32"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    return quickstart_run / "inference", res.stdout


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Four real Flowers-102 JPEGs (not square), a broken file and a truncated JPEG."""
    out = tmp_path_factory.mktemp("photos")
    flowers_jpegs(out)
    data = (out / "image_00002.jpg").read_bytes()
    (out / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (out / "broken.jpg").write_bytes(b"\x00not an image at all")
    return out


def test_export_writes_and_checks_every_format(quickstart_export):
    model_dir, stdout = quickstart_export
    for f in ("inference.json", "inference.pdiparams", "inference.yml", "inference.onnx", "inference_int8.onnx"):
        assert (model_dir / f).stat().st_size > 0, f
    assert stdout.count("checked: Paddle predictor vs dygraph") == 2  # the exported size and a second one
    assert "ONNX Runtime vs Paddle predictor" in stdout and "INT8 vs fp32 top-1 agreement" in stdout
    meta = yaml.safe_load((model_dir / "inference.yml").read_text())
    # the eval transform resizes the short side; the export adds the crop that makes every photo 32x32
    assert meta["preprocess"][:2] == [{"resize": {"size": 32, "interpolation": "bilinear"}},
                                      {"center_crop": {"size": 32}}]


@pytest.mark.parametrize("backend", ["paddle", "onnxruntime"])
def test_photos_through_both_backends(quickstart_export, photos, backend):
    model_dir, _ = quickstart_export
    res = subprocess.run([sys.executable, INFER, "--model-dir", str(model_dir), "--backend", backend, "--json",
                          "--batch-size", "4", str(photos)], capture_output=True, text=True)
    assert res.returncode == 3, res.stderr[-2000:]
    results = {os.path.basename(r["path"]): r for r in map(json.loads, res.stdout.strip().splitlines())}
    assert sorted(results) == ["broken.jpg", "image_00001.jpg", "image_00002.jpg", "image_00003.jpg",
                               "image_04000.jpg", "truncated.jpg"]
    classified = [r for r in results.values() if "topk" in r]
    assert len(classified) == 4 and all(len(r["topk"]) == 5 for r in classified)
    assert "truncated JPEG" in results["truncated.jpg"]["error"]
    assert "not a readable image" in results["broken.jpg"]["error"]
    assert "Traceback" not in res.stderr


def test_precision_auto_runs_the_fastest_precision_that_keeps_the_answers(quickstart_export, photos, monkeypatch):
    """The export measures each (backend, precision) on real eval images: top-1 agreement with that backend's fp32
    and the batch-1 time, in inference.yml. ``auto`` runs the fastest whose agreement reaches the bar, fp32 when none
    is recorded or passes, and says which; a given precision is kept."""
    from edgevit_paddle.inference.backends import choose_precision
    model_dir, stdout = quickstart_export
    meta = yaml.safe_load((model_dir / "inference.yml").read_text())
    rec = meta["precisions"]
    assert rec["images"] == 64 and "measured for --precision auto on 64 eval images" in stdout  # all there are
    pairs = {(e["backend"], e["precision"]) for e in rec["measured"]}
    assert {("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "fp32"), ("openvino", "int8"),
            ("paddle", "fp32")} <= pairs and not any(b in ("mnn", "ncnn") for b, _ in pairs)  # auto never runs those
    assert (("openvino", "bf16") in pairs) == cpu.has_bf16() == (("paddle", "bf16") in pairs)
    assert all(0 <= e["top1_agreement"] <= 1 and e["ms_batch1"] > 0 for e in rec["measured"])
    assert all(e["top1_agreement"] == 1 for e in rec["measured"] if e["precision"] == "fp32")

    def entry(backend, precision, agree, ms):
        return {"backend": backend, "precision": precision, "top1_agreement": agree, "ms_batch1": ms}
    fake = {"precisions": {"images": 100, "measured": [
        entry("openvino", "fp32", 1.0, 8.0), entry("openvino", "int8", 0.998, 5.0),
        entry("onnxruntime", "int8", 0.999, 4.0), entry("paddle", "fp32", 1.0, 20.0),
        entry("onnxruntime", "int8", "high", 1.0), {"backend": "nonsense"}, "not an entry"]}}
    opts, why = choose_precision(PredictorOptions(precision="auto"), fake, str(model_dir))
    assert (opts.backend, opts.precision) == ("onnxruntime", "int8") and "99.9% top-1 agreement" in why
    opts, _ = choose_precision(PredictorOptions(precision="auto", min_agreement=0.9985), fake, str(model_dir))
    assert (opts.backend, opts.precision) == ("onnxruntime", "int8")
    opts, _ = choose_precision(PredictorOptions(precision="auto", min_agreement=0.9995), fake, str(model_dir))
    assert (opts.backend, opts.precision) == ("openvino", "fp32")
    opts, _ = choose_precision(PredictorOptions(precision="auto", backend="openvino"), fake, str(model_dir))
    assert (opts.backend, opts.precision) == ("openvino", "int8")
    opts, _ = choose_precision(PredictorOptions(precision="auto", backend="paddle"), fake, str(model_dir))
    assert (opts.backend, opts.precision) == ("paddle", "fp32")
    opts, why = choose_precision(PredictorOptions(precision="auto"), {}, str(model_dir))
    assert (opts.backend, opts.precision) == ("auto", "fp32") and "no reduced precision recorded" in why
    assert choose_precision(PredictorOptions(precision="int8"), fake, str(model_dir)) == \
        (PredictorOptions(precision="int8"), None)
    from edgevit_paddle.inference.onnx_backend import OnnxRuntimeBackend
    monkeypatch.setattr(OnnxRuntimeBackend, "available", classmethod(lambda cls: False))  # not installed here
    opts, _ = choose_precision(PredictorOptions(precision="auto"), fake, str(model_dir))
    assert (opts.backend, opts.precision) == ("openvino", "int8")
    monkeypatch.undo()
    res = subprocess.run([sys.executable, INFER, "--model-dir", str(model_dir), str(photos / "image_00001.jpg")],
                         capture_output=True, text=True)
    pred = Predictor(str(model_dir), PredictorOptions(precision="auto"))
    assert res.returncode == 0 and f"running {pred.backend_name} at precision {pred.precision}: the fastest " \
        "recorded at export" in res.stderr, res.stderr[-2000:]
    res = subprocess.run([sys.executable, INFER, "--model-dir", str(model_dir), "--min-agreement", "150", "x.jpg"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "--min-agreement 150 is a percentage" in res.stderr


def test_backends_agree_and_auto_picks_the_fastest(quickstart_export, photos):
    model_dir, _ = quickstart_export
    paths = sorted(str(p) for p in photos.glob("image_*.jpg"))
    paddle_pred = Predictor(str(model_dir), PredictorOptions(backend="paddle", batch_size=4))
    assert Predictor(str(model_dir), PredictorOptions(batch_size=4)).backend_name == "openvino"  # fp32 on CPU
    assert Predictor(str(model_dir), PredictorOptions(ort_spin=True)).backend_name == "onnxruntime"
    auto = Predictor(str(model_dir), PredictorOptions(backend="onnxruntime", batch_size=4))
    x = np.stack([paddle_pred.preprocess(read_image(p)) for p in paths])
    assert x.shape == (4, 3, 32, 32)
    np.testing.assert_allclose(auto.run(x), paddle_pred.run(x), atol=1e-4)
    assert Predictor(str(model_dir), PredictorOptions(precision="int8")).backend_name == "openvino"
    int8 = Predictor(str(model_dir), PredictorOptions(backend="onnxruntime", precision="int8"))
    # INT8 agrees with fp32 on most real digits (loose: a two-epoch model on 32 calibration images)
    from edgevit_paddle.export.exporter import _eval_batches
    digits = np.concatenate(_eval_batches(load_config(str(model_dir.parent / "config.yaml")), "Eval", 64))
    agree = (int8.run(digits).argmax(1) == auto.run(digits).argmax(1)).mean()
    assert agree >= 0.7, agree
    # OpenVINO reads the same ONNX files: the same probabilities, and the INT8 file too
    openvino = Predictor(str(model_dir), PredictorOptions(backend="openvino", batch_size=4))
    np.testing.assert_allclose(openvino.run(x), auto.run(x), atol=1e-5)
    # compiled per batch size (static shapes; the oldest dropped past MAX_SHAPES), always in float32 (not bf16)
    from edgevit_paddle.inference import openvino_backend
    for n in (1, 3, 2, 4, 1):
        np.testing.assert_allclose(openvino.run(x[:n]), auto.run(x[:n]), atol=1e-5)
    requests = openvino.backend.requests
    assert len(requests) == openvino_backend.MAX_SHAPES and (1, 3, 32, 32) in requests
    compiled = requests[(4, 3, 32, 32)].get_compiled_model()
    assert str(compiled.get_property("INFERENCE_PRECISION_HINT")) in ("<Type: 'float32'>", "f32")
    ours, theirs = ([t for r in p.predict_paths(paths, 3) for t in r["topk"]] for p in (openvino, auto))
    assert [t["class_id"] for t in ours] == [t["class_id"] for t in theirs]
    np.testing.assert_allclose([t["score"] for t in ours], [t["score"] for t in theirs], atol=1e-5)
    ov_int8 = Predictor(str(model_dir), PredictorOptions(backend="openvino", precision="int8"))
    assert (ov_int8.run(digits).argmax(1) == auto.run(digits).argmax(1)).mean() >= 0.7
    # bfloat16: the fp32 file computed in bf16, on CPUs with AVX512-BF16/AMX; elsewhere one line
    bf16 = PredictorOptions(backend="openvino", precision="bf16")
    if not cpu.has_bf16():
        with pytest.raises(PredictorError, match="no AVX512-BF16/AMX, which OpenVINO's bfloat16 needs"):
            Predictor(str(model_dir), bf16)
        return
    ov_bf16 = Predictor(str(model_dir), bf16)
    compiled = ov_bf16.backend.requests[(1, 3, 32, 32)].get_compiled_model()
    assert str(compiled.get_property("INFERENCE_PRECISION_HINT")) in ("<Type: 'bfloat16'>", "bf16")
    np.testing.assert_allclose(ov_bf16.run(x), auto.run(x), atol=2e-2)
    assert (ov_bf16.run(digits).argmax(1) == auto.run(digits).argmax(1)).mean() >= 0.95


def test_dynamic_size_and_the_size_rule(tmp_path):
    net = ep.create_model("edgevit_xxs", num_classes=4)
    net.eval()
    res = export_model(net, str(tmp_path), (3, 64, 64), {}, formats="all")
    assert [c["size"] for c in res["checks"]["paddle"]] == [[64, 64], [96, 128]]
    x = np.random.RandomState(0).randn(2, 3, 96, 160).astype("float32")
    want = exported_output(net, x)
    spinning = Predictor(str(tmp_path), PredictorOptions(backend="onnxruntime", ort_spin=True)).backend.session
    assert spinning.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "1"
    for backend in ("paddle", "onnxruntime"):
        pred = Predictor(str(tmp_path), PredictorOptions(backend=backend))
        if backend == "onnxruntime":  # off unless asked (README: 1.8x slower when another process shares the cores)
            options = pred.backend.session.get_session_options()
            assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        np.testing.assert_allclose(pred.run(x), want, atol=1e-5)
        np.testing.assert_allclose(pred.run(x.astype("float64")), want, atol=1e-5)  # cast, not an error
        with pytest.raises(PredictorError, match="a 100x100 input does not fit: height and width must be multiples "
                                                 "of 32"):
            pred.run(np.zeros([1, 3, 100, 100], np.float32))
        with pytest.raises(PredictorError, match=r"takes a batch \[N, 3, H, W\], got shape \[3, 64, 64\]"):
            pred.run(np.zeros([3, 64, 64], np.float32))
    vit = ep.create_model("vit_mnist")
    export_model(vit, str(tmp_path / "vit"), (1, 28, 28), {}, formats="paddle")
    with pytest.raises(PredictorError, match="exported for 28x28 inputs only"):
        Predictor(str(tmp_path / "vit")).run(np.zeros([1, 1, 56, 56], np.float32))


def test_nan_weights_are_refused_at_export(tmp_path):
    net = ep.create_model("edgevit_xxs", num_classes=3)
    net.head.weight.set_value(np.full(net.head.weight.shape, np.nan, np.float32))
    with pytest.raises(ExportError, match="outputs are not finite .* export from a good checkpoint"):
        export_model(net, str(tmp_path), (3, 64, 64), {})


def test_a_failing_batch_is_retried_one_by_one_and_nonfinite_scores_reported(quickstart_export, photos, monkeypatch):
    model_dir, _ = quickstart_export
    pred = Predictor(str(model_dir), PredictorOptions(backend="paddle", batch_size=4))
    real = pred.backend.run
    calls = []

    def flaky(batch):
        calls.append(len(batch))
        if len(batch) > 1:
            raise RuntimeError("one bad input takes the batch down")
        out = real(batch)
        return out * np.nan if batch.mean() == pred_means["image_00003.jpg"] else out

    paths = sorted(str(p) for p in photos.glob("image_*.jpg"))
    pred_means = {os.path.basename(p): float(pred.preprocess(read_image(p)).mean()) for p in paths}
    monkeypatch.setattr(pred.backend, "run", flaky)
    results = list(pred.predict_paths(paths))
    assert calls[0] == 4 and calls[1:] == [1, 1, 1, 1]
    errors = {os.path.basename(r["path"]): r["error"] for r in results if "error" in r}
    assert list(errors) == ["image_00003.jpg"] and "non-finite scores" in errors["image_00003.jpg"]
    assert sum("topk" in r for r in results) == 3


def _copy(model_dir, dest, damage=lambda d: None, digests=True):
    dest.mkdir()
    for f in os.listdir(model_dir):
        (dest / f).write_bytes((model_dir / f).read_bytes())
    if not digests:  # a folder whose inference.yml records no digests: the runtimes' own load errors are reached
        meta = yaml.safe_load((dest / "inference.yml").read_text())
        (dest / "inference.yml").write_text(yaml.safe_dump({k: v for k, v in meta.items() if k != "digests"}))
    damage(dest)
    return str(dest)


def test_damaged_sidecars_are_one_line_errors(quickstart_export, tmp_path):
    model_dir, _ = quickstart_export
    cases = [(_copy(model_dir, tmp_path / "yml", lambda d: (d / "inference.yml").write_text("input_size: [3, 32\n  - "
                                                                                            "what")),
              "inference.yml' is not valid YAML"),
             (_copy(model_dir, tmp_path / "yml2", lambda d: (d / "inference.yml").write_text("just a string")),
              "is not an inference.yml")]
    for folder, match in cases:
        with pytest.raises(PredictorError, match=match) as info:
            Predictor(folder)
        assert "\n" not in str(info.value)
    res = subprocess.run([sys.executable, INFER, "--model-dir", cases[0][0], "x.jpg"], capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.startswith("error: ") and "Traceback" not in res.stderr, \
        res.stderr[-2000:]
    assert len(res.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("backend", backends.backend_names())
def test_damaged_swapped_or_missing_model_files_are_one_line_errors(quickstart_export, tmp_path, backend):
    """For every backend of the table and every file it reads: truncated (the digest in inference.yml catches it; in
    a folder without digests, the runtime's own load error), swapped for another export's file, or missing."""
    model_dir, _ = quickstart_export
    cls = backends.get(backend)
    other = tmp_path / "other"  # the same model, other weights: a file of another export
    export_model(ep.create_model("edgevit_xxs", num_classes=10), str(other), (3, 32, 32),
                 {"preprocess": yaml.safe_load((model_dir / "inference.yml").read_text())["preprocess"],
                  "class_names": [str(i) for i in range(10)]}, check=False)
    for i, file in enumerate(f for f in cls.model_files(str(model_dir), "fp32")):
        name = os.path.basename(file)

        def truncate(d):
            (d / name).write_bytes((d / name).read_bytes()[:1000])

        cases = [(_copy(model_dir, tmp_path / f"{i}cut", truncate), f"'.*{name}' is not the file this export wrote"),
                 (_copy(model_dir, tmp_path / f"{i}cut_nodigest", truncate, digests=False),
                  f"cannot load .*'.*{name}'.* re-export"),
                 (_copy(model_dir, tmp_path / f"{i}swap",
                        lambda d: (d / name).write_bytes((other / name).read_bytes())),
                  f"'.*{name}' is not the file this export wrote .* from another export"),
                 (_copy(model_dir, tmp_path / f"{i}gone", lambda d: (d / name).unlink()),
                  f"'.*{name}' is missing: export it with tools/export.py")]
        for folder, match in cases:
            with pytest.raises(PredictorError, match=match) as info:
                Predictor(folder, PredictorOptions(backend=backend))
            assert "\n" not in str(info.value)
    if backend == "onnxruntime":  # without its ONNX file, auto falls back to the next backend that finds its files
        assert Predictor(cases[-1][0]).backend_name == "paddle"


def test_legacy_format_is_refused_with_the_reason(tmp_path):
    res = subprocess.run([sys.executable, EXPORT, "--model", "edgevit_xxs", "--out", str(tmp_path)],
                         capture_output=True, text=True, env=dict(os.environ, FLAGS_enable_pir_api="0"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    (line,) = res.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: FLAGS_enable_pir_api=0") and "export ONNX" in line


@pytest.mark.parametrize("backend", backends.backend_names())
def test_a_bug_in_a_backend_keeps_its_traceback(quickstart_export, photos, monkeypatch, backend):
    """Only what the runtimes raise for bad files and inputs becomes a one-line error or a skipped image; a
    TypeError planted in the backend comes through as itself, at load and while predicting."""
    model_dir, _ = quickstart_export
    cls = backends.get(backend)

    def planted(self, batch):
        raise TypeError("planted bug")

    with monkeypatch.context() as m:
        m.setattr(cls, "run", planted)
        with pytest.raises(TypeError, match="planted bug"):
            Predictor(str(model_dir), PredictorOptions(backend=backend))
    pred = Predictor(str(model_dir), PredictorOptions(backend=backend, batch_size=2))
    monkeypatch.setattr(pred.backend, "run", lambda batch: planted(None, batch))
    with pytest.raises(TypeError, match="planted bug"):
        list(pred.predict_paths(sorted(str(p) for p in photos.glob("image_*.jpg"))))
    # our own errors are not the model's failure on an image; a library's error with no message still names itself
    monkeypatch.setattr(pred.backend, "run", lambda batch: (_ for _ in ()).throw(PredictorError("ours")))
    with pytest.raises(PredictorError, match="ours"):
        list(pred.predict_paths(sorted(str(p) for p in photos.glob("image_*.jpg"))))
    monkeypatch.setattr(pred.backend, "run", lambda batch: (_ for _ in ()).throw(MemoryError()))
    results = list(pred.predict_paths(sorted(str(p) for p in photos.glob("image_*.jpg"))))
    assert results and all(r["error"] == "the model failed on this image: MemoryError" for r in results)
