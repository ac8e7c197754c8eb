#!/usr/bin/env python3
"""A loopback OTLP/HTTP traces receiver for the tests: POST /v1/traces with application/x-protobuf, each
accepted body saved as OUT_DIR/NNNNNN.pb (the validator parses them). --fail N answers the first N requests
with 503 (Retry-After: 0), --drop N closes the connection without an answer on the N requests after those.
Writes its port to PORT_FILE once listening; serves until killed."""
import argparse
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as svc

lock = threading.Lock()
state = {"requests": 0, "accepted": 0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port_file")
    ap.add_argument("out_dir")
    ap.add_argument("--fail", type=int, default=0)
    ap.add_argument("--drop", type=int, default=0)
    args = ap.parse_args()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def reply(self, code, body=b"", extra=()):
            self.send_response(code)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(body)))
            for k, v in extra:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with lock:
                state["requests"] += 1
                n = state["requests"]
            if self.path != "/v1/traces":
                return self.reply(404, b"not found")
            if self.headers.get("Content-Type") != "application/x-protobuf":
                return self.reply(415, b"content type")
            if n <= args.fail:
                return self.reply(503, b"busy", [("Retry-After", "0")])
            if n <= args.fail + args.drop:
                self.close_connection = True
                self.connection.shutdown(2)
                return
            req = svc.ExportTraceServiceRequest()
            try:
                req.ParseFromString(body)
            except Exception:  # noqa: BLE001
                return self.reply(400, b"does not parse")
            with lock:
                state["accepted"] += 1
                name = os.path.join(args.out_dir, "%06d.pb" % state["accepted"])
            with open(name, "wb") as f:
                f.write(body)
            self.reply(200, svc.ExportTraceServiceResponse().SerializeToString())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
