"""Config loading: schema check, overrides, defaults, every shipped config valid."""
import glob
import os
import re

import pytest
import yaml
from conftest import ROOT

import edgevit_paddle as ep
from edgevit_paddle.config import ConfigError, apply_overrides, dump_config, load_config, model_arguments
from edgevit_paddle.data.transforms import build_transforms

QUICKSTART = os.path.join(ROOT, "configs", "quickstart.yaml")
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True))


def test_overrides_and_types():
    cfg = load_config(QUICKSTART, ["Optimizer.lr=0.0005", "Global.epochs=5", "Optimizer.Scheduler.name=step",
                                   "Data.Train.transforms.1.RandomCrop.padding=4", "Model.drop_path_rate=0.1"])
    assert cfg["Optimizer"]["lr"] == 0.0005 and cfg["Global"]["epochs"] == 5
    assert cfg["Optimizer"]["Scheduler"]["name"] == "step"
    assert cfg["Data"]["Train"]["transforms"][1]["RandomCrop"]["padding"] == 4
    assert cfg["Model"]["drop_path_rate"] == 0.1
    assert cfg["Global"]["output_dir"] == "output"
    # YAML 1.1 reads 1e-3 as a string; a float field takes it
    assert load_config(QUICKSTART, ["Optimizer.lr=1e-3"])["Optimizer"]["lr"] == 1e-3


@pytest.mark.parametrize("overrides,match", [
    (["Optimizer.lrr=0.1"], r"unknown key 'Optimizer.lrr' \(did you mean 'lr'\?\); valid keys in Optimizer: name, lr"),
    (["Global.epochs=abc"], r"'Global.epochs' must be int, got str 'abc'"),
    (["Global.epochs=0"], r"'Global.epochs' must be >= 1"),
    (["Data.image_size=-32"], r"'Data.image_size' must be >= 8"),
    (["Data.dataset=flower"], r"'Data.dataset' is 'flower'.*valid: digits, mnist, flowers102"),
    (["Model.name=edgevit_xxxs"], r"Model.name: unknown model 'edgevit_xxxs'.*edgevit_xxs"),
    (["Optimizer.name=adam"], r"'Optimizer.name' is 'adam' \(did you mean 'Adam'\?\)"),
    (["Global.use_visualdl=3"], r"'Global.use_visualdl' must be bool"),
    (["Globl.epochs=3"], r"unknown key 'Globl' \(did you mean 'Global'\?\)"),
    (["epochs"], r"must look like Section.key=value"),
    (["Data.Train.transforms.9.Resize.size=3"], r"not an index"),
    (["Data.Train.transforms=[{Resise: {size: 3}}]"], r"unknown transform 'Resise' \(did you mean 'Resize'\?\)"),
    (["Data.Train.transforms=[{Resize: {sise: 3}}]"], r"Resize has no argument 'sise'"),
])
def test_bad_configs_are_one_line_errors(overrides, match):
    with pytest.raises(ConfigError, match=match) as info:
        load_config(QUICKSTART, overrides)
    msg = str(info.value)
    assert "\n" not in msg and ("quickstart.yaml" in msg or "override" in msg), msg


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file 'nope.yaml' not found"):
        load_config("nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("Global:\n  epochs: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(bad))
    missing = tmp_path / "m.yaml"
    missing.write_text("Global: {epochs: 1}\n")
    with pytest.raises(ConfigError, match="'Model' .*required|'Model.name' is required"):
        load_config(str(missing))


def test_dump_is_the_resolved_config(tmp_path):
    cfg = load_config(QUICKSTART, ["Global.epochs=2"])
    out = tmp_path / "config.yaml"
    dump_config(cfg, str(out))
    again = load_config(str(out))
    assert again["Global"]["epochs"] == 2 and again["Optimizer"] == cfg["Optimizer"]
    assert "__source__" not in yaml.safe_load(out.read_text())


def test_apply_overrides_does_not_touch_input():
    raw = {"Global": {"epochs": 1}}
    apply_overrides(raw, ["Global.epochs=3"])
    assert raw["Global"]["epochs"] == 1


@pytest.mark.parametrize("path", CONFIGS, ids=[os.path.relpath(p, ROOT) for p in CONFIGS])
def test_every_shipped_config_loads_and_builds(path):
    cfg = load_config(path)
    kwargs = model_arguments(cfg["Model"])
    model = ep.create_model(cfg["Model"]["name"], **{**kwargs, "in_chans": cfg["Data"]["channels"]})
    size = cfg["Data"]["image_size"]
    assert model.default_cfg.in_chans == cfg["Data"]["channels"]
    assert model.default_cfg.check_size(size, size) is None  # the config's images fit the model
    for split in ("Train", "Eval"):  # and its transforms build
        build_transforms(cfg["Data"][split]["transforms"], cfg["Data"]["channels"], split)


def test_required_configs_exist():
    names = {os.path.relpath(p, os.path.join(ROOT, "configs")) for p in CONFIGS}
    for need in ["quickstart.yaml", "edgevit/edgevit_xxs_flowers102.yaml", "edgevit/edgevit_xs_flowers102.yaml",
                 "edgevit/edgevit_s_flowers102.yaml", "vit/vit_mnist.yaml", "vit/vitbnffn_mnist.yaml",
                 "vit/vitbn_mnist.yaml"]:
        assert need in names
    assert any("cifar10" in n for n in names) and any("imagefolder" in n for n in names)


