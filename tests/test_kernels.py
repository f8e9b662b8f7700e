"""The compiled CPU kernels (edgevit_paddle.kernels) against Paddle's own ops, the layers' dispatch to them, and the
fallback to Paddle's ops when they cannot be built."""
import os
import subprocess
import sys

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from edgevit_paddle import create_model, kernels
from edgevit_paddle.cpu import usable_cores
from edgevit_paddle.engine.process import training_env
from edgevit_paddle.layers.activation import GELU
from edgevit_paddle.layers.conv import Conv2D, Conv2DTranspose
from edgevit_paddle.layers.linear import Linear
from edgevit_paddle.layers.norm import GroupNorm2d

pytestmark = pytest.mark.skipif(not kernels.available(), reason=f"kernels not built: {kernels._state['reason']}")


def grads(fn, *inputs, seed=0):
    """fn's output and the gradients of a random projection of it with respect to ``inputs``."""
    xs = [paddle.to_tensor(t.numpy(), stop_gradient=False) for t in inputs]
    y = fn(*xs)
    g = paddle.to_tensor(np.random.RandomState(seed).randn(*y.shape).astype("float32"))
    return [y.numpy()] + [d.numpy() for d in paddle.grad(y, xs, g)]


def close(ours, theirs, rtol=1e-5):
    for a, b in zip(ours, theirs):
        scale = max(float(np.abs(b).max()), 1e-6)
        assert float(np.abs(a - b).max()) <= rtol * scale * 10, float(np.abs(a - b).max()) / scale


@pytest.mark.parametrize("n,c,h,w,k", [(1, 5, 7, 9, 3), (2, 13, 11, 6, 5), (3, 7, 17, 15, 5), (2, 3, 1, 1, 3),
                                       (1, 9, 8, 5, 7)])
