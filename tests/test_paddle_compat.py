"""The one adapter to Paddle's private names (``edgevit_paddle/paddle_compat.py``): every accessor against the
installed Paddle's real layers, so a release that renames one fails here, by name; and no other module of the
package reaches into Paddle's private names."""
import os
import re
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

#: Paddle's private names (layer settings and modules) that only the adapter may use
PRIVATE = re.compile(
    r"\._(kernel_size|stride|padding|updated_padding|padding_algorithm|padding_mode|dilation|groups|in_channels|"
    r"out_channels|data_format|channel_dim|op_type|use_cudnn|epsilon|mean|variance|momentum|use_global_stats|"
    r"num_groups|normalized_shape|approximate|optimizer|init_name|try_shutdown_all|run_custom_op|conv_nd)\b"
    r"|_C_ops|paddle\.base\b|_BatchNormBase|dynamic_flops")


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
    assert pc.norm_settings(nn.GroupNorm(2, 8, epsilon=1e-4)) == pc.NormSettings(1e-4, 2, None)
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


def test_no_other_module_uses_paddles_private_names():
    found = []
    for dirpath, _, files in os.walk(PACKAGE):
        for f in files:
            path = os.path.join(dirpath, f)
            if f.endswith(".py") and path != pc.__file__:
                for n, line in enumerate(open(path, encoding="utf-8"), 1):
                    if PRIVATE.search(line.split("#")[0]):
                        found.append(f"{os.path.relpath(path, PACKAGE)}:{n}: {line.strip()}")
    assert not found, "Paddle's private names outside paddle_compat.py:\n" + "\n".join(found)


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
