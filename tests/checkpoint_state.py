#!/usr/bin/env python3
"""Compares the training state of two checkpoints saved at any layouts, tensor by tensor and bit for bit.

Usage: checkpoint_state.py CHECKPOINT_A CHECKPOINT_B

Each checkpoint is read with this file's own safetensors parser and put back together by the layout that
docs/checkpoints.md documents, from meta.json's config, tp, dp and optimizer_shards alone (none of the program's
code): per TP rank, a flat buffer of its parameter shards in flat order (RMSNorm weights first, then the rest in model
order), cut into optimizer_shards equal ranges held by DP ranks 0.. (file rank-<dp * tp + tp_rank>); the TP shards of
a parameter joined as Megatron lays them out (fused q/k/v and gate/up per TP rank, vocabulary rows padded to a
multiple of tp, o_proj and down_proj split by columns, norms replicated). The full tensors compared: the Adam moments
(optim.exp_avg, optim.exp_avg_sq) and the fp32 weights (optim.master in bf16 training, model.* in fp32). Exit status
1 with the first differing tensor named; 0 with one line per state when every value is bitwise equal.
"""
import json
import os
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "BF16": np.uint16, "F64": np.float64}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    body = data[8 + length:]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(body[begin:end], dtype=DTYPES[entry["dtype"]]).reshape(entry["shape"])
    return tensors


def parameters(config, tp):
    """(name, full shape, how it is split over TP) in model order; a split is None (replicated), ('rows', parts,
    padded rows) or ('cols', parts)."""
    h, inter = config["hidden_size"], config["intermediate_size"]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    d = h // heads
    vocab = config["vocab_size"]
    padded = (vocab + tp - 1) // tp * tp
    out = [("model.embed_tokens.weight", (vocab, h), ("rows", [vocab], padded))]
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", (h,), None),
            (p + "self_attn.qkv_proj.weight", ((heads + 2 * kv_heads) * d, h),
             ("rows", [heads * d, kv_heads * d, kv_heads * d], None)),
            (p + "self_attn.o_proj.weight", (h, heads * d), ("cols", [heads * d])),
            (p + "post_attention_layernorm.weight", (h,), None),
            (p + "mlp.gate_up_proj.weight", (2 * inter, h), ("rows", [inter, inter], None)),
            (p + "mlp.down_proj.weight", (h, inter), ("cols", [inter])),
        ]
    out.append(("model.norm.weight", (h,), None))
    if not config.get("tie_word_embeddings", False):
        out.append(("lm_head.weight", (vocab, h), ("rows", [vocab], padded)))
    return out


def local_shape(shape, split, tp):
    if split is None:
        return shape
    if split[0] == "cols":
        return (shape[0], shape[1] // tp)
    rows = (split[2] if split[2] else shape[0]) // tp
    return (rows,) + tuple(shape[1:])


def join(shards, shape, split):
    """The full tensor from TP shards in rank order."""
    if split is None:
        for s in shards[1:]:
            if not np.array_equal(s.view(np.uint8), shards[0].view(np.uint8)):
                raise SystemExit("a replicated tensor differs between TP ranks")
        return shards[0]
    if split[0] == "cols":
        return np.concatenate(shards, axis=1)
    parts = split[1]
    if split[2]:  # one part, vocabulary rows padded at the end
        return np.concatenate(shards, axis=0)[:shape[0]]
    tp = len(shards)
    pieces = []
    for k, rows in enumerate(parts):  # each shard holds parts[0]/tp rows of part 0, then of part 1, ...
        start = sum(p // tp for p in parts[:k])
        pieces += [s[start:start + rows // tp] for s in shards]
    return np.concatenate(pieces, axis=0)


def state(directory):
    meta = json.load(open(os.path.join(directory, "meta.json")))
    tp, dp, shards = meta["tp"], meta["dp"], meta["optimizer_shards"]
    params = parameters(meta["config"], tp)
    order = [p for p in params if p[2] is None and "norm" in p[0]] + [p for p in params if not (p[2] is None and "norm" in p[0])]
    files = {r: read_safetensors(os.path.join(directory, f"rank-{r:05d}.safetensors")) for r in range(tp * dp)}
    names = ["exp_avg", "exp_avg_sq"] + (["master"] if meta["dtype"] == "BF16" else [])
    full = {}
    for name in names:
        per_tp = []
        for t in range(tp):  # the flat buffer of TP rank t, from its optimizer shards
            flat = np.concatenate([files[d * tp + t]["optim." + name] for d in range(shards)])
            tensors, offset = {}, 0
            for pname, shape, split in order:
                local = local_shape(shape, split, tp)
                n = int(np.prod(local))
                tensors[pname] = flat[offset:offset + n].reshape(local)
                offset += n
            per_tp.append(tensors)
        full[name] = {p: join([per_tp[t][p] for t in range(tp)], shape, split) for p, shape, split in params}
    if meta["dtype"] != "BF16":  # fp32 training: the weights are model.* of DP rank 0's files
        full["weights"] = {p: join([files[t]["model." + p] for t in range(tp)], shape, split)
                           for p, shape, split in params}
    return meta, full


def main():
    a_meta, a = state(sys.argv[1])
    b_meta, b = state(sys.argv[2])
    layout = lambda m: f"tp={m['tp']} dp={m['dp']} shards={m['optimizer_shards']} {m['dtype']}"
    if a.keys() != b.keys():
        raise SystemExit(f"different states: {sorted(a)} vs {sorted(b)}")
    for name in a:
        count = 0
        for p in a[name]:
            x, y = a[name][p], b[name][p]
            if x.shape != y.shape or not np.array_equal(x.view(np.uint8), y.view(np.uint8)):
                diff = np.abs(x.astype(np.float64) - y.astype(np.float64)).max() if x.shape == y.shape else "shape"
                print(f"{name} of {p} differs between {layout(a_meta)} and {layout(b_meta)}: max |a - b| = {diff}")
                sys.exit(1)
            count += x.size
        print(f"{name}: {len(a[name])} tensors, {count} values bitwise equal ({layout(a_meta)} vs {layout(b_meta)})")


if __name__ == "__main__":
    main()
