#!/usr/bin/env python3
"""Decodes an asynctrace Perfetto export with Perfetto's own published proto (the `perfetto` PyPI
package's perfetto_trace_pb2) and replays it the way trace_processor reads TrackEvents: per-sequence
incremental state (defaults, interned names, incremental clock), slice begin/end stacks per track,
flows by id. Prints a JSON summary; exits 1 with a message on any inconsistency."""
import json
import sys
from collections import defaultdict

from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

SLICE_BEGIN, SLICE_END, INSTANT, COUNTER = 1, 2, 3, 4


def fail(msg):
    print(json.dumps({"error": msg}))
    sys.exit(1)


def main(path):
    trace = pb.Trace()
    with open(path, "rb") as f:
        data = f.read()
    trace.ParseFromString(data)
    if trace.ByteSize() != len(data):
        fail(f"re-encoded size {trace.ByteSize()} != file size {len(data)} (unknown or malformed fields)")

    tracks = {}  # uuid -> description
    seqs = {}  # sequence id -> state
    stacks = defaultdict(list)  # track uuid -> open slices [(name, ts, annotations)]
    last_ts = defaultdict(int)
    slices = []  # (track, name, ts, dur, depth, parent name, annotations)
    instants = []
    counters = []
    flow_events = []  # (ts, 0 start / 1 end, id, event name)
    clock_snapshots = 0
    perf_samples = []

    for i, p in enumerate(trace.packet):
        seq_id = p.trusted_packet_sequence_id
        if p.HasField("track_descriptor"):
            d = p.track_descriptor
            if d.uuid in tracks:
                fail(f"packet {i}: track uuid {d.uuid} described twice")
            desc = {"uuid": d.uuid, "parent": d.parent_uuid if d.HasField("parent_uuid") else None}
            if d.HasField("process"):
                desc.update(kind="process", pid=d.process.pid, name=d.process.process_name)
            elif d.HasField("thread"):
                desc.update(kind="thread", pid=d.thread.pid, tid=d.thread.tid, name=d.thread.thread_name)
            elif d.HasField("counter"):
                desc.update(kind="counter", name=d.name)
            else:  # an async track of its own: one span
                desc.update(kind="span", name=d.name)
            tracks[d.uuid] = desc
            continue
        if p.sequence_flags & 1:  # SEQ_INCREMENTAL_STATE_CLEARED
            seqs[seq_id] = {"names": {}, "ann": {}, "strings": {}, "defaults": None, "clock": None,
                            "functions": {}, "sources": {}, "paths": {}, "mappings": {}, "frames": {}, "callstacks": {}}
        st = seqs.get(seq_id)
        if st is None:
            fail(f"packet {i}: sequence {seq_id} used before its incremental state was cleared")
        if p.HasField("trace_packet_defaults"):
            st["defaults"] = p.trace_packet_defaults
        if p.HasField("interned_data"):
            for n in p.interned_data.event_names:
                st["names"][n.iid] = n.name
            for n in p.interned_data.debug_annotation_names:
                st["ann"][n.iid] = n.name
            for n in p.interned_data.debug_annotation_string_values:
                st["strings"][n.iid] = n.str.decode()
            # Callstacks the way trace_processor's StackProfileSequenceState resolves them: every iid a
            # callstack, frame or mapping names must be interned on the sequence before it is used.
            for n in p.interned_data.function_names:
                st["functions"][n.iid] = n.str.decode()
            for n in p.interned_data.source_paths:
                st["sources"][n.iid] = n.str.decode()
            for n in p.interned_data.mapping_paths:
                st["paths"][n.iid] = n.str.decode()
            for m in p.interned_data.mappings:
                if any(i not in st["paths"] for i in m.path_string_ids):
                    fail(f"packet {i}: mapping {m.iid} names a path not interned")
                st["mappings"][m.iid] = "/".join(st["paths"][i] for i in m.path_string_ids)
            for f in p.interned_data.frames:
                if f.function_name_id not in st["functions"] or f.mapping_id not in st["mappings"]:
                    fail(f"packet {i}: frame {f.iid} names a function or mapping not interned")
                if f.source_path_iid and f.source_path_iid not in st["sources"]:
                    fail(f"packet {i}: frame {f.iid} names a source path not interned")
                st["frames"][f.iid] = {"function": st["functions"][f.function_name_id], "module": st["mappings"][f.mapping_id],
                                       "file": st["sources"].get(f.source_path_iid), "line": f.line_number or None}
            for c in p.interned_data.callstacks:
                if any(fid not in st["frames"] for fid in c.frame_ids):
                    fail(f"packet {i}: callstack {c.iid} names a frame not interned")
                st["callstacks"][c.iid] = [st["frames"][fid] for fid in c.frame_ids]
        if p.HasField("clock_snapshot"):
            clock_snapshots += 1
            clocks = {c.clock_id: c for c in p.clock_snapshot.clocks}
            if p.clock_snapshot.primary_trace_clock != 3:
                fail(f"packet {i}: the trace clock is not MONOTONIC")
            inc = [c for c in clocks.values() if c.is_incremental]
            if len(inc) != 1 or inc[0].clock_id < 64 or 3 not in clocks or clocks[3].timestamp != inc[0].timestamp:
                fail(f"packet {i}: clock snapshot does not anchor one sequence-scoped incremental clock on MONOTONIC")
            st["clock"] = inc[0].timestamp
            st["clock_id"] = inc[0].clock_id
            continue
        if p.HasField("perf_sample"):
            s = p.perf_sample
            if not (p.sequence_flags & 2):
                fail(f"packet {i}: a perf sample on a sequence without SEQ_NEEDS_INCREMENTAL_STATE")
            if p.timestamp_clock_id not in (0, 3):
                fail(f"packet {i}: a perf sample on clock {p.timestamp_clock_id}")
            if s.callstack_iid and s.callstack_iid not in st["callstacks"]:
                fail(f"packet {i}: perf sample callstack {s.callstack_iid} not interned")
            frames = st["callstacks"].get(s.callstack_iid, [])
            perf_samples.append({"pid": s.pid, "tid": s.tid, "ts": p.timestamp,
                                 "functions": [f["function"] for f in reversed(frames)],  # innermost first
                                 "frames": list(reversed(frames))})
            continue
        if not p.HasField("track_event"):
            continue
        e = p.track_event
        defaults = st["defaults"]
        if defaults is None or st["clock"] is None:
            fail(f"packet {i}: track event before defaults and clock snapshot")
        clock_id = p.timestamp_clock_id if p.HasField("timestamp_clock_id") else defaults.timestamp_clock_id
        if clock_id != st["clock_id"]:
            fail(f"packet {i}: unexpected clock {clock_id}")
        st["clock"] += p.timestamp
        ts = st["clock"]
        track = e.track_uuid if e.HasField("track_uuid") else defaults.track_event_defaults.track_uuid
        if track not in tracks:
            fail(f"packet {i}: track {track} has no descriptor")
        if ts < last_ts[track]:
            fail(f"packet {i}: time goes back on track {track} ({ts} < {last_ts[track]})")
        last_ts[track] = ts
        name = None
        if e.HasField("name_iid"):
            if e.name_iid not in st["names"]:
                fail(f"packet {i}: event name iid {e.name_iid} not interned on sequence {seq_id}")
            name = st["names"][e.name_iid]
        ann = {}
        for a in e.debug_annotations:
            if a.name_iid not in st["ann"]:
                fail(f"packet {i}: annotation name iid {a.name_iid} not interned")
            key = st["ann"][a.name_iid]
            if a.HasField("string_value_iid"):
                if a.string_value_iid not in st["strings"]:
                    fail(f"packet {i}: annotation string iid {a.string_value_iid} not interned")
                ann[key] = st["strings"][a.string_value_iid]
            elif a.HasField("int_value"):
                ann[key] = a.int_value
            else:
                fail(f"packet {i}: annotation {key} has no value")
        # Both encodings of flow ids (fixed64 47/48 and the varint *_old 36/42) are read by trace_processor.
        for fid in list(e.flow_ids) + list(e.flow_ids_old):
            flow_events.append((ts, 0, fid, name))
        for fid in list(e.terminating_flow_ids) + list(e.terminating_flow_ids_old):
            flow_events.append((ts, 1, fid, name))
        if e.type == SLICE_BEGIN:
            if name is None:
                fail(f"packet {i}: slice begin without a name")
            stacks[track].append((name, ts, ann))
        elif e.type == SLICE_END:
            if not stacks[track]:
                fail(f"packet {i}: slice end on track {track} with no open slice")
            n, t0, a0 = stacks[track].pop()
            a0 = dict(a0, **ann)  # trace_processor adds an end's annotations to the slice's args
            parent = stacks[track][-1][0] if stacks[track] else None
            slices.append({"track": track, "name": n, "ts": t0, "dur": ts - t0, "depth": len(stacks[track]),
                           "parent": parent, "args": a0})
        elif e.type == INSTANT:
            parent = stacks[track][-1][0] if stacks[track] else None
            instants.append({"track": track, "name": name, "ts": ts, "parent": parent, "args": ann})
        elif e.type == COUNTER:
            if tracks[track]["kind"] != "counter":
                fail(f"packet {i}: counter value on a non-counter track")
            counters.append({"track": track, "ts": ts, "value": e.counter_value})
        else:
            fail(f"packet {i}: unknown track event type {e.type}")

    open_slices = sum(len(s) for s in stacks.values())
    if open_slices:
        fail(f"{open_slices} slices never ended")
    # Flows the way trace_processor's FlowTracker links them: packets sorted by time, a flow id active from
    # its start until a terminating event closes it (then the id may start a new flow).
    active = {}
    flows_started = flows_terminated = 0
    flow_sources = defaultdict(int)
    flow_links = defaultdict(int)
    for ts, kind, fid, name in sorted(flow_events, key=lambda x: (x[0], x[1])):
        if kind == 0:
            if fid in active:
                fail(f"flow id {fid} started at {ts} while still active (trace_processor drops it as a duplicate)")
            active[fid] = name
            flows_started += 1
            flow_sources[name] += 1
        else:
            if fid not in active:
                fail(f"flow id {fid} terminated at {ts} but no flow with that id is active")
            flow_links[f"{active.pop(fid)} -> {name}"] += 1
            flows_terminated += 1

    def thread_label(uuid):
        t = tracks[uuid]
        return f"{t.get('tid')}"

    by_thread = defaultdict(lambda: defaultdict(int))
    for s in slices:
        if tracks[s["track"]]["kind"] == "span":
            continue
        by_thread[thread_label(s["track"])][s["name"]] += 1
    nesting = sorted({f"{s['parent']} > {s['name']}" for s in slices if s["parent"]})
    out = {
        "packets": len(trace.packet),
        "bytes": len(data),
        "tracks": sorted(({k: v for k, v in t.items() if k != "uuid" and k != "parent"} for t in tracks.values()),
                         key=lambda t: (t["kind"], t.get("tid", 0))),
        "clock_snapshots": clock_snapshots,
        "slices": len(slices),
        "slices_by_thread": {k: dict(v) for k, v in by_thread.items()},
        "nesting": nesting,
        "instants": [{"name": x["name"], "parent": x["parent"], "args": x["args"]} for x in instants],
        "counters": [c["value"] for c in counters],
        "flows_started": flows_started,
        "flows_terminated": flows_terminated,
        "flow_sources": dict(flow_sources),
        "max_flow_id": max((f[2] for f in flow_events), default=0),
        "flow_links": dict(flow_links),
        "callback_args": [dict(s["args"], name=s["name"]) for s in slices if "async_id" in s["args"]],
        "syscalls": sorted([[thread_label(s["track"]), s["name"], s["ts"], s["dur"], s["parent"]]
                            for s in slices if "ret" in s["args"] or s["name"].startswith("epoll_")], key=lambda x: x[2]),
        "max_depth": max([s["depth"] for s in slices], default=0),
        "spans": [{"name": s["name"], "dur": s["dur"], "args": s["args"]} for s in slices if tracks[s["track"]]["kind"] == "span"],
        "perf_samples": len(perf_samples),
        "perf_samples_by_thread": {str(k): v for k, v in sorted(
            {t: sum(1 for x in perf_samples if x["tid"] == t) for t in {x["tid"] for x in perf_samples}}.items())},
        "perf_sample_stacks": sorted(({"functions": list(k), "samples": v} for k, v in
                                      __import__("collections").Counter(tuple(x["functions"]) for x in perf_samples).items()),
                                     key=lambda s: -s["samples"])[:10],
        "perf_sample_frames_with_lines": sum(1 for x in perf_samples for f in x["frames"] if f["line"]),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
