#!/usr/bin/env python3
"""An independent reader of our GGUF files (the GGUF v3 layout from llama.cpp's docs/gguf.md, numpy only).

Usage: gguf_check.py MODEL.gguf DTYPE HF_EXPORT_DIR VOCAB_TSV
  HF_EXPORT_DIR: `export-hf` of the same checkpoint (config.json + model.safetensors);
  VOCAB_TSV: Debian's `spm_export_vocab` of the tokenizer (piece TAB score per line, in id order).
Checks every metadata key llama.cpp reads against config.json and the vocabulary, every tensor's llama.cpp name,
shape, type and 32-byte aligned offset, and its bytes: f32 bitwise the HF tensor (q and k rows permuted as
llama.cpp's converter does), f16 and bf16 the HF tensor rounded to nearest even, q8_0 the blocks ggml's reference
quantizer makes. Prints one line per file; exits 1 naming the first difference.
"""
import json
import struct
import sys

import numpy as np

GGML = {0: "f32", 1: "f16", 8: "q8_0", 30: "bf16"}
FILE_TYPE = {"f32": 0, "f16": 1, "q8_0": 7, "bf16": 32}


def fail(message):
    print("FAIL:", message)
    sys.exit(1)


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values[0] if len(values) == 1 else values

    def string(self):
        n = self.take("Q")
        s = self.data[self.pos:self.pos + n].decode("utf-8")
        self.pos += n
        return s

    def value(self, kind):
        scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
        if kind in scalar:
            return (kind, self.take(scalar[kind]))
        if kind == 8:
            return (kind, self.string())
        if kind == 9:
            element, n = self.take("I"), self.take("Q")
            return (kind, element, [self.value(element)[1] for _ in range(n)])
        fail(f"unknown metadata type {kind} at byte {self.pos}")


def read_gguf(path):
    data = open(path, "rb").read()
    r = Reader(data)
    if data[:4] != b"GGUF":
        fail(f"{path}: magic {data[:4]!r}")
    r.pos = 4
    version, n_tensors, n_kv = r.take("I"), r.take("Q"), r.take("Q")
    if version != 3:
        fail(f"version {version}, expected 3")
    meta = {}
    for _ in range(n_kv):
        key = r.string()
        meta[key] = r.value(r.take("I"))
    tensors = []
    for _ in range(n_tensors):
        name = r.string()
        dims = [r.take("Q") for _ in range(r.take("I"))]
        tensors.append({"name": name, "dims": dims, "type": r.take("I"), "offset": r.take("Q")})
    alignment = meta.get("general.alignment", (4, 32))[1]
    start = (r.pos + alignment - 1) // alignment * alignment
    if any(data[r.pos:start]):
        fail("padding before the tensor data is not zero")
    return data, meta, tensors, start, alignment