def test_a_bug_in_our_own_transform_keeps_its_traceback(monkeypatch):
    from edgevit_paddle.data import transforms
    with pytest.raises(ConfigError, match="bad arguments for Resize .*missing a required argument: 'size'"):
        transforms.build_transforms([{"Resize": {}}], 3)  # the config's mistake
    with pytest.raises(ConfigError, match="must start with 'rand-'"):
        transforms.build_transforms([{"RandAugment": {"config_str": "nonsense"}}], 3)

    class Buggy(transforms.RandAugment):
        def __init__(self, config_str: str = "rand-m9", interpolation: str = "bilinear"):
            raise TypeError("planted bug")

    monkeypatch.setitem(transforms.EXTRA, "RandAugment", Buggy)
    with pytest.raises(TypeError, match="planted bug"):
        transforms.build_transforms([{"RandAugment": {}}], 3)


def test_configs_that_would_hang_or_mislead_are_refused_at_load(tmp_path):
    """An alias bomb, a key given twice, a list, another encoding, NaN/inf and an out-of-range seed: one line each,
    at once (a 1.6 KB alias bomb used to run for minutes and gigabytes)."""
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [f"{n}: &{n} [{', '.join(['*' + p] * 9)}]"
                                                     for p, n in zip("abcdef", "bcdefg")]
    cases = {
        "bomb.yaml": ("\n".join(levels) + "\nGlobal: {seed: *g}\n", "YAML aliases (*a) are not accepted"),
        "twice.yaml": ("Model: {name: edgevit_xxs}\nModel: {name: vit_mnist}\n", "the key 'Model' is given twice"),
        "list.yaml": ("- Model\n- Data\n", "a config is a mapping of sections"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError, match=re.escape(message)) as e:
            load_config(str(tmp_path / name))
        assert "\n" not in str(e.value) and len(str(e.value)) < 300
    (tmp_path / "latin1.yaml").write_bytes("Model: {name: caf\xe9}\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(str(tmp_path / "latin1.yaml"))
    for override, message in [("Optimizer.lr=.nan", "'Optimizer.lr' is nan: give a finite number"),
                              ("Optimizer.Scheduler.warmup_start_lr=.inf", "warmup_start_lr' is inf"),
                              ("Optimizer.Scheduler.min_lr=-.inf", "'Optimizer.Scheduler.min_lr' is -inf"),
                              ("Global.seed=-1", "'Global.seed' must be >= 0"),
                              ("Global.seed=99999999999", "'Global.seed' must be <= 2147483647"),
                              ("Global.seed=*x", "YAML aliases")]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_config(None, ["Model.name=edgevit_xxs", override])
    big = "[" + ", ".join(["1"] * 5000) + "]"
    with pytest.raises(ConfigError) as e:
        load_config(None, ["Model.name=edgevit_xxs", f"Global.seed={big}"])
    assert len(str(e.value)) < 300  # the value is not spelled out in full


def test_paddleclas_names_point_to_ours():
    for override, pointer in [("Global.checkpoints=output/x/epoch_3", "--resume output/<run>"),
                              ("Global.print_batch_step=10", "Global.log_freq"),
                              ("Global.save_interval=1", "Global.save_freq"),
                              ("Global.eval_interval=1", "Global.eval_freq"),
                              ("Arch.name=EdgeViT", "the model section is Model")]:
        with pytest.raises(ConfigError, match=re.escape(pointer)) as e:
            load_config(None, ["Model.name=edgevit_xxs", override])
        assert "PaddleClas's name" in str(e.value)


def test_image_size_drives_the_transforms_that_state_no_size():
    """As timm's input_size and crop_pct drive create_transform: one setting moves the strong recipe to 64 px."""
    strong = os.path.join(ROOT, "configs", "edgevit", "edgevit_xxs_flowers102_strong.yaml")
    for size in (64, 128):
        cfg = load_config(strong, [f"Data.image_size={size}"])
        assert cfg["Data"]["Train"]["transforms"][0] == {"RandomResizedCrop": {"scale": [0.35, 1.0], "size": size}}
        assert cfg["Data"]["Eval"]["transforms"][:2] == [{"Resize": {"size": size}}, {"CenterCrop": {"size": size}}]
    cfg = load_config(strong, ["Data.image_size=64", "Data.crop_pct=0.875"])
    assert cfg["Data"]["Eval"]["transforms"][0] == {"Resize": {"size": 73}}  # round(64 / 0.875)
    with pytest.raises(ConfigError, match="end at 128x128, but Data.image_size is 64"):  # a stated size is kept
        load_config(strong, ["Data.image_size=64", "Data.Eval.transforms.1.CenterCrop.size=128"])
    default = load_config(None, ["Model.name=edgevit_xxs", "Data.dataset=flowers102", "Data.image_size=64",
                                 "Data.crop_pct=0.5"])
    from edgevit_paddle.data import eval_transforms
    assert eval_transforms(default["Data"])[0] == {"Resize": {"size": 128}}
