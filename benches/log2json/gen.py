#!/usr/bin/env python3
"""Deterministic log generators for the log2json benchmark.

Usage: gen.py nginx|syslog N > file

nginx: combined access-log lines (the shape of logship's benchmark file);
syslog: BSD syslog (RFC 3164) lines. A fixed seed makes every run write the same bytes.
"""
import random
import sys

def nginx(n, rnd, out):
    paths = ["/", "/index.html", "/api/v1/items", "/api/v1/items/42", "/static/app.js",
             "/static/style.css", "/login", "/search?q=podmates&page=2", "/favicon.ico", "/health"]
    agents = ["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
              "curl/8.5.0", "kube-probe/1.29", "Go-http-client/1.1",
              "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"]
    methods = ["GET"] * 8 + ["POST", "PUT"]
    statuses = [200] * 12 + [201, 204, 301, 304, 400, 404, 500, 503]
    refs = ["-", "https://example.com/", "https://example.com/search?q=x"]
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    t = 0
    w = out.write
    for i in range(n):
        t += rnd.randint(0, 2)
        s = t % 60; m = (t // 60) % 60; h = (t // 3600) % 24; d = 1 + (t // 86400) % 28
        ip = f"10.{rnd.randint(0,255)}.{rnd.randint(0,255)}.{rnd.randint(1,254)}"
        w(f'{ip} - - [{d:02d}/{months[(t // 2419200) % 12]}/2024:{h:02d}:{m:02d}:{s:02d} +0000] '
          f'"{rnd.choice(methods)} {rnd.choice(paths)} HTTP/1.1" {rnd.choice(statuses)} {rnd.randint(0, 50000)} '
          f'"{rnd.choice(refs)}" "{rnd.choice(agents)}"\n')

def syslog(n, rnd, out):
    apps = [("sshd", True), ("CRON", True), ("kernel", False), ("systemd", True), ("nginx", True), ("su(pam_unix)", True)]
    msgs = ["Accepted publickey for deploy from 10.0.0.7 port 52144 ssh2",
            "pam_unix(cron:session): session opened for user root by (uid=0)",
            "Started Daily apt download activities.",
            "connection from 24.54.76.216 (24-54-76-216.example.net) at Fri Jun 17 07:07:00 2005",
            "authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=218.188.2.4",
            "[12345.678901] eth0: link up, 1000Mbps, full-duplex"]
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct"]
    t = 0
    w = out.write
    for i in range(n):
        t += rnd.randint(0, 2)
        s = t % 60; m = (t // 60) % 60; h = (t // 3600) % 24; d = 1 + (t // 86400) % 28
        app, has_pid = rnd.choice(apps)
        tag = f"{app}[{rnd.randint(100, 65000)}]" if has_pid else app
        w(f"{months[(t // 2419200) % 10]} {d:2d} {h:02d}:{m:02d}:{s:02d} host{rnd.randint(1, 9)} {tag}: {rnd.choice(msgs)}\n")

if __name__ == "__main__":
    kind, n = sys.argv[1], int(sys.argv[2])
    rnd = random.Random(20240101)
    out = open(sys.stdout.fileno(), "w", buffering=1 << 20, closefd=False)
    {"nginx": nginx, "syslog": syslog}[kind](n, rnd, out)
    out.flush()
