"""The model family: shapes, switches, parameter counts, GMACs, gradients, determinism and bad inputs."""
import contextlib
import io

import numpy as np
import paddle
import paddle.nn as nn
import pytest

import edgevit_paddle as ep
from edgevit_paddle.complexity import count_macs, count_params
from edgevit_paddle.layers import GroupNorm2d, GroupNormTokens, LayerNorm2d, get_norm_layer

# every registered model in every variant its family studies (default_cfg.switches)
ALL = [(name, variant) for name in ep.list_models() for variant in ep.create_model(name).default_cfg.variants()]


def small_model(name, variant, **kw):
    model = ep.create_model(name, **variant, **kw)
    cfg = model.default_cfg
    return model, (cfg.in_chans, cfg.small_size(), cfg.small_size())


def ids(case):
    return "-".join([case[0], *map(str, case[1].values())])


@pytest.mark.parametrize("case", ALL, ids=ids)
def test_forward_shape_and_finite(case):
    model, size = small_model(*case, num_classes=7)
    model.eval()
    out = model(paddle.randn([2, *size]))
    assert out.shape == [2, 7]
    assert np.isfinite(out.numpy()).all()


@pytest.mark.parametrize("case", ALL, ids=ids)
def test_every_parameter_gets_a_gradient(case):
    model, size = small_model(*case, num_classes=5)
    model.train()
    loss = model(paddle.randn([3, *size])).square().mean()
    loss.backward()
    trainable = [(n, p) for n, p in model.named_parameters() if not p.stop_gradient]
    assert trainable
    missing = [n for n, p in trainable if p.grad is None or not np.abs(p.grad.numpy()).sum() > 0]
    assert not missing, f"no gradient for {missing}"


