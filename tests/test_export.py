"""Export to Paddle Inference: round trip, the predictor on real images, bad inputs, options (folding and every
variant: test_matrix.py)."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import paddle
import pytest
import yaml
from conftest import DATA, ROOT, exported_output, flowers_jpegs, randomise_bn

import edgevit_paddle as ep
from edgevit_paddle.config import load_config
from edgevit_paddle.data import build_dataset
from edgevit_paddle.data.flowers102_names import FLOWERS102_CLASSES
from edgevit_paddle.export import export_from_config, export_model, export_registered
from edgevit_paddle.inference import (
    Predictor,
    PredictorError,
    PredictorOptions,
    check_options,
    config_calls,
    cpu_supports_bf16,
    expand_inputs,
    paddle_backend,
)

#: one worker runs this module, so that its module fixtures (a Flowers export) are built once
pytestmark = pytest.mark.xdist_group("test_export")


def small_input(model, batch=2):
    cfg = model.default_cfg
    size = (cfg.in_chans, cfg.small_size(), cfg.small_size())
    return paddle.to_tensor(np.random.RandomState(1).randn(batch, *size).astype("float32"))


@pytest.mark.parametrize("name,norm,ffn", [("edgevit_xxs", "bn", "linear"), ("vitbn_mnist", None, None)])
def test_unfolded_token_batchnorm_runs_in_the_onednn_predictor(tmp_path, name, norm, ffn):
    model = randomise_bn(ep.create_model(name, norm=norm, ffn=ffn))
    model.eval()
    x = small_input(model)
    export_model(model, str(tmp_path), x.shape[1:], {"preprocess": [], "class_names": []}, fold=False,
                 formats="paddle")
    got = Predictor(str(tmp_path), PredictorOptions(mkldnn=True, backend="paddle")).run(x.numpy())
    np.testing.assert_allclose(got, exported_output(model, x), atol=1e-5)


def tiny_cfg(tmp_path, *more):
    return load_config(None, ["Model.name=edgevit_xxs", "Data.dataset=digits", "Data.image_size=32",
                              f"Global.output_dir={tmp_path}", *more])


@pytest.mark.parametrize("fold", [False])  # folded: every variant in test_matrix.py
def test_export_round_trip_batches_and_onednn(tmp_path, fold):
    model = randomise_bn(ep.create_model("edgevit_xxs", norm="bn", num_classes=10))
    model.eval()
    out = str(tmp_path / "inf")
    files = export_model(model, out, (3, 64, 64), {"preprocess": [{"to_float": {"divisor": 255.0}}],
                                                   "class_names": [str(i) for i in range(10)]}, fold=fold)["files"]
    assert os.path.basename(files["model"]) == "inference.json" and os.path.isfile(files["params"])
    assert os.path.basename(files["onnx"]) == "inference.onnx"
    for batch in (1, 3):
        x = np.random.RandomState(batch).randn(batch, 3, 64, 64).astype("float32")
        ref = exported_output(model, x)
        for backend, mkldnn in (("paddle", True), ("paddle", False), ("onnxruntime", True)):
            got = Predictor(out, PredictorOptions(backend=backend, mkldnn=mkldnn, cpu_threads=2)).run(x)
            np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)


def test_sidecar_contents_and_export_tool(tmp_path):
    cfg_path = os.path.join(ROOT, "configs", "quickstart.yaml")
    res = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "export.py"), "-c", cfg_path, "--out",
                          str(tmp_path / "inf")], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert "wrote" in res.stdout and "max abs difference" in res.stdout and "ONNX Runtime vs Paddle" in res.stdout
    meta = yaml.safe_load((tmp_path / "inf" / "inference.yml").read_text())
    assert meta["model"] == "edgevit_xxs" and meta["variant"] == {"norm": "gn", "ffn": "conv"}
    assert meta["input_size"] == [3, 32, 32] and meta["channel_order"] == "RGB" and meta["num_classes"] == 10
    assert meta["class_names"] == [str(i) for i in range(10)] and meta["folded_batchnorms"] == 11
    # the quickstart's eval transform resizes the short side only: a centre crop makes every photo end at 32x32
    assert meta["preprocess"] == [{"resize": {"size": 32, "interpolation": "bilinear"}}, {"center_crop": {"size": 32}},
                                  {"to_float": {"divisor": 255.0}},
                                  {"normalize": {"mean": [0.5] * 3, "std": [0.5] * 3}}]
    assert meta["stride"] == 32 and meta["fixed_input_size"] is False
    with pytest.raises(ValueError, match="cannot be reproduced by the predictor"):
        export_from_config(tiny_cfg(tmp_path, "Data.Eval.transforms=[{ColorJitter: {brightness: 0.1}}]"),
                           out_dir=str(tmp_path / "x"))


def test_export_a_registry_name_with_random_weights(tmp_path):
    tool = os.path.join(ROOT, "tools", "export.py")
    res = subprocess.run([sys.executable, tool, "--model", "vitbn_mnist", "--out", str(tmp_path), "--format", "paddle"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    meta = yaml.safe_load((tmp_path / "inference.yml").read_text())
    assert meta["input_size"] == [1, 28, 28] and meta["folded_batchnorms"] == 14 and meta["num_classes"] == 10
    assert meta["fixed_input_size"] is True and not (tmp_path / "inference.onnx").exists()
    pred = Predictor(str(tmp_path))
    assert pred.preprocess(np.zeros([40, 30], np.uint8)).shape == (1, 28, 28)
    assert pred.run(np.zeros([2, 1, 28, 28], np.float32)).shape == (2, 10)
    res = subprocess.run([sys.executable, tool], capture_output=True, text=True)
    assert res.returncode == 2 and "give -c CONFIG" in res.stderr


@pytest.fixture(scope="module")
def flowers_images(tmp_path_factory):
    """A few real Flowers-102 JPEGs (as shipped, 128 px short side), extracted from the shared archive."""
    return flowers_jpegs(tmp_path_factory.mktemp("flowers_jpg"))


@pytest.fixture(scope="module")
def flowers_export(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("flowers_export")
    cfg = load_config(os.path.join(ROOT, "configs", "edgevit", "edgevit_xxs_flowers102_strong.yaml"),
                      [f"Data.root={DATA}/flowers102", "Data.image_size=64", "Data.Eval.transforms.0.Resize.size=73",
                       "Data.Eval.transforms.1.CenterCrop.size=64", "Data.Train.transforms.0.RandomResizedCrop.size=64",
                       f"Data.cache_dir={tmp}"])
    paddle.seed(3)
    res = export_from_config(cfg, out_dir=str(tmp / "inf"))
    return cfg, str(tmp / "inf"), res


def test_predictor_equals_dygraph_through_the_training_eval_transform(flowers_export):
    cfg, model_dir, res = flowers_export
    assert all(c["max_abs_diff"] < 1e-4 for c in res["checks"]["paddle"]) and res["checks"]["onnx"] < 1e-4
    assert [c["size"] for c in res["checks"]["paddle"]] == [[64, 64], [96, 128]]  # dynamic height and width
    ds = build_dataset(cfg["Data"], "Eval")  # the training pipeline's eval transform, on the real shared data
    pred = Predictor(model_dir, PredictorOptions(batch_size=2))
    path = os.path.join(ds.base.base.data_path, "jpg", f"image_{int(ds.base.base.indexes[0]):05d}.jpg")
    x_train, _ = ds[0]
    x_pred = pred.preprocess(cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB))
    np.testing.assert_allclose(x_pred, x_train, atol=1e-6)
    (result,) = list(pred.predict_paths([path], topk=3))
    probs = pred.probabilities(x_train[None])[0]
    assert result["topk"][0]["score"] == pytest.approx(float(probs.max()), abs=1e-4)
    assert result["topk"][0]["label"] == FLOWERS102_CLASSES[int(np.argmax(probs))]  # the real category names


def test_bad_inputs_are_reported_and_skipped(flowers_export, flowers_images, tmp_path):
    _, model_dir, _ = flowers_export
    real = flowers_images[0]
    data = open(real, "rb").read()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.jpg").write_text("not an image")
    img = cv2.imread(real)
    cv2.imwrite(str(tmp_path / "grey.png"), cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(tmp_path / "rgba.png"), cv2.cvtColor(img, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(tmp_path / "deep.png"), img.astype(np.uint16) * 257)
    res = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "infer.py"), "--model-dir", model_dir,
                          str(tmp_path / "empty.jpg"), str(tmp_path / "notes.jpg"), str(tmp_path / "*.png"), real,
                          "--topk", "2", "--batch-size", "2"], capture_output=True, text=True)
    assert res.returncode == 3
    out = res.stdout.strip().splitlines()
    assert len(out) == 4 and all(line.split(": ", 1)[1].startswith(tuple(FLOWERS102_CLASSES)) for line in out), \
        res.stdout
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and "empty file" in errors[0] and "not a readable image" in errors[1], res.stderr
    (deep,) = [line for line in out if "deep.png" in line]
    (orig,) = [line for line in out if real in line]
    assert deep.split(": ", 1)[1] == orig.split(": ", 1)[1]  # 16-bit is the same picture, same answer
    # a truncated JPEG (OpenCV would decode it, filling the rest with grey) is reported, not classified
    res = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "infer.py"), "--model-dir", model_dir,
                          str(tmp_path / "truncated.jpg"), real, "--json"], capture_output=True, text=True)
    lines = [json.loads(line) for line in res.stdout.strip().splitlines()]
    assert res.returncode == 3 and "truncated JPEG" in lines[0]["error"] and "topk" in lines[1]


def test_directory_and_glob_inputs(flowers_images):
    folder = os.path.dirname(flowers_images[0])
    assert expand_inputs([folder]) == flowers_images
    assert expand_inputs([os.path.join(folder, "*.jpg")]) == flowers_images


def test_model_folder_errors(flowers_export, tmp_path):
    _, model_dir, _ = flowers_export
    with pytest.raises(PredictorError, match="not found"):
        Predictor(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(PredictorError, match="no exported model in .*tools/export.py"):
        Predictor(str(tmp_path / "empty"))
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in ("inference.json", "inference.pdiparams"):
        os.symlink(os.path.join(model_dir, f), broken / f)
    with pytest.raises(PredictorError, match="inference.yml' is missing"):
        Predictor(str(broken))
    meta = yaml.safe_load(open(os.path.join(model_dir, "inference.yml")))
    (broken / "inference.yml").write_text(yaml.safe_dump({**meta, "class_names": ["a", "b"]}))
    with pytest.raises(PredictorError, match=r"PostProcess.Topk.label_list in inference.yml disagrees with "
                                             r"class_names in inference.yml \(class 0: 'pink primrose' vs 'a'\)"):
        Predictor(str(broken))
    (broken / "inference.yml").write_text(yaml.safe_dump({**meta, "class_names": ["a", "b"],
                                                          "PostProcess": {"Topk": {"label_list": ["a", "b"]}}}))
    with pytest.raises(PredictorError, match="lists 2 classes but the model has 102 outputs"):
        Predictor(str(broken))
    (broken / "inference.yml").write_text(yaml.safe_dump({**meta, "input_size": [1, 64, 64]}))
    with pytest.raises(PredictorError, match="into a 3x64x64 array, not the model's input 1x64x64"):
        Predictor(str(broken))
    (broken / "inference.yml").write_text(yaml.safe_dump({**meta, "input_size": [3, 96, 96]}))
    with pytest.raises(PredictorError, match="into a 3x64x64 array, not the model's input 3x96x96"):
        Predictor(str(broken))


def test_device_and_precision_errors(flowers_export):
    _, model_dir, _ = flowers_export
    if not paddle.is_compiled_with_cuda():
        with pytest.raises(PredictorError, match="needs the GPU build of Paddle"):
            Predictor(model_dir, PredictorOptions(device="gpu"))
    with pytest.raises(PredictorError, match="--use-tensorrt needs --device gpu"):
        check_options(PredictorOptions(use_tensorrt=True))
    with pytest.raises(PredictorError, match="precision fp16 is not available on cpu"):
        check_options(PredictorOptions(precision="fp16"))
    with pytest.raises(PredictorError, match="drop --no-mkldnn"):
        check_options(PredictorOptions(precision="bf16", mkldnn=False))
    import importlib.util
    if importlib.util.find_spec("paddle.tensorrt") is None:
        with pytest.raises(PredictorError, match="TensorRT needs the GPU build"):
            paddle_backend._tensorrt_model(os.path.join(model_dir, "inference.json"), model_dir,
                                          PredictorOptions(device="gpu", use_tensorrt=True), (3, 64, 64))


def test_config_switches_for_every_device():
    from paddle.inference import PrecisionType
    cpu = dict(config_calls(PredictorOptions(cpu_threads=3)))
    assert "disable_gpu" in cpu and cpu["set_cpu_math_library_num_threads"] == (3,) and "enable_mkldnn" in cpu
    assert "enable_new_executor" in cpu and "enable_memory_optim" in cpu and "disable_glog_info" in cpu
    assert "disable_mkldnn" in dict(config_calls(PredictorOptions(mkldnn=False)))
    assert "enable_mkldnn_bfloat16" in dict(config_calls(PredictorOptions(precision="bf16")))
    gpu = config_calls(PredictorOptions(device="gpu", gpu_id=1, gpu_mem=256, precision="fp16"))
    names = [n for n, _ in gpu]
    assert dict(gpu)["enable_use_gpu"] == (256, 1, PrecisionType.Half)
    assert names.index("enable_use_gpu") < names.index("enable_new_executor")
    assert "disable_mkldnn" in names and dict(gpu)["exp_disable_mixed_precision_ops"] == ({"feed", "fetch"},)
    trt = dict(config_calls(PredictorOptions(device="gpu", use_tensorrt=True, trt_shapes=(1, 4, 16)), (3, 224, 224),
                            legacy_trt=True))
    assert trt["enable_tensorrt_engine"][1] == 16 and trt["enable_tensorrt_engine"][3] == PrecisionType.Float32
    assert trt["set_trt_dynamic_shape_info"] == ({"x": [1, 3, 224, 224]}, {"x": [16, 3, 224, 224]},
                                                 {"x": [4, 3, 224, 224]})
    # every call exists on Paddle's Config and the CPU ones apply on this machine
    from paddle.inference import Config
    for opts, legacy in ((PredictorOptions(device="gpu", use_tensorrt=True, precision="fp16"), True),
                         (PredictorOptions(), False)):
        for name, _ in config_calls(opts, (3, 224, 224), legacy):
            assert hasattr(Config, name), name
    config = Config()
    for name, args in config_calls(PredictorOptions(cpu_threads=2)):
        getattr(config, name)(*args)
    assert config.mkldnn_enabled() and config.cpu_math_library_num_threads() == 2 and not config.use_gpu()


@pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU has no AVX512-BF16")
def test_bf16_stays_close_to_fp32_on_real_images(flowers_export, flowers_images):
    # (random weights give near-flat probabilities, so top-1 agreement is measured on a trained model: see README)
    _, model_dir, _ = flowers_export
    fp32 = Predictor(model_dir, PredictorOptions(backend="paddle"))
    bf16 = Predictor(model_dir, PredictorOptions(backend="paddle", precision="bf16"))
    assert Predictor(model_dir, PredictorOptions(precision="bf16")).backend_name == "openvino"  # auto: first by rank
    x = np.stack([fp32.preprocess(cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB)) for p in flowers_images])
    a, b = fp32.run(x), bf16.run(x)
    assert not np.array_equal(a, b)  # bfloat16 really ran
    assert np.abs(a - b).max() < 0.05 * np.abs(a).max()


def test_inference_yml_speaks_paddleclas_and_paddlex_and_the_onnx_file_loads_without_a_word(tmp_path):
    """The schema our predictor and PaddleClas's/PaddleX's share: one source (our steps), their sections written from
    it (checked against the real clients by docs/results/interop/interop.py, 100% top-1 agreement on 1,020 images)."""
    from edgevit_paddle.export.ecosystem import paddle_sections
    out = tmp_path / "xxs"
    export_registered("edgevit_xxs", str(out), image_size=64, paddlex_name="ResNet18")
    sidecar = yaml.safe_load((out / "inference.yml").read_text())
    crop_pct = ep.create_model("edgevit_xxs").default_cfg.crop_pct
    assert sidecar["preprocess"][:2] == [{"resize": {"size": round(64 / crop_pct), "interpolation": "bicubic",
                                                     "antialias": True}}, {"center_crop": {"size": 64}}]
    assert sidecar["Global"]["model_name"] == "ResNet18" and sidecar["Global"]["use_gpu"] is False
    assert sidecar["PreProcess"]["transform_ops"] == [
        {"ResizeImage": {"resize_short": round(64 / crop_pct), "interpolation": "bicubic", "backend": "pil"}},
        {"CropImage": {"size": 64}},
        {"NormalizeImage": {"scale": 1 / 255, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                            "order": "", "channel_num": 3}},
        {"ToCHWImage": None}]
    assert sidecar["PostProcess"] == {"Topk": {"topk": 5, "label_list": [str(i) for i in range(1000)]}}
    assert (out / "label_list.txt").read_text().splitlines()[:2] == ["0 0", "1 1"]  # PaddleClas's "<id> <name>"
    # OpenCV's bilinear has no name both read: left to their default, which it is
    theirs, _ = paddle_sections([{"resize": {"size": 36, "interpolation": "bilinear"}}], ["a"], "m", 3)
    assert theirs["PreProcess"]["transform_ops"][0] == {"ResizeImage": {"resize_short": 36, "backend": "cv2"}}
    for steps, channels, why in (([], 1, "1-channel model"),
                                 ([{"resize": {"size": 36, "interpolation": "lanczos"}}], 3, "no name that both"),
                                 ([{"normalize": {"mean": [0.5], "std": [0.5]}}], 3, "before the scaling")):
        assert why in paddle_sections(steps, ["a"], "m", channels)[1]
    grey = tmp_path / "vit"
    export_registered("vit_mnist", str(grey), formats="paddle")
    sidecar = yaml.safe_load((grey / "inference.yml").read_text())
    assert "PreProcess" not in sidecar and "3-channel RGB" in sidecar["paddleclas_paddlex"]
    # the ONNX file: named dimensions, our producer, and a plain ONNX Runtime load prints nothing
    import onnx
    model = onnx.load(str(out / "inference.onnx"))
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in (model.graph.input[0], model.graph.output[0])]
    assert dims == [["batch", 3, "height", "width"], ["batch", 1000]]
    assert (model.producer_name, model.producer_version) == ("edgevit-paddle", ep.__version__)
    assert [o.domain for o in model.opset_import] == [""]
    # the graph (gn/conv): each GroupNorm one InstanceNormalization, its affine folded into the next layer where that
    # is exact (a multiply after it only where it is not), no shape arithmetic (attention reshapes by 0/-1 or a shape)
    from edgevit_paddle.export import fold_batchnorm
    folded = fold_batchnorm(ep.create_model("edgevit_xxs"))
    groupnorms = [m for m in folded.sublayers() if isinstance(m, paddle.nn.GroupNorm)]
    producer = {o: n for n in model.graph.node for o in n.output}

    def after_norm(n):  # a node fed by InstanceNormalization -> Reshape
        src = producer.get(n.input[0])
        return (src is not None and src.op_type == "Reshape"
                and producer[src.input[0]].op_type == "InstanceNormalization")
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("InstanceNormalization") == len(groupnorms) and len(folded.folded_affine) > 0
    assert sum(n.op_type == "Mul" and after_norm(n) for n in model.graph.node) == \
        len(groupnorms) - len(folded.folded_affine)
    assert not {"Squeeze", "Unsqueeze", "Concat"} & set(ops)
    load = subprocess.run([sys.executable, "-c", "import sys, onnxruntime; onnxruntime.InferenceSession(sys.argv[1])",
                           str(out / "inference.onnx")], capture_output=True, text=True)
    assert load.returncode == 0 and load.stdout + load.stderr == "", load.stderr[-2000:]

