#!/usr/bin/env bash
# Several `retina serve` processes behind a stock reverse proxy (nginx, least-connections balancing) on loopback,
# exercised by `retina bench serve`: the multi-process shape of docker/inference-gateway.yaml on one machine.
#   tools/loopback_cluster.sh N [retina bench serve flags...]
# Serves the demo model unless RETINA_SERVE_ARGS says otherwise (e.g. "--model DIR --device gpu"). Uses nginx from
# the PATH, else unpacks Debian's nginx package (apt-get download) into a temporary folder; no root install.
# Prints the benchmark's tables and how many requests each replica answered. Ports: proxy 8099, replicas 8100+.
set -euo pipefail
N=${1:?usage: tools/loopback_cluster.sh N [bench serve flags...]}
shift
cd "$(dirname "$0")/.."
JAR=server/target/retina.jar
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java
T=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done
  wait 2> /dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT

NGINX=$(command -v nginx || true)
if [[ -z "$NGINX" ]]; then
  (cd "$T" && apt-get download nginx nginx-common > /dev/null 2>&1 && for d in nginx*.deb; do dpkg -x "$d" root; done)
  NGINX=$T/root/usr/sbin/nginx
fi
"$NGINX" -v 2>&1 | sed 's/^/loopback: /'

upstreams=""
for ((i = 0; i < N; i++)); do
  port=$((8100 + i))
  # shellcheck disable=SC2086
  "$JAVA" -jar "$JAR" serve --host 127.0.0.1 --port "$port" ${RETINA_SERVE_ARGS:-} > "$T/replica$i.log" 2>&1 &
  pids+=($!)
  upstreams+="    server 127.0.0.1:$port;"$'\n'
done
for ((i = 0; i < N; i++)); do
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$((8100 + i))/health" > /dev/null && break; sleep 1; done
  curl -sf "http://127.0.0.1:$((8100 + i))/health" > /dev/null || { tail -20 "$T/replica$i.log"; exit 1; }
done
mkdir -p "$T/tmp"
cat > "$T/nginx.conf" <<CONF
worker_processes 1;
pid $T/nginx.pid;
error_log $T/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $T/tmp/body;
  proxy_temp_path $T/tmp/proxy;
  fastcgi_temp_path $T/tmp/fastcgi;
  uwsgi_temp_path $T/tmp/uwsgi;
  scgi_temp_path $T/tmp/scgi;
  upstream retina {
    least_conn;
$upstreams    keepalive 64;
  }
  server {
    listen 127.0.0.1:8099;
    client_max_body_size 64m;
    location / {
      proxy_pass http://retina;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 600s;
    }
  }
}
CONF
"$NGINX" -e "$T/nginx-error.log" -c "$T/nginx.conf" -p "$T" -g 'daemon off;' &
pids+=($!)
for _ in $(seq 50); do curl -sf http://127.0.0.1:8099/health > /dev/null && break; sleep 0.2; done
echo "loopback: $N replicas (ports 8100-$((8099 + N))) behind nginx least_conn on 127.0.0.1:8099"
"$JAVA" -jar "$JAR" bench serve --base-url http://127.0.0.1:8099 "$@"
for ((i = 0; i < N; i++)); do
  answered=$(curl -sf "http://127.0.0.1:$((8100 + i))/metrics" | awk '/^retina:request_success_total/ {s += $2} END {print s + 0}')
  echo "loopback: replica $i answered $answered requests"
done
