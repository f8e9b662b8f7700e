"""Every registered EdgeViT model in every variant of its switches, at its default size (224), exported with random
weights to every format and checked by the export itself (MNN and ncnn against the Paddle predictor: probabilities
within 1e-4, the same top-1).

    python docs/results/deploy/edge_matrix.py OUT_DIR
"""
import os
import shutil
import sys
import time

import edgevit_paddle as ep
from edgevit_paddle.export import export_registered


def main(out):
    for name in ep.list_models():
        cfg = ep.create_model(name).default_cfg
        if cfg.family != "edgevit":
            continue
        for variant in cfg.variants():
            folder = os.path.join(out, "_".join([name] + [f"{k}-{v}" for k, v in variant.items()]))
            t0 = time.time()
            res = export_registered(name, folder, **variant)
            c = res["checks"]
            print(f"{name} {variant}: {cfg.input_size[1]}x{cfg.input_size[2]}, MNN {c['mnn']['max_abs_diff']:.1e} "
                  f"(top-1 {100 * c['mnn']['top1_agreement']:.0f}%), ncnn {c['ncnn']['max_abs_diff']:.1e} "
                  f"(top-1 {100 * c['ncnn']['top1_agreement']:.0f}%), {time.time() - t0:.0f} s", flush=True)
            shutil.rmtree(folder)


if __name__ == "__main__":
    main(sys.argv[1])
