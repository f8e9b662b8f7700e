"""Classify images with an exported model through any backend of the table (Paddle Inference with oneDNN, GPU or
TensorRT; ONNX Runtime; OpenVINO; ``--backend auto`` picks the first installed that fits).

    python tools/infer.py --model-dir output/quickstart/inference img.png more/ "photos/**/*.jpg"
    python tools/infer.py --model-dir DIR --precision int8 --batch-size 8 --json images/      (exported with --int8)
    python tools/infer.py --model-dir DIR --backend paddle --precision bf16 images/           (AVX512-BF16 CPUs)
    python tools/infer.py --model-dir DIR --device gpu --use-tensorrt --precision fp16 images/   (GPU build only)

Unreadable, empty or truncated files, and images the model fails on, are reported on their own line and skipped; the
exit code is 3 when some inputs failed (the others are classified), 2 for a user error that stops the tool, 1 only
for a bug (with its traceback).
"""
import argparse
import json
import sys

from . import UserError, run


def main(argv=None):
    from edgevit_paddle.inference import backends

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="image files, folders (recursive) or globs")
    p.add_argument("--model-dir", required=True, help="folder written by tools/export.py")
    p.add_argument("--device", choices=backends.devices(), default="cpu")
    p.add_argument("--backend", choices=backends.choices(), default=backends.AUTO, help=backends.help_text())
    p.add_argument("--gpu-id", type=int, default=0)
    p.add_argument("--gpu-mem", type=int, default=500, help="initial GPU memory pool in MB")
    p.add_argument("--use-tensorrt", action="store_true", help="TensorRT engine (GPU build with TensorRT only)")
    p.add_argument("--precision", choices=(backends.AUTO, *backends.precisions()), default=backends.AUTO,
                   help="auto (default): the fastest precision the export measured with at least --min-agreement "
                        "top-1 agreement with fp32 (fp32 when none); or "
                        + "; ".join(f"{b.name}: " + ", ".join(f"{d} {'/'.join(ps)}" for d, ps in b.precisions.items())
                                    for b in backends.BACKENDS) + " (int8: a model exported with --int8)")
    p.add_argument("--min-agreement", type=float, default=99.5, metavar="PERCENT",
                   help="for --precision auto: the least top-1 agreement with fp32, in percent (default 99.5)")
    p.add_argument("--trt-batch", default="1,1,8", help="TensorRT min,opt,max batch sizes (default 1,1,8)")
    p.add_argument("--cpu-threads", type=int, default=2)
    p.add_argument("--mkldnn", dest="mkldnn", action="store_true", default=True, help="oneDNN on CPU (default)")
    p.add_argument("--no-mkldnn", dest="mkldnn", action="store_false", help="plain CPU kernels")
    p.add_argument("--ort-spin", action="store_true", help="ONNX Runtime's threads spin-wait between ops: faster when "
                                                           "nothing else uses the cores, slower when something does")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--labels", metavar="FILE",
                   help="class names, one per line in class-id order, instead of those in inference.yml (set at "
                        "export from Infer.label_file or the run's labels.txt; image folders: their class folders)")
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.add_argument("--verbose", action="store_true", help="keep Paddle's own log")
    args = p.parse_args(argv)

    from tqdm import tqdm

    from edgevit_paddle.inference import Predictor, PredictorOptions, expand_inputs

    try:
        trt = tuple(int(v) for v in args.trt_batch.split(","))
    except ValueError:
        trt = ()
    if not (len(trt) == 3 and 1 <= trt[0] <= trt[1] <= trt[2]):
        raise UserError(f"--trt-batch '{args.trt_batch}' must be three batch sizes min<=opt<=max, e.g. 1,4,8")
    if args.topk < 1:
        raise UserError(f"--topk {args.topk}: ask for at least 1 class per image, e.g. --topk 5")
    if not 0 < args.min_agreement <= 100:
        raise UserError(f"--min-agreement {args.min_agreement:g} is a percentage: give one in (0, 100], e.g. 99.5")
    paths = expand_inputs(args.inputs)
    if not paths:
        raise UserError(f"no images found in {' '.join(args.inputs)}")
    opts = PredictorOptions(device=args.device, backend=args.backend, gpu_id=args.gpu_id, gpu_mem=args.gpu_mem,
                            use_tensorrt=args.use_tensorrt, precision=args.precision, cpu_threads=args.cpu_threads,
                            mkldnn=args.mkldnn, batch_size=args.batch_size, trt_shapes=trt, verbose=args.verbose,
                            labels=args.labels, ort_spin=args.ort_spin, min_agreement=args.min_agreement / 100)
    predictor = Predictor(args.model_dir, opts)
    if predictor.precision_reason:
        print(f"running {predictor.backend_name} at precision {predictor.precision_reason}", file=sys.stderr)
    failed = 0
    bar = tqdm(total=len(paths), unit="img", disable=len(paths) < 20 or args.json, file=sys.stderr)
    for res in predictor.predict_paths(paths, args.topk):
        bar.update(1)
        if "error" in res:
            failed += 1
            print(f"error: {res['path']}: {res['error']} (skipped)", file=sys.stderr)
            if args.json:
                print(json.dumps(res))
            continue
        if args.json:
            print(json.dumps(res))
        else:
            best = ", ".join(f"{t['label']} ({t['class_id']}) {t['score']:.4f}" for t in res["topk"])
            bar.write(f"{res['path']}: {best}")
    bar.close()
    if failed:
        print(f"{failed} of {len(paths)} inputs could not be read", file=sys.stderr)
    return INPUTS_FAILED if failed else 0


#: the exit code when some inputs could not be classified (the others were): apart from 1, a bug with its traceback,
#: and 2, a user error that stopped the tool
INPUTS_FAILED = 3


def cli() -> None:
    run(main)
