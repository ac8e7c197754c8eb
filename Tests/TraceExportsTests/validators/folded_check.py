#!/usr/bin/env python3
"""Reads folded stacks the way flamegraph.pl does (each line: stack, whitespace, a number; frames
split on ';'; lines that do not match are what flamegraph.pl silently ignores, so here they fail).
Prints the total and the weight per frame path."""
import json
import re
import sys

LINE = re.compile(r"^(.*)\s+?(\d+(?:\.\d*)?)$")  # flamegraph.pl's own pattern


def main(path):
    total, stacks, frames = 0, {}, set()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            m = LINE.match(line)
            if not m:
                print(json.dumps({"error": f"line {n} is not 'stack weight': {line[:200]!r}"}))
                sys.exit(1)
            stack, w = m.group(1), int(m.group(2))
            parts = stack.split(";")
            if any(p == "" for p in parts):
                print(json.dumps({"error": f"line {n} has an empty frame"}))
                sys.exit(1)
            if stack in stacks:
                print(json.dumps({"error": f"line {n} repeats a stack"}))
                sys.exit(1)
            stacks[stack] = w
            total += w
            frames.update(parts)
    print(json.dumps({"total": total, "stacks": stacks, "frames": sorted(frames)}))


if __name__ == "__main__":
    main(sys.argv[1])
