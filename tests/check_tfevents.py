#!/usr/bin/python3
"""Independent reader of a run's TensorBoard file: TFRecord framing with masked CRC-32C, Event and Summary
protobufs decoded from the wire format by hand. Checks the first event is the file version, that
train/loss at every step equals metrics.jsonl's loss (as float32), and that the text summaries (TensorBoard's text
plugin: a string tensor) are metrics.jsonl's samples, step for step. Usage: check_tfevents.py OUTPUT_DIR"""
import glob, json, struct, sys

def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF

def masked(data):
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF

def varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]; i += 1
        value |= (b & 0x7F) << shift; shift += 7
        if not b & 0x80:
            return value, i

def fields(buf):
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(buf, i)
        elif wire == 1:
            value = buf[i:i + 8]; i += 8
        elif wire == 5:
            value = buf[i:i + 4]; i += 4
        elif wire == 2:
            n, i = varint(buf, i); value = buf[i:i + n]; i += n
        else:
            raise ValueError("unexpected wire type %d" % wire)
        yield number, value

def events(path):
    data = open(path, "rb").read()
    i = 0
    while i < len(data):
        header = data[i:i + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[i + 8:i + 12])
        assert length_crc == masked(header), "bad length CRC at byte %d" % i
        body = data[i + 12:i + 12 + length]
        (body_crc,) = struct.unpack("<I", data[i + 12 + length:i + 16 + length])
        assert body_crc == masked(body), "bad data CRC at byte %d" % i
        i += 16 + length
        yield dict(fields(body))

out = sys.argv[1]
files = glob.glob(out + "/tensorboard/events.out.tfevents.*")
assert len(files) >= 1, "no event file in %s/tensorboard" % out
all_events = list(events(sorted(files)[-1]))
assert all_events[0][3] == b"brain.Event:2", all_events[0]
scalars, texts = {}, {}
for e in all_events[1:]:
    step = e.get(2, 0)
    value = dict(fields(dict(fields(e[5]))[1]))
    tag = value[1].decode()
    if 2 in value:  # simple_value
        scalars[(tag, step)] = struct.unpack("<f", value[2])[0]
        continue
    # A text summary: metadata.plugin_data.plugin_name == "text", a scalar DT_STRING (7) tensor's string_val.
    plugin = dict(fields(dict(fields(value[9]))[1]))[1].decode()
    tensor = list(fields(value[8]))
    assert plugin == "text" and dict(tensor)[1] == 7, (plugin, tensor)
    texts[(tag, step)] = [v for number, v in tensor if number == 8][0].decode()
losses, samples = {}, {}
for line in open(out + "/metrics.jsonl"):
    record = json.loads(line)
    losses[record["step"]] = record["loss"]
    if "sample" in record:
        samples[record["step"]] = record["sample"]
for step, loss in losses.items():
    got = scalars[("train/loss", step)]
    assert got == struct.unpack("<f", struct.pack("<f", loss))[0], (step, got, loss)
for step, sample in samples.items():
    assert texts[("samples/greedy", step)] == sample, (step, texts.get(("samples/greedy", step)), sample)
assert sorted(samples) == sorted(step for _, step in texts), (sorted(samples), sorted(texts))
tags = sorted({tag for tag, _ in scalars} | {tag for tag, _ in texts})
print("%d events, %d steps, tags: %s; train/loss equals metrics.jsonl at every step; %d text samples equal "
      "metrics.jsonl's (steps %s)" % (len(all_events), len(losses), ", ".join(tags), len(samples), sorted(samples)))
