#!/usr/bin/env python3
"""MFU as the README defines it, checked on real runs of the binary (usage: mfu_test.py BINARY CONFIG WORKDIR):
  1. with --peak_tflops P, every step's tokens/s = its batch x seq_len tokens / its step time, and its MFU = that x
     FLOPs per token / (P x ranks), FLOPs per token counted here by hand from config.json (6 x the non-embedding
     parameters + 12 x layers x hidden x seq_len);
  2. a bf16 run measures its MFU denominator with bf16 GEMMs (the log says which);
  3. a peak far below what the steps reach is corrected: no step after the first reports MFU above 100%, and
     the log says the peak was under-measured."""
import json, subprocess, sys

binary, config_path, work = sys.argv[1:4]
seq = 64
config = json.load(open(config_path))
h, inter, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
heads, kv = config["num_attention_heads"], config.get("num_key_value_heads", config["num_attention_heads"])
d = h // heads
per_layer = h * heads * d + 2 * h * kv * d + heads * d * h + 3 * h * inter + 2 * h
params = layers * per_layer + h + config["vocab_size"] * h  # blocks, final norm, lm_head (untied)
flops_per_token = 6 * params + 12 * layers * h * seq
failures = []


def train(name, *flags):
    out = f"{work}/{name}"
    run = subprocess.run([binary, "train", "--config", config_path, "--synthetic_data", "--seq_len", str(seq),
                          "--max_steps", "4", "--batch_size", str(batch), "--output_dir", out, *flags],
                         capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"{name}: exit {run.returncode}\n{run.stdout}\n{run.stderr}")
    return run.stdout, [json.loads(line) for line in open(f"{out}/metrics.jsonl")]


peak_tflops, batch = 10.0, 2
_, steps = train("given_peak", "--peak_tflops", str(peak_tflops))
for m in steps:
    tokens_per_s = batch * seq / m["step_time_s"]  # the step's known tokens over its time
    if abs(m["tokens_per_s"] - tokens_per_s) > 1e-6 * tokens_per_s:
        failures.append(f"step {m['step']}: tokens/s {m['tokens_per_s']} but {batch} x {seq} tokens / "
                        f"{m['step_time_s']} s = {tokens_per_s}")
    expected = tokens_per_s * flops_per_token / (peak_tflops * 1e12)
    if abs(m["mfu"] - expected) > 1e-6 * expected:
        failures.append(f"step {m['step']}: MFU {m['mfu']} but tokens/s x FLOPs/token / peak = {expected}")

log, _ = train("bf16", "--use_mix_precision")
if "oneDNN bf16 GEMM" not in log:
    failures.append("a bf16 run's MFU denominator is not the bf16 GEMM peak:\n" +
                    "\n".join(l for l in log.splitlines() if "MFU denominator" in l))

log, steps = train("low_peak", "--peak_tflops", "1e-6")
if any(m["mfu"] > 1 for m in steps[1:]):
    failures.append("MFU above 100% after the first step: %s" % [m["mfu"] for m in steps])
if "under-measured" not in log:
    failures.append("no line says the peak was under-measured")

print(f"FLOPs per token {flops_per_token}; {len(failures)} failures")
for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
