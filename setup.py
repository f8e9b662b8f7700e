"""edgevit-paddle: EdgeViT and light-weight vision transformers in PaddlePaddle.

PaddlePaddle is deliberately not a dependency: `paddlepaddle` (CPU) and `paddlepaddle-gpu` both provide the
`paddle` package and break each other, so installing this package must never pull one over the other.
"""
import os

from setuptools import find_packages, setup

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "requirements.txt")) as f:
    requirements = [line.split("#")[0].strip() for line in f if line.split("#")[0].strip()]

setup(
    name="edgevit-paddle",
    version="0.1.0",
    description="EdgeViT and light-weight vision transformers in PaddlePaddle: models, training, export, benchmarks",
    long_description=open(os.path.join(here, "README.md")).read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["edgevit_paddle", "edgevit_paddle.*"]),
    # the compiled kernels' sources: built on first use (edgevit_paddle/kernels/__init__.py)
    package_data={"edgevit_paddle.kernels": ["*.cc", "*.h"]},
    python_requires=">=3.9",
    install_requires=requirements,
    # the tools, installed as commands that work from any folder (tools/*.py run the same code from a checkout)
    entry_points={"console_scripts": [f"edgevit-{name}=edgevit_paddle.cli.{name}:cli" for name in (
        "train", "eval", "export", "infer", "benchmark", "summary", "convert")]},
    license="Apache-2.0",
)
