"""The one adapter to Paddle's private names (``edgevit_paddle/paddle_compat.py``): every accessor against the
installed Paddle's real layers, so a release that renames one fails here, by name; and no other module of the
package reaches into Paddle's private names."""
import ast
import os
import subprocess
import sys
import threading

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from edgevit_paddle import kernels
from edgevit_paddle import paddle_compat as pc
from edgevit_paddle.complexity import custom_ops
from edgevit_paddle.layers.activation import GELU
from edgevit_paddle.layers.conv import Conv2D, Conv2DTranspose

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "edgevit_paddle")

def test_conv_settings_read_what_the_layer_was_built_with():
    s = pc.conv_settings(nn.Conv2D(4, 8, 3, stride=2, padding=1, dilation=1, groups=2))
    assert (s.in_channels, s.out_channels, s.kernel_size, s.stride, s.dilation, s.groups) == (4, 8, [3, 3], [2, 2],
                                                                                            [1, 1], 2)
    assert s.updated_padding == [1, 1] and s.padding_mode == "zeros" and s.data_format == "NCHW" and not s.depthwise
    assert pc.conv_settings(nn.Conv2D(6, 6, 5, padding=2, groups=6)).depthwise
    t = pc.conv_settings(nn.Conv2DTranspose(4, 4, 2, stride=2, groups=4))
    assert t.kernel_size == [2, 2] and t.stride == [2, 2] and t.padding == 0 and t.depthwise


def test_conv_without_bias_is_paddles_conv_minus_the_bias():
    conv = nn.Conv2D(3, 5, 3, padding=1)
    conv.bias.set_value(np.arange(5, dtype="float32"))
    x = paddle.randn([2, 3, 9, 7])
    want = conv(x) - conv.bias.reshape([1, -1, 1, 1])
    np.testing.assert_allclose(pc.conv2d_without_bias(conv, x).numpy(), want.numpy(), atol=1e-5)


def test_norm_and_batchnorm_settings():
    assert pc.norm_settings(nn.GroupNorm(2, 8, epsilon=1e-4)) == pc.NormSettings(1e-4, 2, None, 8)
    assert pc.norm_settings(nn.LayerNorm(8, epsilon=1e-6)) == pc.NormSettings(1e-6, None, (8,))
    bn = nn.BatchNorm2D(4, momentum=0.8, epsilon=1e-3)
    bn._mean.set_value(np.full(4, 2.0, "float32"))  # the test may touch what it checks
    stats = pc.batch_norm_stats(bn)
    assert (stats.epsilon, stats.momentum) == (1e-3, 0.8) and stats.mean.numpy().tolist() == [2.0] * 4
    assert stats.variance.shape == [4] and pc.is_batch_norm(bn) and pc.is_batch_norm(nn.BatchNorm1D(3))
    assert not pc.is_batch_norm(nn.GroupNorm(1, 4))
    assert pc.gelu_is_approximate(nn.GELU(approximate=True)) and not pc.gelu_is_approximate(nn.GELU())


def test_flops_counters_come_from_paddles_table_for_our_subclasses():
    from paddle.hapi import dynamic_flops
    assert pc.flops_counter(Conv2D) is dynamic_flops.register_hooks[nn.Conv2D]
    assert pc.flops_counter(Conv2DTranspose) is dynamic_flops.register_hooks[nn.Conv2DTranspose]
    net = nn.Sequential(Conv2D(3, 4, 3), GELU())
    assert custom_ops(net)[Conv2D] is dynamic_flops.register_hooks[nn.Conv2D]
    assert paddle.flops(net, [1, 3, 8, 8], custom_ops=custom_ops(net)) == 4 * 3 * 9 * 36 + 4 * 36  # + bias


def test_runtime_hooks_exist_and_work():
    pc.set_math_threads(1)
    assert isinstance(pc.supports_bfloat16(), bool)
    loader = paddle.io.DataLoader(paddle.io.TensorDataset([paddle.arange(8, dtype="float32").reshape([8, 1])]),
                                  batch_size=2)
    it = iter(loader)
    next(it)
    assert isinstance(pc.loader_thread(it), threading.Thread)  # the thread that reads its batches
    pc.shutdown_loader_iterator(it)
    if kernels.available():
        x = paddle.randn([2, 3, 4, 4])
        np.testing.assert_allclose(pc.run_custom_op("edgevit_gelu", x)[0].numpy(), F.gelu(x).numpy(), atol=1e-6)


def _private_accesses(tree):
    """``x._name`` where ``x`` is not ``self``/``cls``/``super()``, and ``getattr``/``hasattr``/``setattr`` of such
    a name on anything but ``self``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
                continue
            yield node.lineno, node.attr
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id in ("getattr", "hasattr", "setattr") and len(node.args) >= 2:
            name, owner = node.args[1], node.args[0]
            if isinstance(name, ast.Constant) and isinstance(name.value, str) and name.value.startswith("_") and \
                    not name.value.startswith("__") and not (isinstance(owner, ast.Name) and owner.id == "self"):
                yield node.lineno, name.value


def test_no_other_module_uses_private_names():
    """Outside paddle_compat.py no module reads another object's private member (Paddle's layers, optimizers,
    loaders, modules), spelt as an attribute or as a getattr string: the AST, not a list of known names."""
    found = []
    for dirpath, _, files in os.walk(PACKAGE):
        for f in files:
            path = os.path.join(dirpath, f)
            if f.endswith(".py") and path != pc.__file__:
                with open(path, encoding="utf-8") as fh:
                    tree = ast.parse(fh.read())
                found += [f"{os.path.relpath(path, PACKAGE)}:{n}: {name}" for n, name in _private_accesses(tree)]
    assert not found, "private names outside paddle_compat.py:\n" + "\n".join(found)
    planted = ast.parse("def f(layer, opt):\n    return layer._epsilon, getattr(opt, '_learning_rate')\n")
    assert [n for _, n in _private_accesses(planted)] == ["_epsilon", "_learning_rate"]


def test_importing_the_package_leaves_warnings_and_paddle_flops_as_they_were():
    code = ("import warnings, paddle\nfrom paddle.hapi import dynamic_flops\n"
            "before = (list(warnings.filters), dict(dynamic_flops.register_hooks))\n"
            "import edgevit_paddle, edgevit_paddle.engine, edgevit_paddle.inference, edgevit_paddle.export\n"
            "assert (list(warnings.filters), dict(dynamic_flops.register_hooks)) == before\nprint('same')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.stdout.strip() == "same", res.stderr[-2000:]


def test_paddles_reports_of_a_dead_loader_worker_are_recognised():
    """Paddle reports a dead worker process in two ways (which one comes first is a race): its SIGCHLD handler's
    SystemError, or a warning its reading thread logs; the trainer turns either into one line."""
    import inspect

    from paddle.io.dataloader import dataloader_iter
    source = inspect.getsource(dataloader_iter)
    assert 'workers exit unexpectedly, "' in source and 'f"pids: {pids}"' in source  # the installed Paddle's text
    assert pc.loader_worker_death("DataLoader 1 workers exit unexpectedly, pids: 3914") == \
        "pid 3914 exited unexpectedly"
    killed = SystemError("(Fatal) DataLoader process (pid 2595) exited is killed by signal: Killed. (at /paddle/x.cc)")
    assert pc.loader_worker_death(killed) == "pid 2595 is killed by signal: Killed"
    assert pc.loader_worker_death(ValueError("DataLoader process (pid 1) exited")) is None
    assert pc.loader_worker_death("an unrelated warning") is None
