#!/usr/bin/env python3
"""Issue 11's checks against a running Retina, for the GPU build (where no Java test harness runs): engine faults,
a disconnect storm and engine death, over real sockets. Standard library only; prints a table and writes JSON.

The server must run with fault injection on (a testing hook, docs/RELIABILITY.md):
    java -Dretina.faultInjection=step-error-seed=666,death-seed=667 -jar retina.jar serve --device gpu ...
    python3 tools/hardening_check.py --base-url http://127.0.0.1:8000 --out result.json

Order: (1) a request whose step throws inside the forward pass gets a 500 while 16 others, in flight at the same
time, complete (the engine reruns a failed step's requests one at a time and fails only the one that fails alone); (2) 200 streaming clients for 400 tokens each hang up after 0.5 s: running, waiting and KV usage
return to 0, the generated-token counter stops, a fresh request completes within 5 s, and GPU memory (nvidia-smi)
is compared before and after; (3) a request that kills the engine thread: /health and /ready turn 503 and new
requests get 503 at once. Step 3 leaves the server unusable, so it runs last (--skip-death to leave it out).
"""
import argparse
import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlparse


def metrics(base):
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    m = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, value = line.rsplit(" ", 1)
        name = name.split("{", 1)[0]
        m[name] = m.get(name, 0.0) + float(value)
    return m


def gpu_memory_mib():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10).stdout
        return int(out.split()[0])
    except Exception:  # no GPU tools here
        return None


def chat(base, model, seed=None, max_tokens=16, stream=False, timeout=60):
    body = {"model": model, "temperature": 0, "max_tokens": max_tokens, "ignore_eos": True, "stream": stream,
            "messages": [{"role": "user", "content": "Describe the picture."}]}
    if seed is not None:
        body["seed"] = seed
    req = urllib.request.Request(base + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode(), time.monotonic() - t0
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), time.monotonic() - t0
    except Exception as e:  # connection-level failure
        return 0, repr(e), time.monotonic() - t0


def status(base, path):
    try:
        return urllib.request.urlopen(base + path, timeout=5).status
    except urllib.error.HTTPError as e:
        return e.code


def storm_client(host, port, model, results, i):
    body = json.dumps({"model": model, "temperature": 0, "max_tokens": 400, "ignore_eos": True, "stream": True,
                       "messages": [{"role": "user", "content": "Describe the picture."}]}).encode()
    try:
        with socket.create_connection((host, port), timeout=30) as s:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body)
            first = s.recv(4096)
            results[i] = first.split(b"\r\n", 1)[0].decode(errors="replace")
            time.sleep(0.5)
    except Exception as e:
        results[i] = repr(e)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", default="http://127.0.0.1:8000")
    ap.add_argument("--step-error-seed", type=int, default=666)
    ap.add_argument("--death-seed", type=int, default=667)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--skip-death", action="store_true")
    ap.add_argument("--out")
    a = ap.parse_args()
    base = a.base_url.rstrip("/")
    u = urlparse(base)
    model = json.loads(urllib.request.urlopen(base + "/v1/models").read())["data"][0]["id"]
    report = {"model": model}
    rows = []

    # (1) a failing step among requests in flight
    results = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, chat(base, model, max_tokens=64)))
               for i in range(16)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    code, text, secs = chat(base, model, seed=a.step_error_seed)
    for t in threads:
        t.join()
    ok = sum(1 for r in results.values() if r[0] == 200)
    failed = sum(1 for r in results.values() if r[0] == 500)
    after = [chat(base, model) for _ in range(4)]
    report["step_error"] = {"status": code, "body": text[:300], "others_ok": ok, "others_500": failed,
                            "others": len(results), "after_status": [r[0] for r in after]}
    rows.append(("forward pass throws (seed %d)" % a.step_error_seed, "%d (%.2f s)" % (code, secs),
                 "of %d requests in flight with it: %d 200, %d 500; next 4 requests %s"
                 % (len(results), ok, failed, ",".join(str(r[0]) for r in after))))

    # (2) disconnect storm
    mem_before = gpu_memory_mib()
    m0 = metrics(base)
    res = [None] * a.clients
    t0 = time.monotonic()
    ts = [threading.Thread(target=storm_client, args=(u.hostname, u.port, model, res, i)) for i in range(a.clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    hung_up = time.monotonic()
    m = metrics(base)
    while (m["retina:num_requests_running"] > 0 or m["retina:num_requests_waiting"] > 0
           or m["retina:kv_cache_usage_perc"] > 0) and time.monotonic() - hung_up < 30:
        time.sleep(0.05)
        m = metrics(base)
    settled = time.monotonic() - hung_up
    gen = m["retina:generation_tokens_total"]
    time.sleep(2)
    gen_later = metrics(base)["retina:generation_tokens_total"]
    fresh = chat(base, model, max_tokens=32)
    mem_after = gpu_memory_mib()
    started = sum(1 for r in res if r and " 200" in r)
    report["storm"] = {"clients": a.clients, "streams_started": started, "settled_s": settled,
                       "running": m["retina:num_requests_running"], "waiting": m["retina:num_requests_waiting"],
                       "kv_usage": m["retina:kv_cache_usage_perc"],
                       "tokens_generated": gen - m0.get("retina:generation_tokens_total", 0),
                       "tokens_after_2s": gen_later - gen, "fresh_status": fresh[0], "fresh_s": fresh[2],
                       "gpu_mib_before": mem_before, "gpu_mib_after": mem_after, "storm_s": hung_up - t0}
    rows.append(("%d streams hang up after 0.5 s" % a.clients,
                 "running %g, waiting %g, KV %g after %.2f s" % (m["retina:num_requests_running"],
                                                                  m["retina:num_requests_waiting"],
                                                                  m["retina:kv_cache_usage_perc"], settled),
                 "%d of %d asked tokens generated, +%g in the next 2 s; fresh request %d in %.2f s; GPU %s -> %s MiB"
                 % (gen - m0.get("retina:generation_tokens_total", 0), 400 * a.clients, gen_later - gen, fresh[0],
                    fresh[2], mem_before, mem_after)))

    # (3) engine death
    if not a.skip_death:
        code, text, secs = chat(base, model, seed=a.death_seed)
        time.sleep(0.5)
        health, ready = status(base, "/health"), status(base, "/ready")
        late = chat(base, model)
        report["death"] = {"status": code, "body": text[:300], "health": health, "ready": ready,
                           "late_status": late[0], "late_s": late[2]}
        rows.append(("engine thread dies (seed %d)" % a.death_seed, "%d (%.2f s)" % (code, secs),
                     "/health %d, /ready %d; next request %d in %.3f s" % (health, ready, late[0], late[2])))

    print("| check | what the client saw | afterwards |")
    print("| --- | --- | --- |")
    for r in rows:
        print("| %s | %s | %s |" % r)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
