#!/usr/bin/env python3
"""Decodes asynctrace OTLP output with OpenTelemetry's own published proto (the `opentelemetry-proto` PyPI
package) and checks what a collector relies on: every file (a file export, or each request body a receiver
got) parses as an ExportTraceServiceRequest with no unknown fields; trace ids are 16 bytes and span ids 8,
never all zero; a span id appears once; every parent span exists in the same trace; start <= end; links and
events are well-formed; every resource has service.name, process.pid, thread.id and thread.name.
Prints a JSON summary (spans listed when there are at most 20000); exits 1 with a message on any problem."""
import json
import sys
from collections import Counter

from google.protobuf.unknown_fields import UnknownFieldSet
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as svc

ZERO16, ZERO8 = bytes(16), bytes(8)


def fail(msg):
    print(json.dumps({"error": msg}))
    sys.exit(1)


def no_unknown(msg, where):
    if len(UnknownFieldSet(msg)) > 0:
        fail(f"{where}: unknown fields in {msg.DESCRIPTOR.full_name}")
    for field, value in msg.ListFields():
        if field.message_type is None:
            continue
        if field.is_repeated:
            for v in value:
                no_unknown(v, where)
        else:
            no_unknown(value, where)


def value(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def attrs(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


def main(paths):
    spans = {}  # (trace, span) -> summary
    listing = []
    per_file = []
    resources = 0
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        req = svc.ExportTraceServiceRequest()
        try:
            req.ParseFromString(data)
        except Exception as e:  # noqa: BLE001 (any decode error is the finding)
            fail(f"{path}: does not parse as ExportTraceServiceRequest: {e}")
        if req.ByteSize() != len(data):
            fail(f"{path}: re-encoded size {req.ByteSize()} != {len(data)} bytes")
        count = 0
        for rs in req.resource_spans:
            resources += 1
            ra = attrs(rs.resource.attributes)
            for key in ("service.name", "process.pid", "thread.id", "thread.name"):
                if key not in ra:
                    fail(f"{path}: a resource without {key}: {ra}")
            if not isinstance(ra["process.pid"], int) or not isinstance(ra["thread.id"], int):
                fail(f"{path}: process.pid and thread.id must be int values: {ra}")
            for ss in rs.scope_spans:
                if not ss.scope.name:
                    fail(f"{path}: a scope without a name")
                for s in ss.spans:
                    count += 1
                    if len(s.trace_id) != 16 or s.trace_id == ZERO16:
                        fail(f"{path}: span {s.name!r}: trace_id {s.trace_id.hex()!r} is not 16 non-zero bytes")
                    if len(s.span_id) != 8 or s.span_id == ZERO8:
                        fail(f"{path}: span {s.name!r}: span_id {s.span_id.hex()!r} is not 8 non-zero bytes")
                    if s.parent_span_id and (len(s.parent_span_id) != 8 or s.parent_span_id == ZERO8):
                        fail(f"{path}: span {s.name!r}: parent_span_id {s.parent_span_id.hex()!r} is malformed")
                    if s.start_time_unix_nano == 0 or s.end_time_unix_nano < s.start_time_unix_nano:
                        fail(f"{path}: span {s.name!r}: times {s.start_time_unix_nano}..{s.end_time_unix_nano}")
                    if not s.name:
                        fail(f"{path}: a span without a name")
                    for link in s.links:
                        if len(link.trace_id) != 16 or link.trace_id == ZERO16 or len(link.span_id) != 8 or link.span_id == ZERO8:
                            fail(f"{path}: span {s.name!r}: a malformed link")
                    for e in s.events:
                        if not e.name or e.time_unix_nano == 0:
                            fail(f"{path}: span {s.name!r}: an event without a name or time")
                    key = (s.trace_id, s.span_id)
                    if key in spans:
                        fail(f"{path}: span {s.span_id.hex()} of trace {s.trace_id.hex()} appears twice")
                    a = attrs(s.attributes)
                    item = {
                        "name": s.name, "trace": s.trace_id.hex(), "span": s.span_id.hex(),
                        "parent": s.parent_span_id.hex(), "kind": s.kind, "status": s.status.code,
                        "status_message": s.status.message, "blocking": bool(a.get("asynctrace.blocking")),
                        "stall": bool(a.get("asynctrace.stall")), "thread_id": a.get("thread.id"),
                        "resource_thread_id": ra["thread.id"], "service": ra["service.name"],
                        "events": [e.name for e in s.events], "links": [(l.trace_id.hex(), l.span_id.hex()) for l in s.links],
                        "start": s.start_time_unix_nano, "end": s.end_time_unix_nano,
                        "attributes": {k: v for k, v in a.items() if isinstance(v, (str, int, bool))},
                    }
                    spans[key] = item
                    listing.append(item)
        if len(spans) <= 20000:
            no_unknown(req, path)
        per_file.append(count)
    missing = [s for s in spans.values() if s["parent"] and (bytes.fromhex(s["trace"]), bytes.fromhex(s["parent"])) not in spans]
    if missing:
        m = missing[0]
        fail(f"{len(missing)} spans have a parent missing from their trace, e.g. {m['name']!r} parent {m['parent']} in trace {m['trace']}")
    link_missing = sum(1 for s in spans.values() for (t, sp) in s["links"] if (bytes.fromhex(t), bytes.fromhex(sp)) not in spans)
    traces = Counter(s["trace"] for s in spans.values())
    out = {
        "spans": len(spans), "traces": len(traces), "resources": resources, "per_file": per_file,
        "roots": sum(1 for s in spans.values() if not s["parent"]),
        "blocking": sum(1 for s in spans.values() if s["blocking"]),
        "stalls": sum(1 for s in spans.values() if s["stall"]),
        "errors": sum(1 for s in spans.values() if s["status"] == 2),
        "events": sum(len(s["events"]) for s in spans.values()),
        "links_outside": link_missing,
        "largest_trace": max(traces.values()) if traces else 0,
    }
    if len(listing) <= 20000:
        out["list"] = listing
    print(json.dumps(out))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        fail("usage: otlp_check.py FILE...")
    main(sys.argv[1:])
