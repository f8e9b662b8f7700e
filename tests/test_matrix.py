"""Every registered model in every variant of its family's switches through every path the README promises.

The matrix is generated from the registry (``list_models()``, ``default_cfg.variants()``), never from a list kept
here, so a new model or a new switch value is covered without editing this file:

- every (model, variant): build, forward and backward (finite gradients for every trainable parameter), BatchNorm
  folding exact with no BatchNorm left, every declared GroupNorm's affine folded;
- every (architecture, variant), on the smallest registered model of that class (the other sizes differ only in
  widths and depths, which the cheap paths above cover): a tiny training run on real digits with ``eval_freq`` and
  ``save_freq`` of 2, killed after epoch 3 and resumed, equal to the uninterrupted run (same evaluated epochs, best
  epoch and weights); fine-tuning from that run's checkpoint; export of its best checkpoint to Paddle Inference and
  ONNX, MNN and ncnn (INT8 for the family's default variant) with Paddle's standard ops only, and the predictor
  through every backend of the table on a real photo, agreeing with each other and with dygraph.
"""
import json
import os

import numpy as np
import paddle
import pytest
import yaml
from conftest import exported_output, flowers_jpegs, randomise_bn

import edgevit_paddle as ep
from edgevit_paddle.config import load_config
from edgevit_paddle.engine import checkpoint_saver, train
from edgevit_paddle.export import export_from_config, fold_batchnorm, remaining_batchnorms
from edgevit_paddle.export.fold import sublayer_at
from edgevit_paddle.inference import Predictor, PredictorOptions
from edgevit_paddle.inference import backends as table
from edgevit_paddle.paddle_compat import is_batch_norm


def _variant_id(name, variant):
    return "-".join([name] + [f"{k}={v}" for k, v in variant.items()])


def _cases():
    """(name, variant, parameter count of its default variant, model class, whether it is the default variant) for
    every registered model and variant."""
    out = []
    for name in ep.list_models():
        net = ep.create_model(name)
        cfg, params = net.default_cfg, sum(int(p.numel()) for p in net.parameters())
        out += [(name, v, params, type(net), v == dict(cfg.variant)) for v in cfg.variants()]
    return out


CASES = _cases()
MATRIX = [pytest.param(name, variant, id=_variant_id(name, variant)) for name, variant, *_ in CASES]
# the smallest registered model of each architecture class, in every variant
_SMALLEST = {}
for _name, _variant, _params, _cls, _default in CASES:
    _key = (_cls, tuple(sorted(_variant.items())))
    if _key not in _SMALLEST or _params < _SMALLEST[_key][2]:
        _SMALLEST[_key] = (_name, _variant, _params, _default)
REPRESENTATIVES = [pytest.param(n, v, d, id=_variant_id(n, v)) for n, v, _, d in _SMALLEST.values()]


@pytest.mark.parametrize("name,variant", MATRIX)
def test_builds_trains_and_folds(name, variant):
    net = ep.create_model(name, num_classes=3, **variant)
    cfg = net.default_cfg
    assert {k: cfg.variant[k] for k in variant} == variant
    s = cfg.small_size(32)
    x = paddle.to_tensor(np.random.RandomState(1).randn(2, cfg.in_chans, s, s).astype("float32"))
    net.train()
    out = net(x)
    assert out.shape == [2, 3]
    paddle.nn.functional.cross_entropy(out, paddle.to_tensor([[0], [2]])).backward()
    for pname, p in net.named_parameters():
        if not p.stop_gradient:
            assert p.grad is not None and np.isfinite(p.grad.numpy()).all(), pname
    net.clear_gradients()
    net = randomise_bn(net)
    net.eval()
    with paddle.no_grad():
        ref = net(x).numpy()
        batchnorms = [m for m in net.sublayers() if is_batch_norm(m)]
        folded = fold_batchnorm(net)
        got = folded(x).numpy()
    assert np.abs(got - ref).max() <= 1e-5 * max(1.0, np.abs(ref).max())
    assert remaining_batchnorms(folded) == [] and len(folded.folded_bn) == len(batchnorms)
    # every GroupNorm a layer declares as feeding a conv or Linear has its affine folded there, and only normalises
    declared = [f"{n + '.' if n else ''}{norm}" for n, layer in [("", net)] + list(net.named_sublayers())
                for norm, _, where in getattr(type(layer), "bn_folds", ())
                if where == "in" and isinstance(sublayer_at(layer, norm), paddle.nn.GroupNorm)]
    assert sorted(folded.folded_affine) == sorted(declared)
    assert all(sublayer_at(folded, n).weight is None and sublayer_at(folded, n).bias is None for n in declared)


def _tiny(out_dir, name, variant, *more):
    net = ep.create_model(name)
    c, s = net.default_cfg.in_chans, net.default_cfg.small_size(32)
    steps = [f"{{Resize: {{size: [{s}, {s}]}}}}", "{ToTensor: {}}"]
    return load_config(None, [
        f"Model.name={name}", *[f"Model.{k}={v}" for k, v in variant.items()], "Model.drop_path_rate=0.1",
        "Data.dataset=digits", f"Data.image_size={s}", f"Data.channels={c}", "Data.Train.max_samples=16",
        "Data.Eval.max_samples=16", "Data.Train.batch_size=8", "Data.Eval.batch_size=8",
        f"Data.Train.transforms=[{', '.join(steps)}]", f"Data.Eval.transforms=[{', '.join(steps)}]",
        "Global.epochs=4", "Global.eval_freq=2", "Global.save_freq=2", "Global.keep_checkpoints=4",
        "Global.verbose=0", "Global.use_visualdl=false", f"Global.output_dir={out_dir}", "Global.run_name=run",
        "Optimizer.Scheduler.warmup_epochs=1", *more])


