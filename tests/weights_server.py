"""A loopback HTTP server for the weights-download tests: serves a folder (the publishers'
paths under their host names, as a RESNET_WEIGHTS_MIRROR holds them) with Range requests,
and counts what it served. Run as a script; it prints its port, then serves until killed.

    python weights_server.py ROOT [--cut REL_PATH=BYTES ...] [--html REL_PATH ...]

--cut: the first GET of REL_PATH sends the full Content-Length but closes after BYTES.
--html: REL_PATH is answered with a 200 HTML error page, as a captive portal does.
GET /_stats: {"requests": [[path, range or null], ...], "bytes": body bytes sent}.
"""
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = sys.argv[1]
CUT, HTML = {}, set()
args = sys.argv[2:]
for flag, value in zip(args[::2], args[1::2]):
    if flag == "--cut":
        rel, n = value.rsplit("=", 1)
        CUT[rel] = int(n)
    elif flag == "--html":
        HTML.add(value)
STATS = {"requests": [], "bytes": 0}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        rel = self.path.lstrip("/")
        if rel == "_stats":
            body = json.dumps(STATS).encode()
            return self._send(200, body, "application/json")
        rng = self.headers.get("Range")
        with LOCK:
            STATS["requests"].append([rel, rng])
        if rel in HTML:
            return self._send(200, b"<!DOCTYPE html><html><body>Please log in</body></html>",
                              "text/html; charset=utf-8")
        path = os.path.join(ROOT, rel)
        if ".." in rel.split("/") or not os.path.isfile(path):
            return self._send(404, b"not found", "text/plain")
        with open(path, "rb") as f:
            data = f.read()
        start = 0
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                return self._send(416, b"", "text/plain")
        body = data[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        with LOCK:
            cut = CUT.pop(rel, None)
        if cut is not None:
            body = body[:cut]
            self.close_connection = True
        self.wfile.write(body)
        with LOCK:
            STATS["bytes"] += len(body)

    def _send(self, code, body, kind):
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
