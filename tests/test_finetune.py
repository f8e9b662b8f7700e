"""Fine-tuning from weights (Global.pretrained_model, freeze_stages, backbone_lr_mult) and the authors' recipe
(Mixup/CutMix, RandAugment, timm's random erasing, repeated augmentation, EMA), the lazy image folder, class names."""
import json
import os
import random

import cv2
import numpy as np
import paddle
import pytest
from conftest import REFERENCE, ROOT
from test_reliability import TINY, one_error_line, tool

from edgevit_paddle import create_model
from edgevit_paddle.config import load_config, section_defaults
from edgevit_paddle.convert import read_state_dict, to_our_keys
from edgevit_paddle.data import build_dataset
from edgevit_paddle.data.mixup import Mixup
from edgevit_paddle.data.rand_augment import RAND_INCREASING_OPS, RAND_OPS, RandAugment
from edgevit_paddle.data.samplers import RepeatedAugSampler
from edgevit_paddle.engine.ema import ModelEMA
from edgevit_paddle.engine.optim import build_optimizer
from edgevit_paddle.engine.pretrained import load_pretrained
from edgevit_paddle.errors import ConfigError, MissingFileError, ModelError, PredictorError, WeightsError
from edgevit_paddle.weights import model_identity, with_identity


def save_weights(path, net):
    paddle.save(with_identity(net.state_dict(), model_identity(net)), str(path))
    return str(path)


def image_folder(root, classes=("a", "b", "c"), per_class=4, size=(40, 48), splits=("train", "val")):
    for split in splits:
        for c, cls in enumerate(classes):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(per_class):
                img = np.random.RandomState(c * 100 + i).randint(0, 255, (*size, 3), np.uint8)
                img[:, :, c % 3] = 255  # the classes differ
                cv2.imwrite(str(d / f"{i}.jpg"), img)
    return root


# ---------------------------------------------------------------------------------------------------- fine-tuning

def test_a_10_class_checkpoint_fine_tunes_into_a_3_class_model(tmp_path):
    src = create_model("edgevit_xxs", num_classes=10)
    path = save_weights(tmp_path / "ten.pdparams", src)
    net = create_model("edgevit_xxs", num_classes=3)
    fresh_head = net.head.weight.numpy().copy()
    msg = load_pretrained(net, path)
    assert "head re-initialised (10 -> 3 classes)" in msg and f"loaded {len(net.state_dict()) - 2} of" in msg
    want = src.state_dict()
    for k, v in net.state_dict().items():
        if k.startswith("head."):
            continue
        np.testing.assert_array_equal(v.numpy(), want[k].numpy(), err_msg=k)
    np.testing.assert_array_equal(net.head.weight.numpy(), fresh_head)  # the new head keeps its initialisation
    assert net.head.weight.shape == [net.num_features, 3]


def test_a_mis_shaped_tensor_is_refused_or_skipped_when_asked(tmp_path):
    src = create_model("edgevit_xxs", num_classes=10)
    state = src.state_dict()
    state["stages.0.patch_embed.proj.bias"] = paddle.zeros([7])
    state["extra.weight"] = paddle.zeros([2])
    path = str(tmp_path / "odd.pdparams")
    paddle.save(with_identity(state, model_identity(src)), path)
    net = create_model("edgevit_xxs", num_classes=10)
    with pytest.raises(WeightsError) as e:
        load_pretrained(net, path)
    msg = str(e.value)
    assert "stages.0.patch_embed.proj.bias: weights [7] vs model [36]" in msg and "unexpected keys (1): extra.weight" \
        in msg and "Global.pretrained_strict=false" in msg and "\n" not in msg
    before = net.stages[0].patch_embed.proj.bias.numpy().copy()
    with pytest.warns(UserWarning, match=r"skipped .*extra.weight.*proj.bias: weights \[7\]"):
        msg = load_pretrained(net, path, strict=False)
    np.testing.assert_array_equal(net.stages[0].patch_embed.proj.bias.numpy(), before)
    np.testing.assert_array_equal(net.head.weight.numpy(), src.head.weight.numpy())


def test_weights_of_another_variant_are_refused_unless_asked(tmp_path):
    path = save_weights(tmp_path / "gn.pdparams", create_model("edgevit_xxs", norm="gn", ffn="conv"))
    net = create_model("edgevit_xxs", norm="ln", ffn="conv", num_classes=4)
    with pytest.raises(WeightsError, match=r"norm: 'gn' in the weights, 'ln' in the config.*pretrained_any_variant"):
        load_pretrained(net, path)
    assert "loaded" in load_pretrained(net, path, any_variant=True)
    with pytest.raises(WeightsError, match="Model.name: 'edgevit_xxs' in the weights, 'edgevit_xs'"):
        load_pretrained(create_model("edgevit_xs"), path)


