#!/usr/bin/env python3
"""Deterministic generator of nginx-style access-log lines (~147 bytes each, seeded).

usage: gen_nginx.py COUNT OUTPUT
"""
import random
import sys

PATHS = ["/api/v1/orders", "/api/v1/users", "/static/app.js", "/static/app.css", "/healthz",
         "/api/v1/cart/items", "/images/logo.png", "/api/v1/search?q=shoes"]
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", "curl/8.5.0",
          "Mozilla/5.0 (Macintosh) Safari/605.1.15", "kube-probe/1.30"]
METHODS = ["GET", "GET", "GET", "POST", "PUT"]
STATUSES = [200, 200, 200, 201, 204, 301, 404, 500]


def main():
    count, out = int(sys.argv[1]), sys.argv[2]
    rnd = random.Random(42)
    with open(out, "w", buffering=1 << 20) as f:
        for i in range(count):
            sec = i // 2000
            line = '10.%d.%d.%d - - [26/Nov/2026:%02d:%02d:%02d +0000] "%s %s HTTP/1.1" %d %d "%s" "%s" rt=%.3f' % (
                rnd.randrange(256), rnd.randrange(256), rnd.randrange(256),
                (sec // 3600) % 24, (sec // 60) % 60, sec % 60,
                rnd.choice(METHODS), rnd.choice(PATHS), rnd.choice(STATUSES), rnd.randrange(100, 99999),
                "-" if rnd.random() < 0.3 else "https://shop.example/p/%d" % rnd.randrange(1000),
                rnd.choice(AGENTS), rnd.random())
            f.write(line + "\n")


if __name__ == "__main__":
    main()
