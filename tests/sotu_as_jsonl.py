#!/usr/bin/env python3
"""The bundled addresses as one .jsonl file (one {"text": ...} per document, by file name). Usage: DIR OUT.jsonl"""
import json
import os
import sys

with open(sys.argv[2], "w") as out:
    for name in sorted(os.listdir(sys.argv[1])):
        out.write(json.dumps({"text": open(os.path.join(sys.argv[1], name)).read()}) + "\n")
