#!/usr/bin/env python3
"""One client, 2,000 sequential 256 B SETs over RESP (after 200 warm-up), p50/p99: the Ketch side of
benches/compare/etcd.sh. Usage: single_client_resp.py PORT"""
import socket
import sys
import time

s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
replies = s.makefile("rb")
value = b"v" * 256
lat = []
for i in range(2200):
    key = b"k%d" % (i % 1000)
    msg = b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$256\r\n%s\r\n" % (len(key), key, value)
    t = time.perf_counter()
    s.sendall(msg)
    line = replies.readline()
    if line != b"+OK\r\n":
        raise SystemExit(f"unexpected reply {line!r}")
    if i >= 200:
        lat.append(time.perf_counter() - t)
lat.sort()
p = lambda q: lat[int(q * (len(lat) - 1))] * 1e3
print(f"ketch single client SET (RESP, 256 B): p50 {p(0.5):.3f} ms p99 {p(0.99):.3f} ms, "
      f"{len(lat) / sum(lat):.0f} sets/s")
