import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # the tests import this checkout's package, whatever the environment has installed

from edgevit_paddle import paddle_noise  # noqa: E402, I001  (first: it imports Paddle quietly)

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import pytest  # noqa: E402

from edgevit_paddle.engine.process import training_env  # noqa: E402
from edgevit_paddle.paddle_compat import batch_norm_stats, is_batch_norm  # noqa: E402

SHARED = os.path.join(os.path.dirname(ROOT), "shared")
REFERENCE = os.path.join(SHARED, "reference", "edgevit_xxs_official_ref.npz")
DATA = os.path.join(SHARED, "data")

# Every process a test starts (tools/*.py, python -m ..., workers) imports this checkout's package, not whatever
# edgevit_paddle the environment has installed: the tests test the checkout.
# The training tool re-executes itself once when OMP_WAIT_POLICY is unset (it must be set before Paddle loads); the
# tools started here get it from the start, which saves a Paddle import each (test_train.py runs the re-exec).
for _key, _value in training_env({}).items():
    os.environ.setdefault(_key, _value)
os.environ["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                                     if p])


def pytest_configure(config):
    for text in paddle_noise.PADDLE_NOISE:  # what the command-line tools silence, silenced in every test
        config.addinivalue_line("filterwarnings", f"ignore:{text}")


@pytest.fixture(autouse=True)
def _seed():
    paddle.seed(0)
    np.random.seed(0)
    paddle.set_device("cpu")


@pytest.fixture(scope="session")
def reference():
    if not os.path.isfile(REFERENCE):
        pytest.fail(f"reference outputs not found at {REFERENCE}: CI runs with ../shared beside the repo")
    with np.load(REFERENCE) as ref:
        return {k: ref[k] for k in ref.files}


def run_tool(script, *args, in_process=True, **kw):
    """Run ``tools/<script>`` with ``args`` from the checkout's root as a user would, and return what it did
    (``returncode``, ``stdout``, ``stderr``: a ``subprocess.CompletedProcess``).

    In this process by default: the tool's own ``main`` through the same ``cli.run`` its script calls (the one-line
    error, the exit codes), stdout and stderr captured, which saves starting Python and Paddle for each call. Tests
    that need a process of the tool's own (signals, kill -9, a lock held by another process, the environment it
    starts with) pass ``in_process=False``."""
    import contextlib
    import importlib
    import io
    import subprocess
    import warnings
    if not in_process or kw:
        return subprocess.run([sys.executable, script, *args], capture_output=True, text=True, cwd=ROOT, **kw)
    from edgevit_paddle.cli import run
    name = os.path.splitext(os.path.basename(script))[0]
    module = importlib.import_module(f"edgevit_paddle.cli.{'convert' if name == 'convert_original' else name}")
    out, err, cwd = io.StringIO(), io.StringIO(), os.getcwd()
    def show(message, category, filename, lineno, file=None, line=None):  # as Python prints them: on stderr
        err.write(warnings.formatwarning(message, category, filename, lineno, line))

    try:
        os.chdir(ROOT)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = show
            run(module.main, list(args))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        os.chdir(cwd)
    return subprocess.CompletedProcess([script, *args], code, out.getvalue(), err.getvalue())


def flowers_jpegs(out, ids=(1, 2, 3, 4000)):
    """Real Flowers-102 JPEGs (as shipped, 128 px short side, not square) extracted from the shared archive."""
    import tarfile
    with tarfile.open(os.path.join(DATA, "flowers102", "102flowers.tgz")) as tar:
        for i in ids:
            member = tar.getmember(f"jpg/image_{i:05d}.jpg")
            member.name = os.path.basename(member.name)
            tar.extract(member, out)
    return sorted(str(p) for p in out.iterdir())



def exported_output(net, x):
    """What an exported program computes for ``x`` (a tensor or an array): the model's softmax probabilities."""
    import paddle

    from edgevit_paddle.export.paddle_inference import Probabilities
    with paddle.no_grad():
        return Probabilities(net)(paddle.to_tensor(x)).numpy()


def randomise_bn(model, seed=0):
    """Random BatchNorm statistics and affines, and random GroupNorm affines (so that folding is tested on more than
    an identity)."""
    rng = np.random.RandomState(seed)
    for layer in model.sublayers():
        if is_batch_norm(layer):
            stats = batch_norm_stats(layer)
            for p, v in ((stats.mean, rng.randn(*stats.mean.shape) * 0.5),
                         (stats.variance, rng.rand(*stats.variance.shape) + 0.5),
                         (layer.weight, rng.randn(*layer.weight.shape)), (layer.bias, rng.randn(*layer.bias.shape))):
                p.set_value(v.astype("float32"))
        elif isinstance(layer, paddle.nn.GroupNorm) and layer.weight is not None:
            layer.weight.set_value((rng.randn(*layer.weight.shape) * 0.5 + 1).astype("float32"))
            layer.bias.set_value((rng.randn(*layer.bias.shape) * 0.5).astype("float32"))
    return model