def test_the_authors_weights_fine_tune_through_the_converter():
    net = create_model("edgevit_xxs", norm="ln", ffn="linear", num_classes=5)
    assert "head re-initialised (10 -> 5 classes)" in load_pretrained(net, REFERENCE)
    want = to_our_keys(read_state_dict(REFERENCE), net)
    for k, v in net.state_dict().items():
        if not k.startswith("head."):
            np.testing.assert_array_equal(v.numpy(), want[k], err_msg=k)
    with pytest.raises(WeightsError, match="authors' weights .*Model.norm=ln"):
        load_pretrained(create_model("edgevit_xxs", num_classes=5), REFERENCE)


def test_pretrained_model_from_a_run_and_from_an_export_on_the_command_line(tmp_path):
    from test_reliability import tiny_run
    run = tiny_run(tmp_path / "src")
    best = paddle.load(str(run / "checkpoints" / "best.pdparams"))
    folder = image_folder(tmp_path / "three")
    common = ["-o", "Data.dataset=imagefolder", "-o", f"Data.root={folder}", "-o", "Data.image_size=32",
              "-o", "Data.Train.batch_size=4", "-o", "Data.Eval.batch_size=4", "-o", "Global.epochs=1",
              "-o", "Global.verbose=0", "-o", "Optimizer.lr=0.0", "-o", "Optimizer.weight_decay=0.0",
              "-o", "Optimizer.Scheduler.warmup_epochs=0",
              "-o", "Data.Train.transforms=[{Resize: {size: [32, 32]}}, {ToTensor: {}}]",
              "-o", "Data.Eval.transforms=[{Resize: {size: [32, 32]}}, {ToTensor: {}}]",
              "-o", "Model.freeze_stages=2", "-o", f"Global.output_dir={tmp_path / 'out'}"]
    res = tool("tools/train.py", "-o", f"Global.pretrained_model={run}", *common)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"pretrained: loaded 238 of 240 tensors from {run / 'checkpoints' / 'best'}; head re-initialised " \
           "(10 -> 3 classes)" in res.stdout
    assert "frozen: the first 2 stage(s)" in res.stdout
    tuned = paddle.load(str(tmp_path / "out" / "quickstart" / "checkpoints" / "epoch_1.pdparams"))
    for k in best:
        if not k.startswith(("head.", "__")) and "_mean" not in k and "_variance" not in k:
            np.testing.assert_allclose(tuned[k].numpy(), best[k].numpy(), err_msg=k)  # lr 0: as loaded
    # an exported model stands for the checkpoint it was exported from
    exp = tool("tools/export.py", "-c", str(run / "config.yaml"), "--weights", str(run / "checkpoints" / "best"),
               "--format", "paddle", "--out", str(tmp_path / "exp"))
    assert exp.returncode == 0, exp.stderr[-2000:]
    from edgevit_paddle.engine.pretrained import read_pretrained
    _, _, source = read_pretrained(str(tmp_path / "exp"), create_model("edgevit_xxs", num_classes=3))
    assert source == str(run / "checkpoints" / "best")
    one_error_line(tool("tools/train.py", "-o", f"Global.pretrained_model={tmp_path / 'nothing'}", *common))


def test_freeze_stages_and_backbone_lr_mult():
    net = create_model("edgevit_xxs", num_classes=3)
    net.freeze_stages(2)
    net.train()
    assert all(p.stop_gradient for s in net.stages[:2] for p in s.parameters())
    trainable = [p for n, p in net.stages[2].named_parameters() if not n.endswith(("_mean", "_variance"))]
    assert not any(p.stop_gradient for p in trainable)
    assert not net.stages[0].training and net.stages[2].training
    opt_cfg = section_defaults("Optimizer")
    opt_cfg["backbone_lr_mult"] = 0.0
    opt, _ = build_optimizer(opt_cfg, net, 10, 1)
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    net(paddle.randn([2, 3, 32, 32])).mean().backward()
    opt.step()
    after = net.state_dict()
    changed = {k for k in before if not np.array_equal(before[k], after[k].numpy())}
    assert {"head.weight", "head.bias"} <= changed
    # the rest only through BatchNorm statistics of the stages that train
    assert all(k.startswith("head.") or k.endswith(("_mean", "_variance")) for k in changed), changed
    assert not any(k.startswith(("stages.0.", "stages.1.")) for k in changed)
    with pytest.raises(ModelError, match="freeze_stages must be between 0 and 4"):
        create_model("edgevit_xxs").freeze_stages(5)
    vit = create_model("vit_mnist")
    vit.freeze_stages(1)
    assert vit.pos_embed.stop_gradient and vit.patch_embed.proj.weight.stop_gradient


