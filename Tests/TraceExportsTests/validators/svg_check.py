#!/usr/bin/env python3
"""Parses an asynctrace flame graph SVG with an XML parser (it must be well-formed, standalone SVG)
and reports each frame's width as a share of the whole, by frame name (the widest frame of that name)."""
import json
import sys
import xml.etree.ElementTree as ET

NS = "{http://www.w3.org/2000/svg}"


def main(path):
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        print(json.dumps({"error": f"not well-formed XML: {e}"}))
        sys.exit(1)
    if root.tag != NS + "svg":
        print(json.dumps({"error": f"root element is {root.tag}, not svg"}))
        sys.exit(1)
    frames, count, titles = {}, 0, 0
    for g in root.iter(NS + "g"):
        if g.get("class") != "f":
            continue
        count += 1
        if g.find(NS + "title") is not None and g.find(NS + "title").text:
            titles += 1
        w = float(g.get("data-w"))
        name = g.get("data-n")
        frames[name] = max(frames.get(name, 0), w)
    scripts = [s for s in root.iter(NS + "script")]
    refs = [el for el in root.iter() if any(k.endswith("href") for k in el.attrib)]
    if refs:
        print(json.dumps({"error": "the SVG references external resources"}))
        sys.exit(1)
    print(json.dumps({"frames": frames, "frame_count": count, "titles": titles, "has_script": bool(scripts)}))


if __name__ == "__main__":
    main(sys.argv[1])
