"""Paddle Inference model -> ONNX (``inference.onnx``, paddle2onnx) and post-training static INT8 quantisation
(``inference_int8.onnx``, ONNX Runtime's quantiser), beside the Paddle files in one model folder.

paddle2onnx runs with its optimiser off (``optimize_tool="None"``): its default, polygraphy, would try to install
packages at run time. ``tidy`` then removes what computes nothing (onnxoptimizer) and names the dimensions; ONNX
Runtime optimises the rest itself when it loads the graph.
"""
from __future__ import annotations

import logging
import os
import tempfile
from typing import Iterable, Optional

import numpy as np

from ..errors import ExportError
from ..inference import model_folder
from ..native_output import native_output_redirected

#: ONNX opset: 17 has LayerNormalization, which ONNX Runtime runs as one fused kernel
OPSET = 17


def to_onnx(model_dir: str, opset: int = OPSET, program_dir: Optional[str] = None) -> str:
    """Convert ``program_dir`` (default ``model_dir``)'s ``inference.json`` + ``.pdiparams`` to
    ``model_dir/inference.onnx`` (dynamic batch, and dynamic height and width where the Paddle model has them).
    Returns the path."""
    program_dir = program_dir or model_dir
    try:
        import paddle2onnx
    except ImportError:
        raise ExportError("ONNX export needs paddle2onnx (a dependency of this package): reinstall the package, "
                          "or export with --format paddle") from None
    os.environ.setdefault("POLYGRAPHY_AUTOINSTALL_DEPS", "0")  # nothing may install packages at run time
    out = model_folder.path(model_dir, "onnx")
    with tempfile.TemporaryFile(mode="w+") as log, native_output_redirected(to=log):
        def failure(cause: str) -> RuntimeError:
            log.seek(0)
            return RuntimeError(f"paddle2onnx could not convert {model_folder.path(program_dir, 'paddle_program')} "
                                f"({cause}): {log.read()[-1500:]}")

        try:
            paddle2onnx.export(model_folder.path(program_dir, "paddle_program"),
                               model_folder.path(program_dir, "paddle_params"), out, opset_version=opset,
                               enable_onnx_checker=True, optimize_tool="None", verbose=False)
        except OSError:  # a full disk, a read-only folder: the export's own one-line handling
            raise
        except (Exception, SystemExit) as e:  # noqa: BLE001 - paddle2onnx logs a conversion error, then fails on
            # its own missing result, or calls sys.exit(-1) on a program it cannot read: re-raised with its log, its
            # traceback kept
            raise failure(repr(e)) from e
        if not os.path.isfile(out):
            raise failure("no file written")
    tidy(out)
    return out


#: onnxoptimizer's passes that only remove or merge what computes nothing (each checked numerically by the export);
#: paddle2onnx's graph of EdgeViT-XXS: 2,214 nodes (790 Constant, 584 Identity) -> 833 after tidy (519 since
#: the GroupNorm affines fold and the attention reshapes compute no shapes)
_TIDY_PASSES = ["eliminate_identity", "eliminate_deadend", "extract_constant_to_initializer",
                "eliminate_unused_initializer", "eliminate_duplicate_initializer", "eliminate_nop_transpose",
                "eliminate_nop_reshape", "fuse_consecutive_transposes", "fuse_consecutive_squeezes",
                "fuse_consecutive_unsqueezes", "eliminate_common_subexpression", "eliminate_nop_with_unit",
                "eliminate_nop_concat", "eliminate_nop_split"]
#: the names of the input's dimensions (paddle2onnx writes ``DynamicDimension.<n>``)
INPUT_DIMS = ("batch", "channels", "height", "width")


