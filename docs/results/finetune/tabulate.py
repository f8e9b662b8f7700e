"""Top-1 per epoch of training runs as a Markdown table (the README's fine-tuning and recipe tables).

    python docs/results/finetune/tabulate.py NAME=RUN_DIR_OR_METRICS_JSON [...] [--ema]
"""
import json
import os
import sys


def history(path):
    path = os.path.join(path, "metrics.json") if os.path.isdir(path) else path
    with open(path, encoding="utf-8") as f:
        return json.load(f)["history"]


def main(args):
    ema = "--ema" in args
    runs = [a.split("=", 1) for a in args if "=" in a]
    rows = []
    for name, path in runs:
        hist = history(path)
        rows.append((name, [h["eval"].get("acc_top1") for h in hist]))
        if ema and any(h["eval"].get("ema_acc_top1") is not None for h in hist):
            rows.append((f"{name}, EMA", [h["eval"].get("ema_acc_top1") for h in hist]))
    n = max(len(r[1]) for r in rows)
    print("| epoch | " + " | ".join(str(i + 1) for i in range(n)) + " |")
    print("| --- |" + " --- |" * n)
    for name, values in rows:
        print(f"| {name} | " + " | ".join("" if v is None else f"{100 * v:.1f}" for v in values) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