@pytest.mark.parametrize("case", ALL, ids=ids)
def test_features_head_and_determinism(case):
    model, size = small_model(*case, num_classes=4)
    model.eval()
    x = paddle.randn([2, *size])
    feats = model.forward_features(x)
    if model.default_cfg.family == "edgevit":
        red = model.feature_info[-1]["reduction"]
        assert feats.shape == [2, model.num_features, size[1] // red, size[2] // red]
    else:
        assert feats.shape[-1] == model.num_features
    assert [f["num_chs"] for f in model.feature_info][-1] == model.num_features
    np.testing.assert_array_equal(model(x).numpy(), model(x).numpy())
    model.reset_classifier(0)
    assert model(x).shape == [2, model.num_features]
    model.reset_classifier(3)
    assert model(x).shape == [2, 3] and model.get_classifier().weight.shape == [model.num_features, 3]


@pytest.mark.parametrize("size", [(224, 224), (256, 256), (128, 128), (96, 96), (64, 64), (32, 32), (64, 96),
                                  (160, 32)])
def test_edgevit_any_multiple_of_32(size):
    model = ep.create_model("edgevit_xxs", num_classes=3)
    model.eval()
    assert model(paddle.randn([1, 3, *size])).shape == [1, 3]


@pytest.mark.parametrize("name", ["edgevit_xxs", "edgevit_xs", "edgevit_s"])
def test_parameter_counts_match_the_original(name):
    expected = {"edgevit_xxs": 4_067_704, "edgevit_xs": 6_770_056, "edgevit_s": 13_108_168}[name]
    variants = list(ep.create_model(name).default_cfg.variants())
    assert len(variants) == 6
    for variant in variants:
        assert count_params(ep.create_model(name, **variant)) == expected, variant


@pytest.mark.parametrize("name,gmacs", [("edgevit_xxs", 0.551), ("edgevit_xs", 1.128), ("edgevit_s", 1.911)])
@pytest.mark.parametrize("norm,ffn", [("ln", "linear"), ("gn", "conv")])
def test_gmacs_match_the_original_within_3_percent(name, gmacs, norm, ffn):
    macs = count_macs(ep.create_model(name, norm=norm, ffn=ffn), [1, 3, 224, 224]) / 1e9
    assert abs(macs - gmacs) / gmacs < 0.03, macs


def test_gmacs_include_attention_matmuls():
    model = ep.create_model("edgevit_xxs")
    with contextlib.redirect_stdout(io.StringIO()):
        layers_only = paddle.flops(model, [1, 3, 224, 224])
    assert count_macs(model, [1, 3, 224, 224]) > layers_only


@pytest.mark.parametrize("case", ALL, ids=ids)
def test_summary_and_flops_work(case):
    model = ep.create_model(case[0], **case[1])
    size = model.default_input_size
    with contextlib.redirect_stdout(io.StringIO()):
        info = paddle.summary(model, (1, *size))
        flops = paddle.flops(model, [1, *size])
    assert info["trainable_params"] == count_params(model) - (
        model.pos_embed.size + model.cls_token.size if hasattr(model, "pos_embed") else 0)
    assert 0 < flops <= count_macs(model, [1, *size])  # our count adds what paddle.flops cannot see, never less


def test_seed_api_and_defaults():
    from edgevit_paddle import EdgeViT_S, EdgeViT_XS, EdgeViT_XXS
    model = EdgeViT_XXS()
    assert model.default_cfg.variant == {"norm": "gn", "ffn": "conv"}
    assert model.default_input_size == (3, 224, 224) and model.num_classes == 1000
    with contextlib.redirect_stdout(io.StringIO()) as out:
        paddle.summary(model, (1, 3, 224, 224))
    assert "4,067,704" in out.getvalue()
    assert isinstance(EdgeViT_XS(num_classes=10), ep.EdgeViT) and isinstance(EdgeViT_S(num_classes=10), ep.EdgeViT)
    assert set(ep.list_models()) >= {"edgevit_xxs", "edgevit_xs", "edgevit_s", "vit_mnist", "vitbn_mnist",
                                     "vitbnffn_mnist", "vit_cifar", "vitbn_cifar", "vitbnffn_cifar"}
    assert ep.list_models("edgevit*") == ["edgevit_s", "edgevit_xs", "edgevit_xxs"]
    m = ep.create_model("edgevit_xxs", norm="ln", ffn="linear", num_classes=102, drop_path_rate=0.1)
    assert (m.default_cfg.variant, m.num_classes) == ({"norm": "ln", "ffn": "linear"}, 102)
    assert ep.create_model("vit_mnist").default_input_size == (1, 28, 28)
    assert ep.create_model("edgevit_xxs", in_chans=1).default_input_size == (1, 224, 224)


def test_norm_switch_replaces_exactly_the_original_layernorms():
    def kinds(model):
        return sorted(type(layer).__name__ for layer in model.sublayers()
                      if isinstance(layer, (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2D, nn.BatchNorm1D)))
    original = ep.create_model("edgevit_xxs", norm="ln", ffn="linear")
    bns = sum(isinstance(m, nn.BatchNorm2D) for m in original.sublayers())
    # the authors' model: LocalAgg 2 per block where r > 1 (1 + 1 + 3 blocks) + the final BatchNorm
    assert bns == 2 * 5 + 1
    n_ln = sum(isinstance(m, nn.LayerNorm) for m in original.sublayers())
    assert n_ln == 4 + 2 * 7 + 5  # patch embeds, two pre-norms per block, LocalProp norms where r > 1
    for norm, ffn, cls in [("gn", "conv", GroupNorm2d), ("gn", "linear", GroupNormTokens), ("ln", "conv", LayerNorm2d),
                           ("bn", "conv", nn.BatchNorm2D), ("bn", "linear", nn.BatchNorm1D)]:
        model = ep.create_model("edgevit_xxs", norm=norm, ffn=ffn)
        kept = [model.norm] + [n for s in model.stages for b in s.blocks if not isinstance(b.local_agg, nn.Identity)
                               for n in (b.local_agg.norm1, b.local_agg.norm2)]
        assert len(kept) == bns and all(type(n) is nn.BatchNorm2D for n in kept)
        assert all(isinstance(s.patch_embed.norm, get_norm_layer(norm, "nchw").func) for s in model.stages)
        blk = model.stages[0].blocks[0].self_attn
        assert isinstance(blk.norm1, cls) and isinstance(blk.norm2, cls) and isinstance(blk.attn.norm, cls)
        assert len(kinds(model)) == len(kinds(original))


def test_original_eps_values():
    model = ep.create_model("edgevit_xxs", norm="ln", ffn="linear")
    for i, stage in enumerate(model.stages):
        assert stage.patch_embed.norm._epsilon == 1e-5
        for blk in stage.blocks:
            assert blk.self_attn.norm1._epsilon == 1e-6 and blk.self_attn.norm2._epsilon == 1e-6
            if i < 3:
                assert blk.self_attn.attn.norm._epsilon == 1e-5
                assert blk.local_agg.norm1._epsilon == 1e-5 and blk.local_agg.norm2._epsilon == 1e-5
    assert model.norm._epsilon == 1e-5 and model.norm._momentum == 0.9


def test_structure_heads_ratios_and_drop_path():
    model = ep.create_model("edgevit_s", drop_path_rate=0.2)
    heads = [stage.blocks[0].self_attn.attn.num_heads for stage in model.stages]
    assert heads == [1, 2, 5, 8]
    ratios = [stage.blocks[0].self_attn.attn.sr_ratio for stage in model.stages]
    assert ratios == [4, 2, 2, 1]
    assert all(isinstance(s.blocks[0].local_agg, nn.Identity) == (r == 1) for s, r in zip(model.stages, ratios))
    rates = []
    for stage in model.stages:
        for blk in stage.blocks:
            dp = blk.self_attn.drop_path
            rates.append(getattr(dp, "drop_prob", 0.0))
            if not isinstance(blk.local_agg, nn.Identity):
                assert getattr(blk.local_agg.drop_path, "drop_prob", 0.0) == rates[-1]
    np.testing.assert_allclose(rates, np.linspace(0, 0.2, 11), atol=1e-6)
    assert model.stages[0].patch_embed.proj._stride == [4, 4]
    assert [s.patch_embed.proj._stride[0] for s in model.stages[1:]] == [2, 2, 2]
    lp = model.stages[0].blocks[0].self_attn.attn.local_prop
    assert isinstance(lp, nn.Conv2DTranspose) and lp._kernel_size == [4, 4] and lp._stride == [4, 4]


def test_initialisation_as_the_original():
    model = ep.create_model("edgevit_s", norm="ln", ffn="linear")
    w = model.stages[2].blocks[0].self_attn.mlp.fc1.weight.numpy()
    assert abs(w.std() - 0.02) < 0.002 and np.abs(w).max() <= 2.0
    assert np.all(model.stages[2].blocks[0].self_attn.attn.qkv.bias.numpy() == 0)
    conv = model.stages[2].blocks[0].local_agg.conv1  # PyTorch default: U(-1/sqrt(fan_in), +)
    bound = 1 / np.sqrt(240)
    assert np.abs(conv.weight.numpy()).max() <= bound and np.abs(conv.weight.numpy()).max() > 0.9 * bound
    assert np.abs(conv.bias.numpy()).max() > 0
    gn = ep.create_model("edgevit_xxs")  # the conv FFN that stands for Linear layers is initialised like them
    w = gn.stages[2].blocks[0].self_attn.mlp.fc1.weight.numpy()
    assert abs(w.std() - 0.02) < 0.003


def test_gn_stays_channels_first_and_groups():
    model = ep.create_model("edgevit_xxs", norm="gn", ffn="conv", norm_groups=4)
    assert model.stages[0].blocks[0].self_attn.channels_first
    assert model.stages[0].patch_embed.norm._num_groups == 4
    assert not ep.create_model("edgevit_xxs", norm="ln", ffn="linear").stages[0].blocks[0].self_attn.channels_first
    with pytest.raises(ValueError, match="norm_groups=5 must divide"):
        ep.create_model("edgevit_xxs", norm_groups=5)


@pytest.mark.parametrize("name", ["vit_mnist", "vitbnffn_mnist", "vitbn_mnist"])
@pytest.mark.parametrize("depth", [6, 3])
def test_vit_runs_every_block(name, depth):
    model = ep.create_model(name, depth=depth)
    calls = []
    for i, blk in enumerate(model.blocks):
        blk.register_forward_post_hook(lambda layer, inp, out, i=i: calls.append(i))
    model(paddle.randn([2, 1, 28, 28]))
    assert calls == list(range(depth))


def test_vit_variants_structure():
    vit, bnffn, bn = (ep.create_model(n) for n in ("vit_mnist", "vitbnffn_mnist", "vitbn_mnist"))
    assert isinstance(vit.blocks[0].norm2, nn.LayerNorm) and isinstance(vit.blocks[0].mlp.norm, nn.Identity)
    assert isinstance(bnffn.blocks[0].norm1, nn.LayerNorm) and isinstance(bnffn.blocks[0].norm2, nn.Identity)
    assert isinstance(bnffn.blocks[0].mlp.norm, nn.BatchNorm1D) and bnffn.blocks[0].mlp.norm._num_features == 128
    assert not any(isinstance(m, nn.LayerNorm) for m in bn.sublayers())
    assert isinstance(bn.norm, nn.BatchNorm1D) and isinstance(bn.patch_embed.norm, nn.BatchNorm1D)
    assert vit.blocks[0].attn.qkv.weight.shape == [64, 3 * 8 * 64]
    assert isinstance(ep.ViTBNFFN(img_size=32, patch_size=4).blocks[0].mlp.norm, nn.BatchNorm1D)
    assert ep.ViTBN(img_size=32, patch_size=4).default_cfg.variant["norm"] == "bn"
    # the registry builds the study's classes
    assert isinstance(bn, ep.ViTBN) and isinstance(bnffn, ep.ViTBNFFN) and type(vit) is ep.ViT


def test_vit_other_grid_interpolates_position_embedding():
    model = ep.create_model("vit_cifar")
    model.eval()
    assert model(paddle.randn([1, 3, 64, 48])).shape == [1, 10]


@pytest.mark.parametrize("kwargs,match", [
    (dict(name="edgevit_xxxs"), "unknown model 'edgevit_xxxs'.*edgevit_xxs"),
    (dict(name="edgevit_xxs", norm="layernorm"), "unknown norm 'layernorm'.*gn, ln, bn"),
    (dict(name="edgevit_xxs", ffn="mlp"), "unknown ffn 'mlp'.*conv, linear"),
    (dict(name="edgevit_xxs", num_classes=0), "num_classes must be >= 1"),
    (dict(name="vit_mnist", num_classes=-1), "num_classes must be >= 1"),
    (dict(name="edgevit_xxs", class_num=10), "unknown argument 'class_num'.*num_classes"),
    (dict(name="vitbn_mnist", norm="xx"), "unknown norm 'xx'"),
])
def test_bad_model_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        ep.create_model(**kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name,shape,match", [
    ("edgevit_xxs", [1, 3, 100, 100], r"100x100.*multiples of 32; nearest valid height: 96 or 128"),
    ("edgevit_xxs", [1, 3, 224, 200], r"nearest valid width: 192 or 224"),
    ("edgevit_xxs", [1, 3, 16, 16], r"nearest valid height: 32"),
    ("edgevit_xxs", [1, 1, 64, 64], r"3 input channels but got 1.*in_chans=1"),
    ("vit_mnist", [1, 1, 30, 28], r"multiples of 7"),
    ("vit_mnist", [1, 3, 28, 28], r"1 input channels but got 3"),
])
def test_bad_inputs(name, shape, match):
    model = ep.create_model(name)
    with pytest.raises(ValueError, match=match):
        model(paddle.zeros(shape))


