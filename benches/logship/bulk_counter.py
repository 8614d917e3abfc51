#!/usr/bin/env python3
"""A local Elasticsearch `_bulk` endpoint that only counts: it answers every action with a
201 item (so clients that read the answer get a realistic one) and counts the documents.
GET /_count answers the count; GET / the cluster info clients ping.

usage: bulk_counter.py PORT_FILE   (writes the port it listens on to PORT_FILE)
"""
import http.server
import sys
import threading

COUNT = 0
LOCK = threading.Lock()
ITEM = b'{"create":{"_index":"logs","_id":"x","_version":1,"result":"created","status":201}}'


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, body, status=200):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/_count"):
            self.reply(str(COUNT).encode())
        else:
            self.reply(b'{"name":"counter","version":{"number":"8.15.0"},"tagline":"You Know, for Search"}')

    def do_HEAD(self):
        self.do_GET()

    def do_POST(self):
        global COUNT
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        actions = body.count(b"\n") // 2
        with LOCK:
            COUNT += actions
        items = b",".join([ITEM] * actions)
        self.reply(b'{"took":1,"errors":false,"items":[' + items + b"]}")

    do_PUT = do_POST


def main():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[1], "w") as f:
        f.write(str(srv.server_address[1]))
    srv.serve_forever()


if __name__ == "__main__":
    main()