class _Killed(BaseException):
    """A stop that saves nothing (as kill -9 does): not an Exception, not a KeyboardInterrupt."""


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    return flowers_jpegs(tmp_path_factory.mktemp("photo"), ids=(4000,))[0]


@pytest.mark.parametrize("name,variant,is_default", REPRESENTATIVES)
def test_resume_finetune_export_and_predict(name, variant, is_default, tmp_path, photo, monkeypatch):
    straight = train(_tiny(tmp_path / "a", name, variant))
    run_a = tmp_path / "a" / "run"
    assert [h["epoch"] for h in straight["history"] if h["eval"]] == [2, 4]
    assert sorted(f for f in os.listdir(run_a / "checkpoints") if f.startswith("epoch_") and f.endswith(".json")) \
        == ["epoch_2.json", "epoch_4.json"]

    # killed at the end of epoch 3 (not a saving epoch): resumes from epoch 2 and repeats epochs 3 and 4
    original = checkpoint_saver.CheckpointSaver.save_epoch

    def killed_at_3(self, epoch, *args, **kwargs):
        if epoch == 3:
            raise _Killed()
        return original(self, epoch, *args, **kwargs)

    monkeypatch.setattr(checkpoint_saver.CheckpointSaver, "save_epoch", killed_at_3)
    with pytest.raises(_Killed):
        train(_tiny(tmp_path / "b", name, variant))
    monkeypatch.setattr(checkpoint_saver.CheckpointSaver, "save_epoch", original)
    run_b = tmp_path / "b" / "run"
    assert json.loads((run_b / "checkpoints" / "latest.json").read_text())["checkpoint"] == "epoch_2"
    resumed = train(_tiny(tmp_path / "b", name, variant), resume=str(run_b))
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3, 4]
    assert [h["epoch"] for h in resumed["history"] if h["eval"]] == [2, 4]
    assert resumed["best_epoch"] == straight["best_epoch"] and resumed["global_step"] == straight["global_step"]
    for a, b in zip(straight["history"], resumed["history"]):
        assert b["train"]["loss"] == pytest.approx(a["train"]["loss"], rel=1e-5, abs=1e-6)
    want = paddle.load(str(run_a / "checkpoints" / "epoch_4.pdparams"))
    got = paddle.load(str(run_b / "checkpoints" / "epoch_4.pdparams"))
    for k in want:
        if k != "__identity__":
            np.testing.assert_allclose(got[k].numpy(), want[k].numpy(), rtol=1e-5, atol=1e-6, err_msg=k)

    # fine-tuning from the run (its best checkpoint, same variant)
    tuned = train(_tiny(tmp_path / "c", name, variant, f"Global.pretrained_model={run_a}", "Global.epochs=1"))
    assert tuned["epochs_done"] == 1 and np.isfinite(tuned["final_loss"])
    assert "loaded" in (tmp_path / "c" / "run" / "train.log").read_text()

    # export of the trained weights (every check of the export runs), INT8 for the family's default variant
    cfg = _tiny(tmp_path / "a", name, variant)
    out = str(tmp_path / "inf")
    res = export_from_config(cfg, weights=str(run_a / "checkpoints" / "best"), out_dir=out, int8=is_default,
                             calib_images=8, agreement_images=0)  # precision auto: test_deploy.py
    assert res["checks"]["onnx"] < 1e-4 and ("int8" in res["files"]) == is_default
    sidecar = yaml.safe_load(open(os.path.join(out, "inference.yml")))  # PaddleClas's and PaddleX's sections too
    assert sidecar["output"] == "probabilities" and sidecar["Global"]["model_name"] == name
    ops = [next(iter(op)) for op in sidecar["PreProcess"]["transform_ops"]]
    assert ops[0] == "ResizeImage" and ops[-2:] == ["NormalizeImage", "ToCHWImage"], ops
    assert sidecar["PostProcess"]["Topk"]["label_list"] == sidecar["class_names"]
    program = open(os.path.join(out, "inference.json")).read()
    assert "edgevit_" not in program  # Paddle's standard ops only: deploying needs no library of ours
    assert {"mnn", "ncnn"} <= set(res["checks"])  # the mobile runtimes' files, checked at export (CI has them)
    names = [b.name for b in table.BACKENDS if b.available()]
    backends = {b: Predictor(out, PredictorOptions(backend=b, cpu_threads=2)) for b in names}
    results = {b: next(p.predict_paths([photo], topk=3)) for b, p in backends.items()}
    a = results["paddle"]["topk"]
    for b in names[1:]:
        assert [t["label"] for t in a] == [t["label"] for t in results[b]["topk"]]
        np.testing.assert_allclose([t["score"] for t in a], [t["score"] for t in results[b]["topk"]], atol=1e-4)
    from edgevit_paddle.image import read_image
    x = backends["paddle"].preprocess(read_image(photo))[None]
    net = ep.create_model(name, num_classes=10, **variant)
    net.set_state_dict({k: v for k, v in paddle.load(str(run_a / "checkpoints" / "best.pdparams")).items()
                        if k != "__identity__"})
    net.eval()
    for b in names[1:]:  # the mobile runtimes' kernels (ncnn's Winograd convolutions) round a little more
        tol = 1e-4 if b in ("mnn", "ncnn") else 1e-5
        diff = float(np.abs(backends[b].run(x) - exported_output(net, x)).max())
        assert diff <= tol, (b, diff)