def tidy(path: str) -> None:
    """Make paddle2onnx's file what ONNX Runtime, OpenVINO and Netron load without a word: no node that computes
    nothing (onnxoptimizer's elimination passes), constant ``Unsqueeze``s folded into initializers (ONNX Runtime warns
    that it cannot remove them when a weight feeds several), named dimensions (``batch``, ``height``, ``width``; the
    output's ``batch``), our producer name and version, and only the operator domains the nodes use."""
    import onnx
    import onnxoptimizer

    from .. import __version__
    model = onnxoptimizer.optimize(onnx.load(path), _TIDY_PASSES, fixed_point=True)
    _fold_constant_unsqueezes(model.graph)
    model = onnxoptimizer.optimize(model, ["eliminate_unused_initializer"])
    renamed = {}
    for vi in model.graph.input:
        for name, dim in zip(INPUT_DIMS, vi.type.tensor_type.shape.dim):
            if not dim.HasField("dim_value"):
                renamed[dim.dim_param] = name
                dim.dim_param = name
    for vi in list(model.graph.output) + list(model.graph.value_info):
        for dim in vi.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value") and dim.dim_param in renamed:
                dim.dim_param = renamed[dim.dim_param]
    for vi in model.graph.output:
        first = vi.type.tensor_type.shape.dim[0]
        if not first.HasField("dim_value"):
            first.dim_param = "batch"
    model.producer_name, model.producer_version = "edgevit-paddle", __version__
    used = {n.domain or "" for n in model.graph.node} | {""}
    keep = [o for o in model.opset_import if (o.domain or "") in used]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)


def _fold_constant_unsqueezes(graph) -> None:
    """Each ``Unsqueeze`` of an initializer by constant axes becomes an initializer holding its result."""
    from onnx import numpy_helper
    inits = {t.name: t for t in graph.initializer}
    for node in list(graph.node):
        if node.op_type == "Unsqueeze" and len(node.input) == 2 and all(i in inits for i in node.input):
            value = numpy_helper.to_array(inits[node.input[0]])
            axes = numpy_helper.to_array(inits[node.input[1]]).reshape(-1)
            for axis in sorted(int(a) % (value.ndim + len(axes)) for a in axes):
                value = np.expand_dims(value, axis)
            folded = numpy_helper.from_array(value, node.output[0])
            graph.initializer.append(folded)
            inits[folded.name] = folded
            graph.node.remove(node)


class _Batches:
    """ONNX Runtime's ``CalibrationDataReader`` protocol over an iterable of preprocessed float32 batches."""

    def __init__(self, batches: Iterable[np.ndarray], input_name: str):
        self.it = iter(batches)
        self.input_name = input_name

    def get_next(self) -> Optional[dict]:
        batch = next(self.it, None)
        return None if batch is None else {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)}


def quantize_int8(model_dir: str, calibration: Iterable[np.ndarray]) -> str:
    """Post-training static quantisation of ``model_dir/inference.onnx`` into ``inference_int8.onnx``: QDQ format,
    convolutions and matmuls only (quantising every op, softmax and adds included, agreed with fp32 on 87% of the
    Flowers-102 test images, these two on 96%), int8 weights per output channel, uint8 activations with min/max
    ranges from ``calibration`` (batches preprocessed as the predictor does, e.g. training images through the eval
    transform). Returns the path."""
    try:
        import onnx
        import onnxruntime
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as e:
        raise ExportError(f"INT8 export needs onnxruntime with its quantiser ({e}): reinstall the package") from None
    src = model_folder.path(model_dir, "onnx")
    out = model_folder.path(model_dir, "onnx_int8")
    onnxruntime.set_default_logger_severity(3)  # calibration sessions would log every unused initializer
    input_name = onnx.load(src, load_external_data=False).graph.input[0].name
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs a line per rescaled weight, and per 1-D constant it skips
    with tempfile.TemporaryDirectory() as tmp:
        prepared = os.path.join(tmp, "prepared.onnx")
        quant_pre_process(src, prepared, skip_symbolic_shape=True)
        try:
            quantize_static(prepared, out, _Batches(calibration, input_name), quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=["Conv", "MatMul"], per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
        finally:
            root.setLevel(level)
    return out
