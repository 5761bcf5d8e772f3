#!/usr/bin/env python3
"""A local HTTP server with faults, for kmidi fetch-data's tests (a test peer,
never on the product's path). Listens on 127.0.0.1 only, on a free port that
it writes to --port-file, and logs one JSON line per request (path, Range
header, arrival time) to --log.

GET /<mode>/<file>[?anything] serves <root>/<file> with Range support (the
once-modes count requests per whole path, query included), where mode is:
  ok          the file
  stall       headers and half the body, then silence (the connection stays open)
  stall-once  as stall on the first request for this path, then as ok
  drop-once   headers and half the body, then the connection is closed; later as ok
  wrong       the file with one byte changed (same length)
  norange     the whole file with 200, whatever Range says
  slow        the body in --slow-chunk byte pieces every --slow-delay seconds
  silent      accepts the request and never answers
  redirect    302 to /ok/<file>
  fail-once   500 on the first request for this path, then as ok
  status-NNN  answers NNN with a short error page
"""
import argparse
import json
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARGS = None
SEEN = set()
LOCK = threading.Lock()


def first_time(path):
    with LOCK:
        if path in SEEN:
            return False
        SEEN.add(path)
        return True


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass

    def log_request_line(self):
        with LOCK, open(ARGS.log, "a") as f:
            f.write(json.dumps({"path": self.path, "range": self.headers.get("Range"), "t": time.time()}) + "\n")

    def error_page(self, code):
        body = ("error %d for %s\n" % (code, self.path)).encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.log_request_line()
        parts = self.path.split("/", 2)
        if len(parts) < 3:
            return self.error_page(404)
        mode, name = parts[1], parts[2].split("?")[0]  # "?..." only keys the once-modes
        m = re.fullmatch(r"status-(\d{3})", mode)
        if m:
            return self.error_page(int(m.group(1)))
        if mode == "silent":
            time.sleep(ARGS.stall_seconds)
            return
        if mode == "redirect":
            self.send_response(302)
            self.send_header("Location", "/ok/" + name)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if mode == "fail-once" and first_time(self.path):
            return self.error_page(500)
        path = os.path.join(ARGS.root, name)
        if not os.path.isfile(path):
            return self.error_page(404)
        with open(path, "rb") as f:
            data = f.read()
        if mode == "wrong":
            mid = len(data) // 2
            data = data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1:]
        start = 0
        rng = self.headers.get("Range")
        if rng and mode != "norange":
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % len(data))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode in ("stall", "stall-once", "drop-once"):
            once = mode != "stall"
            if not once or first_time(self.path):
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                if mode == "drop-once":
                    self.connection.shutdown(2)
                    self.close_connection = True
                else:
                    time.sleep(ARGS.stall_seconds)
                return
        if mode == "slow":
            for i in range(0, len(body), ARGS.slow_chunk):
                self.wfile.write(body[i:i + ARGS.slow_chunk])
                self.wfile.flush()
                time.sleep(ARGS.slow_delay)
            return
        self.wfile.write(body)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--stall-seconds", type=float, default=120)
    p.add_argument("--slow-chunk", type=int, default=256)
    p.add_argument("--slow-delay", type=float, default=0.3)
    ARGS = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    tmp = ARGS.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, ARGS.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