def test_depthwise_conv_forward_and_gradients_equal_paddles(n, c, h, w, k):
    x = paddle.randn([n, c, h, w])
    wt = paddle.randn([c, 1, k, k])
    close(grads(lambda a, b: kernels.depthwise_conv2d(a, b, k // 2), x, wt),
          grads(lambda a, b: F.conv2d(a, b, padding=k // 2, groups=c), x, wt))


@pytest.mark.parametrize("n,c,h,w,r", [(2, 5, 3, 4, 2), (1, 7, 5, 5, 4), (3, 13, 1, 2, 2)])
def test_depthwise_transposed_conv_equals_paddles(n, c, h, w, r):
    x = paddle.randn([n, c, h, w])
    wt = paddle.randn([c, 1, r, r])
    close(grads(kernels.depthwise_conv2d_transpose, x, wt),
          grads(lambda a, b: F.conv2d_transpose(a, b, stride=r, groups=c), x, wt))


@pytest.mark.parametrize("shape", [(2, 5, 7, 9), (1, 1, 1, 1), (3, 13, 5, 3), (4, 37)])
def test_gelu_equals_paddles_exact_gelu(shape):
    x = paddle.randn(list(shape)) * 4
    close(grads(kernels.gelu, x), grads(F.gelu, x))


@pytest.mark.parametrize("shape,groups", [((2, 6, 7, 9), 1), ((1, 13, 5, 5), 1), ((2, 12, 5, 3), 3), ((3, 8, 1, 1), 2)])
def test_group_norm_equals_paddles(shape, groups):
    x = paddle.randn(list(shape)) * 3 + 1
    gamma, beta = paddle.randn([shape[1]]), paddle.randn([shape[1]])
    close(grads(lambda a, g, b: kernels.group_norm(a, g, b, groups, 1e-5), x, gamma, beta),
          grads(lambda a, g, b: F.group_norm(a, groups, 1e-5, g, b), x, gamma, beta), rtol=2e-5)


@pytest.mark.parametrize("n,ci,co,h,w,bias", [(1, 5, 7, 3, 4, True), (3, 8, 5, 7, 7, True), (2, 13, 6, 1, 1, False),
                                              (5, 3, 9, 6, 2, False)])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_pointwise_conv_forward_and_gradients_equal_paddles(n, ci, co, h, w, bias, threads):
    """Fewer samples than threads (oneDNN threads each product), uneven shares, one thread; with and without bias."""
    kernels.set_threads(threads)
    x, wt, b = paddle.randn([n, ci, h, w]), paddle.randn([co, ci, 1, 1]), paddle.randn([co])
    try:
        if bias:
            close(grads(kernels.pointwise_conv2d, x, wt, b), grads(F.conv2d, x, wt, b))
        else:
            close(grads(kernels.pointwise_conv2d, x, wt), grads(F.conv2d, x, wt))
    finally:
        kernels.set_threads(None)


@pytest.mark.parametrize("shape,co", [((3, 5, 7), 4), ((1, 2), 3), ((4, 33), 17), ((2, 3, 4, 6), 1)])
def test_linear_equals_paddles(shape, co):
    x, wt, b = paddle.randn(list(shape)), paddle.randn([shape[-1], co]), paddle.randn([co])
    close(grads(kernels.linear, x, wt, b), grads(F.linear, x, wt, b))


@pytest.mark.parametrize("shape", [(2, 5, 3, 4), (1, 1, 7, 1), (3, 9, 6, 36)])
def test_swapping_axes_1_and_2_equals_paddles_transpose(shape):
    x = paddle.randn(list(shape))
    close(grads(kernels.swap12, x), grads(lambda t: t.transpose([0, 2, 1, 3]), x))


@pytest.mark.parametrize("shape,r", [((2, 3, 8, 8), 2), ((1, 2, 7, 5), 4), ((2, 4, 9, 12), 3), ((1, 1, 3, 3), 1)])
def test_subsample_equals_a_strided_slice(shape, r):
    x = paddle.randn(list(shape))
    close(grads(lambda t: kernels.subsample(t, r), x), grads(lambda t: t[:, :, ::r, ::r], x))


@pytest.mark.parametrize("n,c,h,w,p,co", [(2, 3, 8, 8, 4, 5), (1, 2, 9, 7, 2, 3), (3, 4, 6, 6, 3, 2)])
def test_a_patch_embedding_is_patches_to_channels_and_a_1x1_product(n, c, h, w, p, co):
    """The patch rearrangement and the convolution it serves (kernel = stride; sizes that are not a multiple of the
    patch drop the last rows and columns, as the convolution does) against Paddle's conv2d."""
    x, wt, b = paddle.randn([n, c, h, w]), paddle.randn([co, c, p, p]), paddle.randn([co])
    close(grads(lambda t, u, v: kernels.pointwise_conv2d(kernels.patchify(t, p), u.reshape([0, -1, 1, 1]), v),
                x, wt, b),
          grads(lambda t, u, v: F.conv2d(t, u, v, stride=p), x, wt, b))


def test_attention_layouts_and_the_sampler_use_the_kernels_in_dygraph_only(monkeypatch):
    from edgevit_paddle.layers.attention import PointwiseLinear, merge_heads, split_heads
    from edgevit_paddle.layers.subsample import Subsample
    calls = []
    for name in ("swap12", "subsample", "pointwise_conv2d"):
        real = getattr(kernels, name)
        monkeypatch.setattr(kernels, name, lambda *a, _r=real, _n=name: calls.append(_n) or _r(*a))
    qkv, x = paddle.randn([2, 5, 3 * 2 * 4]), paddle.randn([2, 6, 7, 9])
    proj = PointwiseLinear(6, 4)
    ours = [*split_heads(qkv, 2, 4), merge_heads(qkv.reshape([2, 5, 6, 4])), Subsample(2)(x), proj(x.flatten(2))]
    assert calls == ["swap12", "swap12", "subsample", "pointwise_conv2d"]
    monkeypatch.setitem(kernels._state, "ready", False)
    theirs = [*split_heads(qkv, 2, 4), merge_heads(qkv.reshape([2, 5, 6, 4])), Subsample(2)(x), proj(x.flatten(2))]
    assert len(calls) == 4
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)


def test_layers_use_the_kernels_and_fall_back_to_paddles_ops(monkeypatch):
    calls = []
    names = ("depthwise_conv2d", "depthwise_conv2d_transpose", "gelu", "group_norm", "pointwise_conv2d", "linear",
             "patchify")
    for name in names:
        real = getattr(kernels, name)
        monkeypatch.setattr(kernels, name, lambda *a, _r=real, _n=name: calls.append(_n) or _r(*a))
    layers = [Conv2D(6, 6, 5, padding=2, groups=6), Conv2DTranspose(6, 6, 2, stride=2, groups=6), GELU(),
              GroupNorm2d(6), Conv2D(6, 4, 1), lambda t: Linear(6, 3)(t.transpose([0, 2, 3, 1])),
              Conv2D(6, 5, 2, stride=2)]
    x = paddle.randn([2, 6, 8, 8])
    paddle.seed(1)
    ours = [layer(x).numpy() for layer in layers]
    assert calls == list(names[:6]) + ["patchify", "pointwise_conv2d"]
    calls.clear()
    Conv2D(6, 6, 3, padding=1)(x)  # not depthwise: Paddle's op
    Conv2D(6, 6, 3, padding=1, groups=6, stride=2)(x)  # strided: Paddle's op
    Conv2D(6, 4, 1, stride=2)(x)  # a strided 1x1: Paddle's op
    Linear(8, 3, bias_attr=False)(x)  # no bias: Paddle's op
    Conv2D(6, 5, 2, stride=2, padding=1)(x)  # a padded patch embedding: Paddle's op
    assert calls == []
    monkeypatch.setitem(kernels._state, "onednn", False)  # a Paddle build without oneDNN: the products are Paddle's
    Conv2D(6, 4, 1)(x), Linear(8, 3)(x), Conv2D(6, 5, 2, stride=2)(x)
    assert calls == []
    monkeypatch.setitem(kernels._state, "ready", False)  # as when the build failed
    paddle.seed(1)
    theirs = [layer(x).numpy() for layer in layers]
    assert calls == []
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_a_failed_build_warns_once_and_paddles_ops_run(monkeypatch, tmp_path):
    monkeypatch.setitem(kernels._state, "ready", None)
    monkeypatch.setenv("EDGEVIT_KERNELS_DIR", str(tmp_path))

    def no_compiler(folder):
        raise RuntimeError("g++: not found")
    monkeypatch.setattr(kernels.build, "compile_into", no_compiler)
    with pytest.warns(UserWarning, match="compiled CPU kernels unavailable, using Paddle's ops: g\\+\\+: not found"):
        assert not kernels.available()
    assert not kernels.available()  # decided once
    y = Conv2D(4, 4, 3, padding=1, groups=4)(paddle.randn([1, 4, 5, 5]))
    assert y.shape == [1, 4, 5, 5]


@pytest.mark.parametrize("norm,ffn", [("gn", "conv"), ("ln", "linear")])
def test_a_model_trains_the_same_with_and_without_the_kernels(monkeypatch, norm, ffn):
    x = paddle.randn([2, 3, 64, 64])
    results = []
    for ready in (True, False):
        monkeypatch.setitem(kernels._state, "ready", ready)
        paddle.seed(3)
        net = create_model("edgevit_xxs", num_classes=4, drop_path_rate=0.0, norm=norm, ffn=ffn)
        y = net(x)
        (y * y).mean().backward()
        results.append((y.numpy(), {n: p.grad.numpy() for n, p in net.named_parameters() if p.grad is not None}))
    (ya, ga), (yb, gb) = results
    np.testing.assert_allclose(ya, yb, rtol=1e-4, atol=1e-5)
    overall = max(float(np.abs(g).max()) for g in gb.values())
    worst = max(float(np.abs(ga[k] - gb[k]).max()) for k in gb)
    assert worst <= 1e-4 * overall, (worst, overall)


def test_the_kernels_use_the_runs_threads_and_training_processes_sleep_idle_threads(monkeypatch):

    from edgevit_paddle.engine.process import set_device
    monkeypatch.setattr(paddle.base.core, "set_num_threads", lambda n: None)  # leave this process's Paddle alone
    set_device("cpu", None, world_size=2)
    assert kernels._state["threads"] == max(1, usable_cores() // 2)  # shared out, as Paddle's
    set_device("cpu", 3)
    assert kernels._state["threads"] == 3
    kernels.set_threads(None)
    assert training_env({})["OMP_WAIT_POLICY"] == "PASSIVE"
    assert training_env({})["MALLOC_MMAP_MAX_"] == "0"  # glibc keeps freed memory: no fresh pages per tensor
    assert training_env({"OMP_WAIT_POLICY": "ACTIVE"})["OMP_WAIT_POLICY"] == "ACTIVE"  # the user's wins


def test_a_cpu_training_process_keeps_freed_memory_when_started_without_the_environment():
    """``set_device("cpu")`` applies TRAINING_ENV's glibc settings with mallopt in a process started without them
    (``train()`` from Python): a large array then comes from the heap, not from a fresh mapping (mallinfo2's hblks
    counts mapped blocks)."""
    script = (
        "import ctypes, numpy as np\n"
        "from edgevit_paddle.engine.process import set_device\n"
        "class Info(ctypes.Structure):\n"
        "    _fields_ = [(n, ctypes.c_size_t) for n in ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks',\n"
        "                                               'fsmblks', 'uordblks', 'fordblks', 'keepcost')]\n"
        "libc = ctypes.CDLL(None)\n"
        "libc.mallinfo2.restype = Info\n"
        "def mapped_while_held():\n"
        "    before = libc.mallinfo2().hblks\n"
        "    a = np.ones(1 << 24, dtype=np.float32)\n"
        "    return libc.mallinfo2().hblks - before\n"
        "print(mapped_while_held(), end=' ')\n"
        "set_device('cpu')\n"
        "print(mapped_while_held())\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split()[-2:] == ["1", "0"], res.stdout


@pytest.mark.parametrize("shape", [(2, 7, 5), (1, 1, 3), (3, 13), (2, 4, 4, 9)])
def test_layer_norm_equals_paddles(shape):
    x = paddle.randn(list(shape)) * 3 + 1
    gamma, beta = paddle.randn([shape[-1]]), paddle.randn([shape[-1]])
    close(grads(lambda a, g, b: kernels.layer_norm(a, g, b, 1e-6), x, gamma, beta),
          grads(lambda a, g, b: F.layer_norm(a, shape[-1], g, b, 1e-6), x, gamma, beta), rtol=2e-5)


def test_a_transposed_view_is_read_as_what_it_shows():
    x = paddle.randn([2, 5, 6, 7])
    view = x.transpose([0, 2, 3, 1])  # not contiguous
    assert not view.is_contiguous()
    gamma, beta = paddle.randn([5]), paddle.randn([5])
    np.testing.assert_allclose(kernels.layer_norm(view, gamma, beta, 1e-5).numpy(),
                               F.layer_norm(view, 5, gamma, beta, 1e-5).numpy(), rtol=1e-5, atol=1e-5)
