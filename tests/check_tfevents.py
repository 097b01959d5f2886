#!/usr/bin/python3
"""Independent reader of a run's TensorBoard file: TFRecord framing with masked CRC-32C, Event and Summary
protobufs decoded from the wire format by hand. Checks the first event is the file version and that
train/loss at every step equals metrics.jsonl's loss (as float32). Usage: check_tfevents.py OUTPUT_DIR"""
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
scalars = {}
for e in all_events[1:]:
    step = e.get(2, 0)
    value = dict(fields(e[5]))[1]
    value = dict(fields(value))
    scalars[(value[1].decode(), step)] = struct.unpack("<f", value[2])[0]
losses = {}
for line in open(out + "/metrics.jsonl"):
    record = json.loads(line)
    losses[record["step"]] = record["loss"]
for step, loss in losses.items():
    got = scalars[("train/loss", step)]
    assert got == struct.unpack("<f", struct.pack("<f", loss))[0], (step, got, loss)
tags = sorted({tag for tag, _ in scalars})
print("%d events, %d steps, tags: %s; train/loss equals metrics.jsonl at every step" % (len(all_events), len(losses), ", ".join(tags)))
