"""The export's ONNX file for the mobile runtimes: MNN (``inference.mnn``, MNN's converter) and ncnn
(``inference.ncnn.param`` + ``.bin``, pnnx's converter), beside the other files of one model folder.

Both converters run as child processes (their output is kept for the error message, and nothing they print reaches
the terminal): MNN's through the wheel's own converter module (``_tools.mnnconvert``; the ``mnnconvert`` script
would also try to send a usage log over the network), pnnx as the executable its wheel bundles (the wheel's Python
package imports PyTorch, which this project never installs: ``pip install --no-deps pnnx``). pnnx writes fp32
weights (``fp16=0``: ncnn's fp16 is a run-time option) for one input shape, the exported one, which is the only
shape the predictor's preprocessing produces. Its intermediate files go to a temporary folder, never into the model
folder.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Optional, Sequence, Tuple

from ..errors import ExportError
from ..inference import model_folder

#: the pip packages each format needs (pnnx with --no-deps: its declared dependency is PyTorch)
PACKAGES = {"mnn": ("mnn",), "ncnn": ("ncnn", "pnnx")}
#: MNN's converter, called as its ``mnnconvert`` script calls it (``argv`` as the script's)
_MNN_CONVERT = "import sys, _tools; sys.exit(0 if _tools.mnnconvert(sys.argv) else 1)"
#: the longest a converter may run
_TIMEOUT_S = 900


def available(fmt: str) -> bool:
    """Whether the packages that convert to (and check) ``fmt`` are installed (nothing imported)."""
    if fmt == "mnn":
        return importlib.util.find_spec("_tools") is not None and importlib.util.find_spec("MNN") is not None
    return importlib.util.find_spec("ncnn") is not None and pnnx_executable() is not None


def missing_message(fmt: str) -> str:
    how = "pip install mnn" if fmt == "mnn" else "pip install ncnn && pip install --no-deps pnnx"
    return f"--format {fmt} needs {' and '.join(PACKAGES[fmt])} (`{how}`; both are in the README's install line)"


def pnnx_executable() -> Optional[str]:
    """The ``pnnx`` program inside the pnnx wheel (found without importing its package, which imports PyTorch)."""
    spec = importlib.util.find_spec("pnnx")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        exe = os.path.join(folder, "pnnx")
        if os.path.isfile(exe) and os.access(exe, os.X_OK):
            return exe
    return None


def _run(cmd: Sequence[str], what: str, cwd: Optional[str] = None) -> None:
    try:
        res = subprocess.run(list(cmd), capture_output=True, text=True, errors="replace", timeout=_TIMEOUT_S, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{what} ran for more than {_TIMEOUT_S} s: please report this") from None
    if res.returncode != 0:
        log = (res.stdout + res.stderr).strip()[-1500:]
        raise RuntimeError(f"{what} failed (exit {res.returncode}): {log}")


#: the tensor names in pnnx's ncnn graph
NCNN_IO = {"input": "in0", "output": "out0"}


def io_names(model_dir: str, formats: Sequence[str]) -> dict:
    """``inference.yml``'s ``mobile`` section: the input and output names a phone's code gives each runtime (MNN
    keeps the ONNX file's names, pnnx names them ``in0``/``out0``)."""
    if not formats:
        return {}
    import onnx
    graph = onnx.load(model_folder.path(model_dir, "onnx"), load_external_data=False).graph
    names = {"mnn": {"input": graph.input[0].name, "output": graph.output[0].name}, "ncnn": dict(NCNN_IO)}
    return {f: names[f] for f in formats}


def to_mnn(model_dir: str) -> str:
    """``model_dir/inference.onnx`` -> ``model_dir/inference.mnn`` (fp32 weights). Returns the path."""
    if not available("mnn"):
        raise ExportError(missing_message("mnn"))
    src = os.path.abspath(model_folder.path(model_dir, "onnx"))
    out = os.path.abspath(model_folder.path(model_dir, "mnn"))
    # in a folder of its own: the converter keeps the weights in ./.__convert_external_data.bin while it works, so two
    # conversions from one working directory (two exports at once, the test workers) swapped each other's weights
    work = tempfile.mkdtemp(prefix=".mnn-", dir=model_dir)
    try:
        # the exact GELU: MNN's converter otherwise swaps the model's erf GELU for its tanh approximation (measured
        # on the quickstart's digits: probabilities 4.5e-4 off the ONNX file's, 1.5e-6 with the exact one)
        _run([sys.executable, "-c", _MNN_CONVERT, "-f", "ONNX", "--modelFile", src, "--MNNModel", out, "--bizCode",
              "edgevit", "--useGeluApproximation", "0"], f"MNN's converter on {src}", cwd=work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not os.path.isfile(out):
        raise RuntimeError(f"MNN's converter wrote no {out}: please report this")
    return out


def to_ncnn(model_dir: str, input_size: Sequence[int]) -> Tuple[str, str]:
    """``model_dir/inference.onnx`` -> ``inference.ncnn.param`` + ``inference.ncnn.bin`` for input ``[1, *input_size]``
    (fp32 weights). Returns the two paths."""
    if not available("ncnn"):
        raise ExportError(missing_message("ncnn"))
    src = model_folder.path(model_dir, "onnx")
    param, weights = model_folder.path(model_dir, "ncnn_param"), model_folder.path(model_dir, "ncnn_bin")
    shape = ",".join(str(int(v)) for v in (1, *input_size))
    work = tempfile.mkdtemp(prefix=".pnnx-", dir=model_dir)
    try:
        linked = os.path.join(work, "model.onnx")  # pnnx writes its simplified copy beside its input
        os.symlink(os.path.abspath(src), linked)
        names = {k: os.path.join(work, f"model.{k}") for k in ("pnnxparam", "pnnxbin", "pnnxpy", "pnnxonnx",
                                                               "ncnnpy")}
        _run([pnnx_executable(), linked, f"inputshape=[{shape}]", "fp16=0", f"ncnnparam={param}",
              f"ncnnbin={weights}", *(f"{k}={v}" for k, v in names.items())], f"pnnx on {src}", cwd=work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for f in (param, weights):
        if not os.path.isfile(f):
            raise RuntimeError(f"pnnx wrote no {f}: please report this")
    return param, weights
