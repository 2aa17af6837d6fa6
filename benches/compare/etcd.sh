#!/usr/bin/env bash
# A 3-member etcd 3.4 cluster on loopback, same machine: single-client put latency (HTTP/JSON
# gateway, one keep-alive connection, 2000 sequential puts of 256 B) and `etcdctl check perf --load=l`.
set -uo pipefail
work=$(mktemp -d)
cluster="e1=http://127.0.0.1:12380,e2=http://127.0.0.1:22380,e3=http://127.0.0.1:32380"
for i in 1 2 3; do
  etcd --name e$i --data-dir "$work/e$i" \
    --listen-peer-urls http://127.0.0.1:${i}2380 --initial-advertise-peer-urls http://127.0.0.1:${i}2380 \
    --listen-client-urls http://127.0.0.1:${i}2379 --advertise-client-urls http://127.0.0.1:${i}2379 \
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token cmp \
    > "$work/e$i.log" 2>&1 &
done
sleep 5
export ETCDCTL_API=3
eps=http://127.0.0.1:12379,http://127.0.0.1:22379,http://127.0.0.1:32379
etcdctl --endpoints=$eps endpoint status -w table
leader=$(etcdctl --endpoints=$eps endpoint status -w json | python3 -c 'import json,sys; print([e["Endpoint"] for e in json.load(sys.stdin) if e["Status"]["leader"]==e["Status"]["header"]["member_id"]][0])')
echo "leader $leader"
python3 - "$leader" <<'PY'
import base64, http.client, json, sys, time, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
conn = http.client.HTTPConnection(u.hostname, u.port)
value = base64.b64encode(b"v" * 256).decode()
lat = []
for i in range(2200):
    body = json.dumps({"key": base64.b64encode(b"k%d" % (i % 1000)).decode(), "value": value})
    t = time.perf_counter()
    conn.request("POST", "/v3/kv/put", body, {"Content-Type": "application/json"})
    r = conn.getresponse(); r.read()
    if r.status != 200: raise SystemExit(f"put failed: {r.status}")
    if i >= 200: lat.append(time.perf_counter() - t)
lat.sort()
p = lambda q: lat[int(q * (len(lat) - 1))] * 1e3
print(f"etcd single client put (HTTP gateway, 256 B): p50 {p(0.5):.3f} ms p99 {p(0.99):.3f} ms, {len(lat)/sum(lat):.0f} puts/s")
PY
etcdctl --endpoints=$eps check perf --load=l 2>&1 | tail -6
pkill -f "etcd --name e" ; sleep 1; rm -rf "$work"
# The same single-client loop against Ketch over RESP: start `ketch cluster --nodes 3`, then
#   python3 benches/compare/single_client_resp.py PORT_OF_THE_LEADER
