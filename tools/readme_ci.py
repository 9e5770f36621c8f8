#!/usr/bin/env python3
"""Runs README.md's shell blocks as written, in order, as CI's check that the README works.

Each ```bash block runs in `bash -euo pipefail` from the repository root. An HTML comment on the line before a block
steers it:
    <!-- ci: server -->          the block starts the server: run it in the background, then wait (up to 300 s)
                                 until GET http://127.0.0.1:8000/health answers 200; it is stopped at the end
    <!-- ci: skip (why) -->      not run here (needs a GPU, the internet, Docker, ...); the reason is printed
Any other block must exit 0. Usage: python3 tools/readme_ci.py [README.md]
"""
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

HEALTH = "http://127.0.0.1:8000/health"


def blocks(text):
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        if lines[i].startswith("```bash"):
            directive = None
            j = i - 1
            while j >= 0 and not lines[j].strip():
                j -= 1
            m = re.match(r"<!--\s*ci:\s*(.*?)\s*-->", lines[j].strip()) if j >= 0 else None
            if m:
                directive = m.group(1)
            k = i + 1
            while not lines[k].startswith("```"):
                k += 1
            out.append((i + 1, directive, "\n".join(lines[i + 1:k])))
            i = k
        i += 1
    return out


def wait_healthy(proc, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server block exited with %d before it was healthy" % proc.returncode)
        try:
            with urllib.request.urlopen(HEALTH, timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(1)
    raise SystemExit("the server was not healthy after %d s" % timeout)


def main():
    readme = sys.argv[1] if len(sys.argv) > 1 else "README.md"
    servers, ran, skipped = [], 0, 0
    try:
        for line, directive, code in blocks(open(readme).read()):
            if directive and directive.startswith("skip"):
                print("README:%d skipped: %s" % (line, directive[4:].strip(" ()")), flush=True)
                skipped += 1
                continue
            print("README:%d running:\n%s" % (line, code), flush=True)
            if directive == "server":
                proc = subprocess.Popen(["bash", "-euo", "pipefail", "-c", code], start_new_session=True)
                servers.append(proc)
                wait_healthy(proc, 300)
            else:
                r = subprocess.run(["bash", "-euo", "pipefail", "-c", code], capture_output=True, text=True,
                                   timeout=600)
                print(r.stdout[-3000:], r.stderr[-2000:], sep="\n", flush=True)
                if r.returncode != 0:
                    raise SystemExit("README:%d exited with %d" % (line, r.returncode))
            ran += 1
    finally:
        for proc in servers:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=60)
            except Exception:
                os.killpg(proc.pid, signal.SIGKILL)
    print("README blocks: %d ran, %d skipped" % (ran, skipped))


if __name__ == "__main__":
    main()