def test_freeze_stages_out_of_range_is_a_config_error():
    from edgevit_paddle.builder import build_model_from_config
    cfg = load_config(None, ["Model.name=edgevit_xxs", "Model.freeze_stages=9", *TINY])
    with pytest.raises(ConfigError, match="Model.freeze_stages: freeze_stages must be between 0 and 4"):
        build_model_from_config(cfg, 10)


# ---------------------------------------------------------------------------------------------------- the recipe

def test_mixup_and_cutmix_targets_sum_to_one_and_match_the_images():
    x = paddle.to_tensor(np.random.RandomState(0).rand(4, 3, 16, 16).astype("float32"))
    y = paddle.to_tensor([[0], [1], [2], [3]], dtype="int64")
    mix = Mixup(5, mixup_alpha=0.8, label_smoothing=0.1)
    xm, t = mix(x, y, np.random.RandomState(1))
    lam, _ = mix.params(np.random.RandomState(1))
    np.testing.assert_allclose(t.numpy().sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(xm.numpy(), lam * x.numpy() + (1 - lam) * x.numpy()[::-1], rtol=1e-5)
    np.testing.assert_allclose(t.numpy()[0, 0], lam * (0.9 + 0.02) + (1 - lam) * 0.02, rtol=1e-5)
    np.testing.assert_allclose(t.numpy()[0, 3], (1 - lam) * (0.9 + 0.02) + lam * 0.02, rtol=1e-5)

    cut = Mixup(5, cutmix_alpha=1.0)
    for seed in range(5):
        xc, t = cut(x, y, np.random.RandomState(seed))
        np.testing.assert_allclose(t.numpy().sum(1), 1.0, rtol=1e-6)
        same = np.isclose(xc.numpy(), x.numpy()).all(axis=1)[0]  # pixels of image 0 that are still its own
        lam = same.mean()
        np.testing.assert_allclose(t.numpy()[0, 0], lam, rtol=1e-5)  # the target is the pasted area's share
        np.testing.assert_allclose(t.numpy()[0, 3], 1 - lam, rtol=1e-5)
        np.testing.assert_allclose(xc.numpy()[0][:, ~same], x.numpy()[3][:, ~same])
    with pytest.raises(ConfigError, match="Mixup.prob"):
        load_config(None, ["Model.name=edgevit_xxs", *TINY, "Mixup.prob=1.5"])


def test_rand_augment_every_operation_and_seeded_draws():
    img = np.random.RandomState(0).randint(0, 255, (24, 20, 3), np.uint8)
    ra = RandAugment("rand-m9-mstd0.5-inc1", prob=1.0)
    assert ra.ops == list(RAND_INCREASING_OPS) and ra.magnitude == 9 and ra.std == 0.5 and ra.num_ops == 2
    for ops in (RAND_OPS, RAND_INCREASING_OPS):
        for name in ops:
            ra.ops = [name]
            for im in (img, img[:, :, :1]):
                out = ra(im)
                assert out.shape == im.shape and out.dtype == np.uint8, name
    strongest = RandAugment("rand-m10-inc1", prob=1.0)  # PosterizeIncreasing keeps 0 bits: black
    strongest.ops = ["PosterizeIncreasing"]
    assert strongest(img).max() == 0
    with pytest.raises(ConfigError, match="unknown part 'q3'"):
        RandAugment("rand-m9-q3")
    cfg = load_config(None, ["Model.name=edgevit_xxs", *TINY, "Data.Train.transforms=[{Resize: {size: 32}}, "
                             "{RandAugment: {config_str: rand-m9-mstd0.5-inc1}}, {ToTensor: {}}, "
                             "{TimmRandomErasing: {prob: 0.5}}]"])
    ds = build_dataset(cfg["Data"], "Train")
    a = ds[(3, 5, 0)][0]
    np.testing.assert_array_equal(a, ds[(3, 5, 0)][0])  # (seed, epoch, index, draw) decides every draw
    assert not np.array_equal(a, ds[(4, 5, 0)][0]) and not np.array_equal(a, ds[(3, 5, 1)][0])


def test_repeated_augmentation_sampler_deals_copies_over_processes():
    data = list(range(300))
    per_rank = [RepeatedAugSampler(data, 16, repeats=3, num_replicas=2, rank=r) for r in range(2)]
    for s in per_rank:
        s.set_epoch(7)
    drawn = [s.indices() for s in per_rank]
    assert len(drawn[0]) == len(drawn[1]) == 128 and len(per_rank[0]) == 8  # 300 // 256 * 256 / 2 processes
    first = RepeatedAugSampler(data, 16, repeats=3, num_replicas=1, rank=0)
    first.set_epoch(7)
    one = first.indices()
    assert one[:3] == [one[0]] * 3  # one process: the copies sit side by side
    merged = [i for pair in zip(*drawn) for i in pair]
    assert merged[:len(merged)] == one[:len(merged)]  # two processes deal the same list out
    again = RepeatedAugSampler(data, 16, repeats=3, num_replicas=2, rank=0)
    again.set_epoch(7)
    assert again.indices() == drawn[0]


def test_ema_follows_its_formula_and_survives_resume(tmp_path):
    net = create_model("edgevit_xxs", num_classes=3)
    ema = ModelEMA(net, 0.9)
    start = {k: v.numpy().copy() for k, v in ema.state_dict().items()}
    opt = paddle.optimizer.SGD(0.1, parameters=net.parameters())
    want = dict(start)
    for _ in range(3):
        net(paddle.randn([2, 3, 32, 32])).mean().backward()
        opt.step()
        opt.clear_grad()
        ema.update(net)
        cur = net.state_dict()
        want = {k: 0.9 * want[k] + 0.1 * cur[k].numpy() for k in want}
    for k, v in ema.state_dict().items():
        np.testing.assert_allclose(v.numpy(), want[k], rtol=1e-5, atol=1e-6, err_msg=k)
    with ema.applied(net):
        np.testing.assert_allclose(net.head.weight.numpy(), want["head.weight"], rtol=1e-6)
    assert not np.allclose(net.head.weight.numpy(), want["head.weight"])


RECIPE = ["Mixup.mixup_alpha=0.8", "Mixup.cutmix_alpha=1.0", "Loss.label_smoothing=0.1", "EMA.decay=0.9",
          "Data.Train.sampler=repeated", "Data.Train.max_samples=96", "Data.Train.batch_size=16",
          "Data.Train.transforms=[{RandomResizedCrop: {size: 32, scale: [0.5, 1.0]}}, "
          "{RandAugment: {config_str: rand-m9-mstd0.5-inc1}}, {ToTensor: {}}, {TimmRandomErasing: {prob: 0.5}}]"]


def test_the_full_recipe_resumed_equals_the_uninterrupted_run(tmp_path):
    import shutil

    from test_reliability import tiny_run

    from edgevit_paddle.engine import train

    straight = tiny_run(tmp_path / "a", *RECIPE, "Global.epochs=2", "Model.drop_path_rate=0.1")
    first = tmp_path / "b"
    shutil.copytree(straight, first)  # as if the run had been killed right after epoch 1 was saved
    ckpt = first / "checkpoints"
    for f in ckpt.glob("epoch_2.*"):
        f.unlink()
    (ckpt / "latest.json").write_text((ckpt / "epoch_1.json").read_text())
    train(load_config(str(first / "config.yaml")), resume=str(first))
    for ext in ("pdparams", "pdema"):
        want = paddle.load(str(straight / "checkpoints" / f"epoch_2.{ext}"))
        got = paddle.load(str(first / "checkpoints" / f"epoch_2.{ext}"))
        worst = max(float(np.abs(got[k].numpy() - want[k].numpy()).max()) for k in want if k != "__identity__")
        assert worst < 1e-5, (ext, worst)
    a, b = (json.loads((r / "metrics.json").read_text()) for r in (straight, first))
    assert [h["eval"]["ema_acc_top1"] for h in b["history"]] == pytest.approx(
        [h["eval"]["ema_acc_top1"] for h in a["history"]])
    # the best of the raw and the EMA weights is kept
    best_from = a["best_from"]
    assert best_from in ("model", "ema")
    key = "acc_top1" if best_from == "model" else "ema_acc_top1"
    assert a["best_top1"] == pytest.approx(max(max(h["eval"]["acc_top1"], h["eval"]["ema_acc_top1"])
                                               for h in a["history"]))
    assert a["best_top1"] == pytest.approx(a["history"][a["best_epoch"] - 1]["eval"][key])


def test_the_imagenet_recipe_configs_run_on_an_imagenet_layout(tmp_path):
    folder = image_folder(tmp_path / "imagenet", classes=("n01440764", "n01443537"), per_class=4, size=(60, 80))
    for name in ("xxs", "xs", "s"):
        cfg = load_config(os.path.join(ROOT, "configs", "edgevit", f"edgevit_{name}_imagenet.yaml"))
        assert cfg["Optimizer"]["lr_reference_batch"] == 512 and cfg["EMA"]["decay"] == 0.99996
    res = tool("tools/train.py", "-c", "configs/edgevit/edgevit_xxs_imagenet.yaml", "-o", f"Data.root={folder}",
               "-o", "Global.device=cpu", "-o", "Global.epochs=1", "-o", "Data.num_workers=0", "-o",
               "Data.Train.batch_size=4", "-o", "Data.Eval.batch_size=4", "-o", f"Global.output_dir={tmp_path / 'o'}",
               "-o", "Global.verbose=0", timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "learning rate 3.91e-06 = Optimizer.lr 0.0005 x global batch 4 / 512" in res.stdout
    assert "ema top1" in res.stdout
    assert (tmp_path / "o" / "edgevit_xxs_imagenet" / "checkpoints" / "epoch_1.pdema").exists()


# ---------------------------------------------------------------------------------------------------- data, names

def test_the_image_folder_opens_without_decoding_and_lists_unreadable_images_once_per_epoch(tmp_path, monkeypatch,
                                                                                            capsys):
    folder = image_folder(tmp_path / "f", classes=("a", "b"))
    data = (folder / "train" / "a" / "0.jpg").read_bytes()
    (folder / "train" / "a" / "cut.jpg").write_bytes(data[: len(data) // 2])
    cfg = load_config(None, ["Model.name=edgevit_xxs", "Data.dataset=imagefolder", f"Data.root={folder}",
                             "Data.image_size=32", "Data.Train.batch_size=3", "Data.Eval.batch_size=3",
                             f"Global.output_dir={tmp_path}", "Global.epochs=2", "Global.verbose=0"])
    import edgevit_paddle.data.labeled as labeled
    calls = []
    monkeypatch.setattr(labeled, "read_image", lambda p: calls.append(p) or cv2.imread(p)[:, :, ::-1])
    ds = build_dataset(cfg["Data"], "Train")
    assert len(ds) == 9 and calls == []  # listed, nothing decoded
    cut = ds.base.images.index(str(folder / "train" / "a" / "cut.jpg"))
    img, label, skipped = ds[(0, cut, 0)]
    assert int(skipped[0]) == cut and img.shape == (3, 32, 32)  # cut.jpg named, replaced by another image
    monkeypatch.undo()
    from edgevit_paddle.engine import train
    train(cfg)
    lines = [line for line in capsys.readouterr().out.splitlines() if "unreadable" in line]
    assert len(lines) == 2 and all("1 unreadable image(s)" in m and "cut.jpg" in m for m in lines), lines


def test_infer_labels_option(tmp_path):
    from edgevit_paddle.export import export_registered
    from edgevit_paddle.inference import Predictor, PredictorOptions
    out = tmp_path / "m"
    export_registered("edgevit_xxs", str(out), num_classes=3, image_size=64, formats="paddle")
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\nbird\n")
    p = Predictor(str(out), PredictorOptions(backend="paddle", labels=str(names)))
    assert p.class_names == ["cat", "dog", "bird"]
    names.write_text("cat\ndog\n")
    with pytest.raises(PredictorError, match="has 2 names but the model has 3 classes"):
        Predictor(str(out), PredictorOptions(backend="paddle", labels=str(names)))
    with pytest.raises(MissingFileError, match="label file .* not found"):
        Predictor(str(out), PredictorOptions(backend="paddle", labels=str(tmp_path / "none.txt")))


def test_random_state_is_given_back_by_seeded_samples():
    random.seed(3)
    want = random.random()
    random.seed(3)
    cfg = load_config(None, ["Model.name=edgevit_xxs", *TINY, *RECIPE[-1:]])
    ds = build_dataset(cfg["Data"], "Train")
    ds[(1, 2, 3)]
    assert random.random() == want


def test_a_warm_up_that_cannot_climb_is_one_line():
    from edgevit_paddle.engine.optim import build_lr
    opt_cfg = section_defaults("Optimizer")
    opt_cfg["lr"], opt_cfg["Scheduler"]["warmup_epochs"] = 0.0, 1.0
    with pytest.raises(ConfigError, match="warm-up climbs from .* to the learning rate 0, which is not higher"):
        build_lr(opt_cfg, 10, 2)
    opt_cfg["lr"], opt_cfg["lr_reference_batch"] = 5e-4, 512
    sched, _ = build_lr(opt_cfg, 10, 2, global_batch=1024)
    assert sched.end_lr == pytest.approx(1e-3)  # scaled by 1024 / 512
