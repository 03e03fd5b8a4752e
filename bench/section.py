#!/usr/bin/env python3
"""Replaces one section of bench/RESULTS.md (between <!-- NAME --> and <!-- /NAME -->) with standard input,
so each benchmark script updates its own figures and leaves the others'. Usage: section.py NAME"""
import os
import sys

name = sys.argv[1]
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")
body = sys.stdin.read().rstrip() + "\n"
start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
text = open(path).read() if os.path.exists(path) else "# Benchmark results\n\nWritten by the scripts in this folder (see README.md).\n"
block = f"{start}\n{body}{end}\n"
if start in text and end in text:
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    text = before + block + after.lstrip("\n")
else:
    text = text.rstrip() + "\n\n" + block
open(path, "w").write(text)
print(body)