def read_safetensors(path):
    data = open(path, "rb").read()
    n = struct.unpack_from("<Q", data)[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", e
        a, b = e["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + a:8 + n + b], dtype="<f4").reshape(e["shape"])
    return out


def permute(w, heads):  # convert_hf_to_gguf.py's LlamaModel.permute
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def bf16_bits(x):  # round to nearest even on the fp32 bits
    bits = x.astype("<f4").view("<u4").astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")


def q8_0_blocks(x):  # ggml's quantize_row_q8_0_ref
    blocks = x.reshape(-1, 32).astype(np.float32)
    d = (np.abs(blocks).max(axis=1, keepdims=True) / np.float32(127)).astype(np.float32)
    inverse = np.where(d == 0, np.float32(0), np.float32(1) / np.where(d == 0, 1, d)).astype(np.float32)
    q = np.round(blocks * inverse)  # halves away from zero below, as roundf
    q = np.where(np.abs(blocks * inverse - np.trunc(blocks * inverse)) == 0.5,
                 np.trunc(blocks * inverse) + np.sign(blocks * inverse), q)
    out = np.zeros((blocks.shape[0], 34), dtype=np.uint8)
    out[:, :2] = d.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.astype(np.int8).view(np.uint8)
    return out.reshape(-1), d, q


def main():
    path, dtype, hf_dir, vocab_tsv = sys.argv[1:]
    config = json.load(open(hf_dir + "/config.json"))
    data, meta, tensors, start, alignment = read_gguf(path)

    def expect(key, kind, value):
        if key not in meta:
            fail(f"metadata {key} missing")
        got = meta[key]
        if got[0] != kind or (got[1] != value if kind != 6 else abs(got[1] - value) > 1e-6 * abs(value)):
            fail(f"metadata {key} = {got}, expected type {kind} value {value}")

    u32, f32, string, boolean = 4, 6, 8, 7
    expect("general.architecture", string, "llama")
    expect("general.alignment", u32, 32)
    expect("general.file_type", u32, FILE_TYPE[dtype])
    expect("llama.context_length", u32, config["max_position_embeddings"])
    expect("llama.embedding_length", u32, config["hidden_size"])
    expect("llama.block_count", u32, config["num_hidden_layers"])
    expect("llama.feed_forward_length", u32, config["intermediate_size"])
    expect("llama.attention.head_count", u32, config["num_attention_heads"])
    expect("llama.attention.head_count_kv", u32, config["num_key_value_heads"])
    head_dim = config["hidden_size"] // config["num_attention_heads"]
    expect("llama.rope.dimension_count", u32, head_dim)
    expect("llama.rope.freq_base", f32, config.get("rope_theta", 10000.0))
    expect("llama.attention.layer_norm_rms_epsilon", f32, config["rms_norm_eps"])
    expect("llama.vocab_size", u32, config["vocab_size"])
    expect("tokenizer.ggml.model", string, "llama")
    expect("tokenizer.ggml.add_bos_token", boolean, True)
    expect("tokenizer.ggml.add_eos_token", boolean, False)

    vocab = [line.rstrip("\n").split("\t") for line in open(vocab_tsv, encoding="utf-8", newline="\n")]
    pieces, scores = [v[0] for v in vocab], [float(v[1]) for v in vocab]
    unk, bos, eos = pieces.index("<unk>"), pieces.index("<s>"), pieces.index("</s>")
    expect("tokenizer.ggml.unknown_token_id", u32, unk)
    expect("tokenizer.ggml.bos_token_id", u32, bos)
    expect("tokenizer.ggml.eos_token_id", u32, eos)
    tokens, got_scores, types = (meta.get(k, (None, None, None)) for k in
                                 ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"))
    if tokens[1] != string or tokens[2] != pieces:
        fail("tokenizer.ggml.tokens differ from spm_export_vocab's pieces")
    if got_scores[1] != f32 or any(abs(a - b) > 1e-4 * max(1, abs(b)) for a, b in zip(got_scores[2], scores)) \
            or len(got_scores[2]) != len(scores):
        fail("tokenizer.ggml.scores differ from spm_export_vocab's scores")
    # llama.cpp's token types: 2 unknown, 3 control (<s>, </s>), 6 byte (<0xNN>), 1 normal.
    control = {bos, eos}
    expected_types = [2 if i == unk else 3 if i in control else
                      6 if p.startswith("<0x") and p.endswith(">") and len(p) == 6 else 1 for i, p in enumerate(pieces)]
    if types[1] != 5 or types[2] != expected_types:
        bad = next(i for i, (a, b) in enumerate(zip(types[2], expected_types)) if a != b)
        fail(f"tokenizer.ggml.token_type[{bad}] ({pieces[bad]!r}) = {types[2][bad]}, expected {expected_types[bad]}")

    hf = read_safetensors(hf_dir + "/model.safetensors")
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    per_layer = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                 "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                 "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down"}
    for i in range(config["num_hidden_layers"]):
        for a, b in per_layer.items():
            names[f"model.layers.{i}.{a}.weight"] = f"blk.{i}.{b}.weight"
    expected = {names[n]: n for n in hf}
    if sorted(t["name"] for t in tensors) != sorted(expected):
        fail(f"tensor names {sorted(t['name'] for t in tensors)}, expected {sorted(expected)}")
    end = 0
    for t in sorted(tensors, key=lambda t: t["offset"]):
        w = hf[expected[t["name"]]]
        if "attn_q" in t["name"]:
            w = permute(w, config["num_attention_heads"])
        if "attn_k" in t["name"]:
            w = permute(w, config["num_key_value_heads"])
        if t["dims"] != list(reversed(w.shape)):
            fail(f"{t['name']}: dims {t['dims']}, expected {list(reversed(w.shape))}")
        kind = "f32" if w.ndim == 1 else "f16" if dtype == "q8_0" and w.shape[-1] % 32 else dtype
        if GGML.get(t["type"]) != kind:
            fail(f"{t['name']}: type {t['type']}, expected {kind}")
        if t["offset"] % alignment or t["offset"] < end:
            fail(f"{t['name']}: offset {t['offset']} not aligned to {alignment} or overlapping the previous tensor")
        size = {"f32": 4 * w.size, "f16": 2 * w.size, "bf16": 2 * w.size, "q8_0": w.size // 32 * 34}[kind]
        raw = np.frombuffer(data, dtype=np.uint8, count=size, offset=start + t["offset"])
        end = t["offset"] + size
        want = {"f32": lambda: w.astype("<f4").view(np.uint8).reshape(-1),
                "f16": lambda: w.astype("<f2").view(np.uint8).reshape(-1),
                "bf16": lambda: bf16_bits(w).view(np.uint8).reshape(-1),
                "q8_0": lambda: q8_0_blocks(w)[0]}[kind]()
        if not np.array_equal(raw, want):
            fail(f"{t['name']}: {kind} bytes differ at byte {int(np.argmax(raw != want))}")
        if kind == "q8_0":  # dequantized within half a step of each block's scale
            _, d, q = q8_0_blocks(w)
            error = np.abs(d.astype("<f2").astype(np.float32) * q - w.reshape(-1, 32))
            if (error > d * 0.5 + np.abs(w.reshape(-1, 32)) * 1e-3 + 1e-12).any():
                fail(f"{t['name']}: q8_0 dequantizes more than half a step away")
    if start + end > len(data):
        fail(f"file ends at {len(data)}, tensors at {start + end}")
    print(f"ok: {path}: {len(meta)} metadata keys, {len(tensors)} tensors ({dtype}), {len(pieces)} pieces, "
          f"data at {start}, {len(data)} bytes")


main()
