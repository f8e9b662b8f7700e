"""Export a trained model for deployment: Paddle Inference (inference.json + .pdiparams), ONNX (inference.onnx), the
mobile runtimes MNN (inference.mnn) and ncnn (inference.ncnn.param/.bin), optionally INT8 (inference_int8.onnx), and
inference.yml; BatchNorms folded; every file checked.

    python tools/export.py -c output/quickstart/config.yaml --weights output/quickstart/checkpoints/best
    python tools/export.py -c output/run/config.yaml --weights output/run/checkpoints/best --int8 --calib-images 128
    python tools/export.py -c configs/edgevit/edgevit_xxs_flowers102.yaml --out /tmp/xxs   # random weights
    python tools/export.py --model edgevit_xxs --norm bn --out /tmp/xxs_bn                  # registry name, random
"""
import argparse
import os

from . import UserError, add_switch_options, run


def main(argv=None):
    from edgevit_paddle.export import FORMATS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", help="the run's config.yaml (or any config)")
    p.add_argument("--model", help="instead of -c: a registered model name, exported with random weights")
    switches = add_switch_options(p, "with --model: ")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--weights", help="checkpoint prefix or .pdparams (default: random weights, for benchmarks)")
    p.add_argument("--out", help="output folder (default: Export.output_dir, else <run>/inference)")
    p.add_argument("--format", default="all", choices=FORMATS,
                   help="paddle: Paddle Inference only; onnx: also inference.onnx; mnn / ncnn: also that mobile "
                        "runtime's files (from the ONNX file); all (default): every format whose packages are "
                        "installed")
    p.add_argument("--int8", action="store_true", help="also inference_int8.onnx: post-training static INT8 for "
                                                       "ONNX Runtime on CPU, calibrated on training images")
    p.add_argument("--calib-images", type=int, default=64, help="training images for the INT8 calibration")
    p.add_argument("--agreement-images", type=int, default=256,
                   help="eval images on which each precision's top-1 agreement with fp32 is measured and recorded "
                        "for tools/infer.py --precision auto (0: none; with -c only)")
    p.add_argument("--no-fold", action="store_true", help="keep BatchNorms as they are")
    p.add_argument("--paddlex-name", help="the model name inference.yml gives PaddleX (Global.model_name), which "
                                          "runs only names it registers, e.g. ResNet18 (default: Export.paddlex_name, "
                                          "else the model's own name)")
    args = p.parse_args(argv)

    from edgevit_paddle.config import load_config
    from edgevit_paddle.export import export_from_config, export_registered

    if args.model:
        if args.config or args.weights or args.int8:
            raise UserError("--model exports random weights: give either --model or -c/--weights (and --int8)")
        res = export_registered(args.model, args.out or os.path.join("output", f"{args.model}_inference"),
                                fold=not args.no_fold, formats=args.format, paddlex_name=args.paddlex_name,
                                **{s: getattr(args, s) for s in switches})
    elif args.config:
        overrides = args.override + ([f"Export.paddlex_name={args.paddlex_name}"] if args.paddlex_name else [])
        res = export_from_config(load_config(args.config, overrides), args.weights, args.out,
                                 fold=False if args.no_fold else None, formats=args.format, int8=args.int8,
                                 calib_images=args.calib_images, agreement_images=args.agreement_images)
    else:
        raise UserError("give -c CONFIG (with --weights for a trained model) or --model NAME")
    for path in res["files"].values():
        print(f"wrote {path}")
    for why in res.get("skipped", []):
        print(f"skipped: {why}")
    checks = res["checks"]
    for c in checks.get("paddle", []):
        print(f"checked: Paddle predictor vs dygraph at {c['size'][0]}x{c['size'][1]}, max abs difference "
              f"{c['max_abs_diff']:.2e}")
    if "onnx" in checks:
        print(f"checked: ONNX Runtime vs Paddle predictor, max abs difference {checks['onnx']:.2e}")
    for fmt, name in (("mnn", "MNN"), ("ncnn", "ncnn")):
        if fmt in checks:
            c = checks[fmt]
            print(f"checked: {name} vs Paddle predictor, max abs difference {c['max_abs_diff']:.2e}, top-1 the same "
                  f"for {100 * c['top1_agreement']:.0f}% of the check images; {name} fp16 vs fp32 top-1 agreement "
                  f"{100 * c['fp16_top1_agreement']:.1f}% (on this CPU; a phone's fp16 differs: measure with "
                  f"edgevit-benchmark --precision-check ... --precision fp16 --backend {fmt})")
    recorded = checks.get("precisions")
    if recorded:
        print(f"measured for --precision auto on {recorded['images']} eval images ({recorded['machine']}, "
              f"{recorded['threads']} threads):")
        for e in recorded["measured"]:
            print(f"  {e['backend']:12s} {e['precision']:5s} top-1 agreement with fp32 "
                  f"{100 * e['top1_agreement']:6.2f}%, {e['ms_batch1']:.2f} ms at batch 1")
    if "int8_top1_agreement" in checks:
        print(f"checked: INT8 vs fp32 top-1 agreement on the check batch {100 * checks['int8_top1_agreement']:.1f}% "
              "(measure it on a test set with edgevit-benchmark --precision-check)")
    return 0


def cli() -> None:
    run(main)
