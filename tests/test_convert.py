"""Faithfulness: the authors' weights through our converter reproduce the authors' outputs (1e-5 relative)."""
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest
from conftest import REFERENCE, ROOT

import edgevit_paddle as ep
from edgevit_paddle.convert import load_original, map_original_key

TOL = 1e-5


def rel_err(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def original(reference):
    model = ep.create_model("edgevit_xxs", norm="ln", ffn="linear", num_classes=10)
    return load_original(model, REFERENCE)


def test_eval_logits_and_every_feature_map(original, reference):
    original.eval()
    x = paddle.to_tensor(reference["__input__"])
    with paddle.no_grad():
        h = x
        for i, stage in enumerate(original.stages, 1):
            h = stage.patch_embed(h)
            assert rel_err(h.numpy(), reference[f"__feat_patch_embed{i}__"]) < TOL, f"patch_embed{i}"
            h = stage.blocks(h)
            assert rel_err(h.numpy(), reference[f"__feat_stage{i}__"]) < TOL, f"stage{i}"
        h = original.norm(h)
        assert rel_err(h.numpy(), reference["__feat_final_norm__"]) < TOL
        np.testing.assert_array_equal(original.forward_features(x).numpy(), h.numpy())
        logits = original(x).numpy()
    assert rel_err(logits, reference["__logits__"]) < TOL
    assert rel_err(logits, reference["__logits_fp64__"]) < TOL


def test_train_mode_logits(reference):
    model = load_original(ep.create_model("edgevit_xxs", norm="ln", ffn="linear", num_classes=10), REFERENCE)
    model.train()
    logits = model(paddle.to_tensor(reference["__input__"])).numpy()
    assert rel_err(logits, reference["__logits_train_mode__"]) < TOL


def test_load_from_a_dict_and_running_stats_mapped(reference):
    weights = {k: v for k, v in reference.items() if not k.startswith("__")}
    model = load_original(ep.create_model("edgevit_xxs", norm="ln", ffn="linear", num_classes=10), weights)
    np.testing.assert_array_equal(model.norm._mean.numpy(), weights["norm.running_mean"])
    np.testing.assert_array_equal(model.norm._variance.numpy(), weights["norm.running_var"])
    np.testing.assert_array_equal(model.head.weight.numpy(), weights["head.weight"].T)
    assert map_original_key("blocks3.2.SelfAttn.attn.LocalProp.weight") == \
        "stages.2.blocks.2.self_attn.attn.local_prop.weight"


def test_wrong_configuration_is_refused(reference):
    with pytest.raises(ValueError, match="Model.norm: 'ln' in the weights, 'gn' in the config.*"
                                       "Model.norm=ln and Model.ffn=linear"):
        load_original(ep.create_model("edgevit_xxs", num_classes=10), REFERENCE)


def test_missing_unexpected_and_mismatched_keys_are_listed(reference):
    weights = {k: v for k, v in reference.items() if not k.startswith("__")}
    weights.pop("patch_embed1.proj.bias")
    weights["extra.weight"] = np.zeros(3, "float32")
    with pytest.raises(ValueError) as info:
        load_original(ep.create_model("edgevit_xxs", norm="ln", ffn="linear", num_classes=1000), weights)
    msg = str(info.value)
    assert "missing keys (1): stages.0.patch_embed.proj.bias" in msg
    assert "unexpected keys (1): extra.weight" in msg
    assert "head.weight: weights [288, 10] vs model [288, 1000]" in msg


def test_missing_file_and_unknown_format(tmp_path):
    model = ep.create_model("edgevit_xxs", norm="ln", ffn="linear", num_classes=10)
    with pytest.raises(FileNotFoundError, match="no weights file"):
        load_original(model, tmp_path / "nope.pth")
    bad = tmp_path / "w.txt"
    bad.write_text("x")
    with pytest.raises(ValueError, match="unknown weights format"):
        load_original(model, bad)


def test_convert_tool_writes_loadable_weights(tmp_path, reference):
    out = tmp_path / "xxs.pdparams"
    res = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "convert_original.py"), "--src", REFERENCE,
                          "--num-classes", "10", "--out", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    model = ep.create_model("edgevit_xxs", norm="ln", ffn="linear", num_classes=10)
    model.set_state_dict(paddle.load(str(out)))
    model.eval()
    assert rel_err(model(paddle.to_tensor(reference["__input__"])).numpy(), reference["__logits__"]) < TOL
    res = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "convert_original.py"), "--src", REFERENCE,
                          "--out", str(out)], capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.startswith("error: the weights do not fit")
    assert len(res.stderr.strip().splitlines()) == 1
