"""tools/summary.py prints the summary, parameters and GMACs; bad input is a one-line error with exit code 2."""
import os
import subprocess
import sys

from conftest import ROOT

TOOL = os.path.join(ROOT, "tools", "summary.py")


def run(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True)


def test_summary_prints_params_and_gmacs():
    res = run("--model", "edgevit_xxs", "--norm", "gn", "--ffn", "conv", "--input", "1,3,224,224")
    assert res.returncode == 0, res.stderr
    assert "parameters: 4,067,704" in res.stdout and "GMACs at 1x3x224x224: 0.561" in res.stdout
    assert "Total params" in res.stdout  # paddle.summary's table


def test_summary_bad_inputs():
    for args, text in [(["--model", "edgevit_xxs", "--input", "1,3,100,100"], "nearest valid height: 96 or 128"),
                       (["--model", "edgevit_xxxs"], "unknown model 'edgevit_xxxs'"),
                       (["--input", "1,3,a,b"], "cannot read the shape")]:
        res = run(*args)
        assert res.returncode == 2, res.stderr
        assert res.stderr.startswith("error: ") and text in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
