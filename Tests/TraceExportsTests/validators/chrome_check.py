#!/usr/bin/env python3
"""Checks an asynctrace Chrome JSON export against the Trace Event Format's rules (the document
chrome://tracing and Perfetto's JSON importer implement): JSON object form with traceEvents, known
phases with their required fields, complete events with non-negative durations that nest per thread,
v2 flows (bind_id with flow_out on the source, flow_in on the target), M events naming processes and
threads. Prints a JSON summary."""
import json
import sys
from collections import defaultdict


def fail(msg):
    print(json.dumps({"error": msg}))
    sys.exit(1)


def main(path):
    with open(path) as f:
        doc = json.load(f)
    if not isinstance(doc, dict) or not isinstance(doc.get("traceEvents"), list):
        fail("not the JSON object form with a traceEvents array")
    names = {"process": {}, "thread": {}}
    complete = defaultdict(list)
    flows_out, flows_in = defaultdict(int), defaultdict(int)
    counts = defaultdict(lambda: defaultdict(int))
    instants, counters = 0, 0
    async_open, async_spans = {}, 0
    for i, e in enumerate(doc["traceEvents"]):
        ph = e.get("ph")
        for k in ("pid", "tid", "name"):
            if k not in e:
                fail(f"event {i} ({ph}) lacks {k}")
        if ph == "M":
            if e["name"] == "process_name":
                names["process"][e["pid"]] = e["args"]["name"]
            elif e["name"] == "thread_name":
                names["thread"][(e["pid"], e["tid"])] = e["args"]["name"]
            else:
                fail(f"event {i}: unknown metadata {e['name']}")
            continue
        if not isinstance(e.get("ts"), (int, float)):
            fail(f"event {i} ({ph}) has no numeric ts")
        if ph == "X":
            if not isinstance(e.get("dur"), (int, float)) or e["dur"] < 0:
                fail(f"event {i}: complete event without a non-negative dur")
            complete[(e["pid"], e["tid"])].append((e["ts"], e["dur"], e["name"], i))
            counts[str(e["tid"])][e["name"]] += 1
            if "bind_id" in e:
                if e.get("flow_out") == e.get("flow_in"):
                    fail(f"event {i}: a bound flow needs exactly one of flow_out / flow_in")
                (flows_out if e.get("flow_out") else flows_in)[e["bind_id"]] += 1
        elif ph == "i":
            if e.get("s") not in ("t", "p", "g"):
                fail(f"event {i}: instant without scope")
            instants += 1
        elif ph == "C":
            if not isinstance(e.get("args"), dict) or not all(isinstance(v, (int, float)) for v in e["args"].values()):
                fail(f"event {i}: counter without numeric args")
            counters += 1
        elif ph in ("b", "e"):
            # Async (nestable) events: matched by (pid, cat, id), a begin before its end; they need not nest.
            if "id" not in e or "cat" not in e:
                fail(f"event {i}: async event without id or cat")
            key = (e["pid"], e["cat"], e["id"])
            if ph == "b":
                if key in async_open:
                    fail(f"event {i}: async id {e['id']} begun twice")
                async_open[key] = (e["ts"], e["name"])
            else:
                if key not in async_open:
                    fail(f"event {i}: async end {e['id']} without a begin")
                ts0, name0 = async_open.pop(key)
                if e["ts"] < ts0 or e["name"] != name0:
                    fail(f"event {i}: async end {e['id']} before its begin or under another name")
                async_spans += 1
        else:
            fail(f"event {i}: unexpected phase {ph}")
    # Complete events on one thread must nest (what the viewers stack into rows).
    nesting = set()
    for key, evs in complete.items():
        if key not in names["thread"]:
            fail(f"thread {key} has events but no thread_name")
        if key[0] not in names["process"]:
            fail(f"process {key[0]} has events but no process_name")
        evs.sort(key=lambda x: (x[0], -x[1]))
        stack = []
        for ts, dur, name, i in evs:
            while stack and ts >= stack[-1][0] + stack[-1][1] - 1e-6 and not (dur == 0 and ts <= stack[-1][0] + stack[-1][1]):
                stack.pop()
            if stack and ts + dur > stack[-1][0] + stack[-1][1] + 1e-6:
                fail(f"event {i} ({name}) overlaps {stack[-1][2]} without nesting")
            if stack:
                nesting.add(f"{stack[-1][2]} > {name}")
            stack.append((ts, dur, name))
    if async_open:
        fail(f"{len(async_open)} async events never ended")
    for b, n in flows_in.items():
        if flows_out.get(b, 0) != 1 or n != 1:
            fail(f"flow {b}: {flows_out.get(b, 0)} sources, {n} targets")
    print(json.dumps({
        "events": len(doc["traceEvents"]),
        "processes": {str(k): v for k, v in names["process"].items()},
        "threads": {f"{k[0]}/{k[1]}": v for k, v in names["thread"].items()},
        "complete_by_thread": {k: dict(v) for k, v in counts.items()},
        "nesting": sorted(nesting),
        "flows_out": len(flows_out), "flows_in": len(flows_in),
        "instants": instants, "counters": counters, "async_spans": async_spans,
    }))


if __name__ == "__main__":
    main(sys.argv[1])