@pytest.mark.parametrize("sr_ratio", [1, 2])
def test_channels_first_attention_equals_token_attention(sr_ratio):
    """The transpose-free channels-first attention (qkv as W^T @ x, heads split by reshape, transposes folded into
    the matmuls) computes what the token version computes, with the same qkv parameters; and it transposes no
    activation."""
    from edgevit_paddle.models.edgevit import GlobalSparseAttn
    paddle.seed(3)
    dim, H = 72, 8
    tok = GlobalSparseAttn(dim, 2, sr_ratio=sr_ratio, norm_layer=get_norm_layer("gn", "nlc"))
    cf = GlobalSparseAttn(dim, 2, sr_ratio=sr_ratio, norm_layer=get_norm_layer("gn", "nchw"), channels_first=True)
    state = tok.state_dict()
    state["proj.weight"] = state["proj.weight"].T.reshape([dim, dim, 1, 1])  # Linear [in, out] -> conv [out, in, 1, 1]
    cf.set_state_dict(state)
    assert all(cf.state_dict()[k].shape == v.shape for k, v in state.items())
    x = paddle.randn([2, dim, H, H])
    want = tok(x.flatten(2).transpose([0, 2, 1]), [2, dim, H, H])
    got = cf(x).flatten(2).transpose([0, 2, 1])
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)

    calls = []  # activations transposed (a parameter may be: on CPU the qkv product reads W^T, 72x216 values)
    original = paddle.Tensor.transpose

    def recording(self, *a, **k):
        if not self.persistable:
            calls.append(a)
        return original(self, *a, **k)
    paddle.Tensor.transpose = recording
    try:
        cf(x)
    finally:
        paddle.Tensor.transpose = original
    assert calls == []


