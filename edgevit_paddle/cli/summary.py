"""Print a model's layer summary, parameters and GMACs (attention matmuls included).

    python tools/summary.py --model edgevit_xxs --norm gn --ffn conv --input 1,3,224,224
    python tools/summary.py --table            # every preset x variant, as a Markdown table
"""
import argparse

from . import add_switch_options, parse_shape, run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="edgevit_xxs", help="registered model name (see --list)")
    switches = add_switch_options(p)
    p.add_argument("--num-classes", type=int, help="classifier outputs (default: the preset's)")
    p.add_argument("--input", help="input shape N,C,H,W (default: 1 x the model's default input size)")
    p.add_argument("--table", action="store_true", help="print the parameters/GMACs table of every preset")
    p.add_argument("--list", action="store_true", help="list the registered models")
    args = p.parse_args(argv)

    import paddle

    from edgevit_paddle import create_model, list_models
    from edgevit_paddle.complexity import complexity_table, count_macs, count_params

    if args.list:
        print("\n".join(list_models()))
        return 0
    if args.table:
        print(complexity_table(list_models()))
        return 0
    model = create_model(args.model, num_classes=args.num_classes, **{s: getattr(args, s) for s in switches})
    shape = parse_shape(args.input) if args.input else [1, *model.default_input_size]
    model.eval()
    model(paddle.zeros(shape))  # checks the size with a clear message before the summary's hooks run
    paddle.summary(model, tuple(shape))
    print(f"model: {args.model}  variant: {model.default_cfg.variant_label() or '-'}  "
          f"stride: {model.default_cfg.stride}")
    print(f"parameters: {count_params(model):,}  (BatchNorm running statistics not counted)")
    print(f"GMACs at {'x'.join(map(str, shape))}: {count_macs(model, shape) / 1e9:.3f}  (attention matmuls included)")
    return 0


def cli() -> None:
    run(main)
