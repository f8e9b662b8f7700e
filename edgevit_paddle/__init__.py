"""edgevit-paddle: EdgeViT and light-weight vision transformers in PaddlePaddle.

Importing the package changes one thing outside it: ``MKL_DEBUG_CPU_TYPE=5`` is set in the environment unless the
user set it (MKL, bundled with Paddle's CPU wheel, takes a slow generic path on AMD CPUs unless told the CPU type,
and reads it when Paddle loads; measured on a 2-core AMD EPYC: the quickstart's training epoch 24.7 s -> 18.8 s,
bit-identical losses). Paddle's import-time noise (``paddle_noise``) is silenced around our own ``import paddle``
only; warning filters, ``paddle.flops``' tables and Paddle's flags are left as they were.
"""
import os
import warnings

os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5")

from . import paddle_noise  # noqa: E402

try:
    with warnings.catch_warnings():
        paddle_noise.quiet()
        import paddle  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "edgevit_paddle needs PaddlePaddle, which is installed separately: `pip install paddlepaddle==3.3.1` (CPU) "
        "or the paddlepaddle-gpu wheel for your CUDA version (see README, 'GPU') — never both") from e

from .models import EdgeViT, EdgeViT_S, EdgeViT_XS, EdgeViT_XXS, VisionTransformer, ViT, ViTBN, ViTBNFFN  # noqa: E402
from .registry import create_model, list_models, model_entrypoint, register_model  # noqa: E402

__version__ = "0.1.0"

__all__ = ["create_model", "list_models", "model_entrypoint", "register_model", "EdgeViT", "EdgeViT_XXS",
           "EdgeViT_XS", "EdgeViT_S", "VisionTransformer", "ViT", "ViTBNFFN", "ViTBN", "__version__"]