def test_timms_create_model_arguments(tmp_path):
    """Code written for timm passes pretrained= and checkpoint_path=: the first is refused in one line (no weights
    are published), the second loads and checks weights."""
    from edgevit_paddle.errors import ModelError, WeightsError
    from edgevit_paddle.weights import model_identity, save_weights
    assert ep.create_model("edgevit_xxs", pretrained=False).num_classes == 1000
    with pytest.raises(ModelError, match="no pretrained weights are published for 'edgevit_xxs'.*convert_original"):
        ep.create_model("edgevit_xxs", pretrained=True)
    src = ep.create_model("edgevit_xxs", num_classes=5)
    save_weights(src.state_dict(), str(tmp_path / "w.safetensors"), model_identity(src))
    net = ep.create_model("edgevit_xxs", num_classes=5, checkpoint_path=str(tmp_path / "w.safetensors"))
    np.testing.assert_array_equal(net.head.weight.numpy(), src.head.weight.numpy())
    with pytest.raises(WeightsError, match="Model.norm: 'gn' in the weights, 'ln' in the config"):
        ep.create_model("edgevit_xxs", num_classes=5, norm="ln", checkpoint_path=str(tmp_path / "w.safetensors"))


@pytest.mark.parametrize("name", ep.list_models())
def test_timms_model_and_data_api(name, tmp_path):
    """default_cfg / pretrained_cfg read as timm's (attributes and a mapping, with its fields), reset_classifier
    takes global_pool, and resolve_data_config + create_transform give the eval transform the export's predictor
    computes."""
    from conftest import flowers_jpegs

    from edgevit_paddle.data import create_transform, resolve_data_config
    from edgevit_paddle.errors import ModelError
    from edgevit_paddle.export.preprocess import from_cfg
    from edgevit_paddle.image import read_image
    from edgevit_paddle.inference.preprocess import Preprocessor
    model = ep.create_model(name, num_classes=7)
    cfg = model.pretrained_cfg
    assert cfg is model.default_cfg and cfg["mean"] == cfg.mean and cfg.get("crop_pct") == cfg.crop_pct
    assert cfg.get("url") is None and "url" not in cfg and dict(cfg)["input_size"] == cfg.input_size
    assert cfg["num_classes"] == 7 and cfg["classifier"] == "head" and isinstance(model.get_classifier(), nn.Linear)
    first = dict(model.named_sublayers())[cfg["first_conv"]]
    assert isinstance(first, nn.Conv2D) and first.weight.shape[1] == cfg.in_chans
    assert cfg["pool_size"] == (cfg.input_size[1] // cfg.stride, cfg.input_size[2] // cfg.stride)
    model.reset_classifier(3, global_pool=model.global_pools[-1])
    assert model.default_cfg["num_classes"] == 3 and model.get_classifier().weight.shape[1] == 3
    with pytest.raises(ModelError, match="global_pool 'max' is not one of"):
        model.reset_classifier(3, global_pool="max")
    size = cfg.small_size()
    data = resolve_data_config({"img_size": size}, model=model)
    assert data == {"input_size": (cfg.in_chans, size, size), "interpolation": cfg.interpolation,
                    "mean": tuple(cfg.mean), "std": tuple(cfg.std), "crop_pct": cfg.crop_pct, "crop_mode": "center"}
    photo = read_image(flowers_jpegs(tmp_path, ids=(4000,))[0])  # real, not square
    want = Preprocessor(from_cfg(cfg, size), cfg.in_chans)(photo)
    np.testing.assert_allclose(np.asarray(create_transform(**data)(photo)), want, atol=1e-6)
    train = create_transform(**data, is_training=True)(photo)
    assert tuple(np.asarray(train).shape) == (cfg.in_chans, size, size)
