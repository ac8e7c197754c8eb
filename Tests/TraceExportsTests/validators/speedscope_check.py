#!/usr/bin/env python3
"""Validates an asynctrace speedscope export against speedscope's published file-format schema
(jsonschema), then replays each evented profile the way speedscope's importer does (every close
matches the innermost open frame, time never goes back). Prints a JSON summary."""
import json
import sys

import jsonschema


def main(path, schema_path):
    with open(schema_path) as f:
        schema = json.load(f)
    with open(path) as f:
        doc = json.load(f)
    # The schema's root is a $ref to FileFormat.File.
    try:
        jsonschema.validate(doc, schema)
    except jsonschema.ValidationError as e:
        print(json.dumps({"error": f"schema: {e.message} at {list(e.absolute_path)}"}))
        sys.exit(1)
    frames = [f["name"] for f in doc["shared"]["frames"]]
    profiles = {}
    sampled = {}
    for p in doc["profiles"]:
        if p["type"] == "sampled":
            # As speedscope's importer reads them: one weight per sample, frames root first, indices in range.
            if len(p["samples"]) != len(p["weights"]):
                print(json.dumps({"error": f"{p['name']}: {len(p['samples'])} samples but {len(p['weights'])} weights"}))
                sys.exit(1)
            if any(i >= len(frames) for s in p["samples"] for i in s):
                print(json.dumps({"error": f"{p['name']}: a sample names a frame that does not exist"}))
                sys.exit(1)
            if sum(p["weights"]) > p["endValue"] - p["startValue"] + max(p["weights"], default=0) * len(p["weights"]):
                print(json.dumps({"error": f"{p['name']}: weights exceed the profile's span"}))
                sys.exit(1)
            stacks = {}
            for s, w in zip(p["samples"], p["weights"]):
                key = " <- ".join(frames[i] for i in reversed(s))  # innermost first
                stacks[key] = stacks.get(key, 0) + w
            sampled[p["name"]] = {"samples": len(p["samples"]),
                                  "top": sorted(stacks.items(), key=lambda kv: -kv[1])[:5]}
            continue
        stack, last, counts = [], p["startValue"], {}
        for i, e in enumerate(p["events"]):
            if e["at"] < last:
                print(json.dumps({"error": f"{p['name']}: event {i} goes back in time"}))
                sys.exit(1)
            last = e["at"]
            if e["type"] == "O":
                stack.append(e["frame"])
                counts[frames[e["frame"]]] = counts.get(frames[e["frame"]], 0) + 1
            else:
                if not stack or stack[-1] != e["frame"]:
                    print(json.dumps({"error": f"{p['name']}: event {i} closes a frame that is not the innermost open one"}))
                    sys.exit(1)
                stack.pop()
        if stack:
            print(json.dumps({"error": f"{p['name']}: {len(stack)} frames never closed"}))
            sys.exit(1)
        if last > p["endValue"]:
            print(json.dumps({"error": f"{p['name']}: events after endValue"}))
            sys.exit(1)
        profiles[p["name"]] = counts
    print(json.dumps({"profiles": profiles, "sampled": sampled, "frames": len(frames)}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
