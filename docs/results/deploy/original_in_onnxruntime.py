"""Baseline for the deployment table: the EdgeViT authors' XXS in PyTorch, exported to ONNX Runtime as a user of
their code would, timed side by side with our exports on the same machine in the same session.

Not part of the package (it needs torch: ``pip install torch==2.13.0``). The module below follows the structure in
``../shared/reference/README.md`` and must reproduce the authors' reference logits from their weights before any
time is reported (it does: see the first line it prints).

    python docs/results/deploy/original_in_onnxruntime.py OUT_DIR [our_model_dir ...]
"""
import os
import sys
import time

import numpy as np
import onnxruntime as ort
import torch
import torch.nn as nn

REF = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "shared", "reference",
                   "edgevit_xxs_official_ref.npz")


class Mlp(nn.Module):
    def __init__(self, dim, hidden, conv):
        super().__init__()
        make = (lambda i, o: nn.Conv2d(i, o, 1)) if conv else nn.Linear
        self.fc1, self.fc2, self.act = make(dim, hidden), make(hidden, dim), nn.GELU()

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class LocalAgg(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1, self.norm2 = nn.BatchNorm2d(dim), nn.BatchNorm2d(dim)
        self.conv1, self.conv2 = nn.Conv2d(dim, dim, 1), nn.Conv2d(dim, dim, 1)
        self.attn = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.mlp = Mlp(dim, 4 * dim, conv=True)

    def forward(self, x):
        x = x + self.pos_embed(x)
        x = x + self.conv2(self.attn(self.conv1(self.norm1(x))))
        return x + self.mlp(self.norm2(x))


class GlobalSparseAttn(nn.Module):
    def __init__(self, dim, heads, r):
        super().__init__()
        self.heads, self.scale, self.r = heads, (dim // heads) ** -0.5, r
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        if r > 1:
            self.sampler = nn.AvgPool2d(1, r)
            self.LocalProp = nn.ConvTranspose2d(dim, dim, r, stride=r, groups=dim)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x, H, W):
        B, N, C = x.shape
        if self.r > 1:
            x = self.sampler(x.transpose(1, 2).reshape(B, C, H, W)).flatten(2).transpose(1, 2)
        q, k, v = self.qkv(x).reshape(B, -1, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) * self.scale).softmax(-1)
        x = (attn @ v).transpose(1, 2).reshape(B, -1, C)
        if self.r > 1:
            x = self.LocalProp(x.permute(0, 2, 1).reshape(B, C, H // self.r, W // self.r))
            x = self.norm(x.reshape(B, C, -1).permute(0, 2, 1))
        return self.proj(x)


class SelfAttn(nn.Module):
    def __init__(self, dim, heads, r):
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn = GlobalSparseAttn(dim, heads, r)
        self.mlp = Mlp(dim, 4 * dim, conv=False)

    def forward(self, x):
        x = x + self.pos_embed(x)
        B, C, H, W = x.shape
        x = x.flatten(2).transpose(1, 2)
        x = x + self.attn(self.norm1(x), H, W)
        x = x + self.mlp(self.norm2(x))
        return x.transpose(1, 2).reshape(B, C, H, W)


class LGLBlock(nn.Module):
    def __init__(self, dim, heads, r):
        super().__init__()
        self.LocalAgg = LocalAgg(dim) if r > 1 else nn.Identity()
        self.SelfAttn = SelfAttn(dim, heads, r)

    def forward(self, x):
        return self.SelfAttn(self.LocalAgg(x))


class PatchEmbed(nn.Module):
    def __init__(self, cin, dim, p):
        super().__init__()
        self.proj, self.norm = nn.Conv2d(cin, dim, p, stride=p), nn.LayerNorm(dim)

    def forward(self, x):
        x = self.proj(x)
        B, C, H, W = x.shape
        return self.norm(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(B, C, H, W)


class EdgeViTXXS(nn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        dims, depths, ratios, cin = (36, 72, 144, 288), (1, 1, 3, 2), (4, 2, 2, 1), 3
        for i in range(4):
            setattr(self, f"patch_embed{i + 1}", PatchEmbed(cin, dims[i], 4 if i == 0 else 2))
            setattr(self, f"blocks{i + 1}", nn.ModuleList([LGLBlock(dims[i], dims[i] // 36, ratios[i])
                                                           for _ in range(depths[i])]))
            cin = dims[i]
        self.norm, self.head = nn.BatchNorm2d(288), nn.Linear(288, num_classes)

    def forward(self, x):
        for i in range(1, 5):
            x = getattr(self, f"patch_embed{i}")(x)
            for blk in getattr(self, f"blocks{i}"):
                x = blk(x)
        return self.head(self.norm(x).flatten(2).mean(-1))


def session(path, threads=2):
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as our predictor
    ort.set_default_logger_severity(3)
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def checked_onnx(out_dir):
    """The module checked against the authors' reference logits (their weights), then a 1000-class one (random
    weights) exported to ``out_dir/original_xxs.onnx`` as a user of their code would. Returns (path, relative
    error of the check)."""
    ref = np.load(REF)
    model = EdgeViTXXS(num_classes=10).eval()
    model.load_state_dict({k: torch.from_numpy(ref[k]) for k in ref.files if not k.startswith("__")})
    with torch.no_grad():
        got = model(torch.from_numpy(ref["__input__"])).numpy()
    err = float(np.abs(got - ref["__logits__"]).max() / np.abs(ref["__logits__"]).max())
    assert err < 1e-5, err
    path = os.path.join(out_dir, "original_xxs.onnx")
    torch.onnx.export(EdgeViTXXS(num_classes=1000).eval(), torch.randn(1, 3, 224, 224), path, input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": {0: "batch"}}, opset_version=17, dynamo=False)
    return path, err


def main(out_dir, ours):
    os.makedirs(out_dir, exist_ok=True)
    path, err = checked_onnx(out_dir)
    print(f"authors' structure reproduces their logits to {err:.1e} relative")
    sessions = {"authors' PyTorch -> ONNX Runtime": session(path)}
    for d in ours:
        sessions[f"ours {os.path.basename(d.rstrip('/'))} -> ONNX Runtime"] = session(os.path.join(d, "inference.onnx"))
    xs = {b: np.random.RandomState(0).standard_normal([b, 3, 224, 224]).astype(np.float32) for b in (1, 8)}
    times = {(n, b): [] for n in sessions for b in xs}
    for n, s in sessions.items():  # warm-up
        for b, x in xs.items():
            for _ in range(3):
                s.run(None, {s.get_inputs()[0].name: x})
    for _ in range(20):  # interleaved rounds
        for n, s in sessions.items():
            for b, x in xs.items():
                t0 = time.perf_counter()
                s.run(None, {s.get_inputs()[0].name: x})
                times[(n, b)].append(time.perf_counter() - t0)
    print("| model (224x224, fp32, 2 threads) | batch 1 (ms) | batch 8 (ms) |\n| --- | ---: | ---: |")
    for n in sessions:
        print(f"| {n} | {1000 * np.median(times[(n, 1)]):.1f} | {1000 * np.median(times[(n, 8)]):.1f} |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
