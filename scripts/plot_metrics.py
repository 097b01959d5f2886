#!/usr/bin/python3
"""Draws loss (and validation loss), learning rate, gradient norm and tokens/s from a run's
metrics.jsonl into a PNG. Usage: plot_metrics.py OUTPUT_DIR [PNG]  (default: OUTPUT_DIR/metrics.png)"""
import json, sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

out = sys.argv[1]
png = sys.argv[2] if len(sys.argv) > 2 else out + "/metrics.png"
records = {}
for line in open(out + "/metrics.jsonl"):
    record = json.loads(line)
    records[record["step"]] = record  # a resumed run rewrites steps after its checkpoint: keep the last
steps = sorted(records)
series = lambda key: [records[s][key] for s in steps]
fig, axes = plt.subplots(2, 2, figsize=(11, 7))
axes[0][0].plot(steps, series("loss"), label="train")
val = [(s, records[s]["val_loss"]) for s in steps if "val_loss" in records[s]]
if val:
    axes[0][0].plot(*zip(*val), "o-", label="validation")
axes[0][0].set_title("loss"); axes[0][0].legend()
axes[0][1].plot(steps, series("lr")); axes[0][1].set_title("learning rate")
axes[1][0].plot(steps, series("grad_norm")); axes[1][0].set_title("gradient norm (before clipping)")
axes[1][1].plot(steps, series("tokens_per_s")); axes[1][1].set_title("tokens/s")
for ax in axes.flat:
    ax.set_xlabel("step"); ax.grid(alpha=0.3)
fig.suptitle(out)
fig.tight_layout()
fig.savefig(png, dpi=90)
print("wrote", png)
