#!/usr/bin/env bash
# CI's run of the examples against the bundled demo model (after `mvn package`): the curl script (data URL, http URL
# from a local image server, streamed), OfflineExample and OnlineExample (OpenAI Java SDK). Each answer about the red
# circle left of a blue square is checked. Loopback only; stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-8010}
IMAGE_PORT=${IMAGE_PORT:-8011}
LOG=$(mktemp)
java -jar server/target/retina.jar serve --port "$PORT" --allow-private-media-urls > "$LOG" 2>&1 &
SERVER=$!
python3 -m http.server "$IMAGE_PORT" --bind 127.0.0.1 --directory examples/images > /dev/null 2>&1 &
IMAGES=$!
trap 'kill $SERVER $IMAGES 2>/dev/null || true; wait 2>/dev/null || true' EXIT
for _ in $(seq 120); do
  curl -sf "http://127.0.0.1:$PORT/health" > /dev/null && break
  kill -0 $SERVER 2> /dev/null || { cat "$LOG"; exit 1; }
  sleep 1
done
grep "Retina ready" "$LOG"

check() { # $1 = what, $2 = text, $3.. = words the answer must name
  local what=$1 text=$2; shift 2
  for word in "$@"; do
    grep -qi -- "$word" <<< "$text" || { echo "FAIL: $what does not name '$word':"; echo "$text"; exit 1; }
  done
  echo "ok: $what names $*"
}

out=$(BASE_URL="http://127.0.0.1:$PORT/v1" IMAGE_URL="http://127.0.0.1:$IMAGE_PORT/red-circle-blue-square.png" \
      examples/online/curl_chat.sh examples/images/red-circle-blue-square.png)
echo "$out"
check "curl_chat.sh (data URL, http URL, streamed)" "$out" "red circle" "blue square" "data: \[DONE\]"
[[ $(grep -c '"content": "a red circle and a blue square"' <<< "$out") -eq 2 ]] \
  || { echo "FAIL: the data-URL and http-URL answers differ"; exit 1; }

out=$(BASE_URL="http://127.0.0.1:$PORT/v1" examples/online/multi_image.sh)
echo "$out"
check "multi_image.sh (two images in one message)" "$out" '"prompt_tokens": 1[0-9][0-9],' '"finish_reason"'

CP="examples/target/retina-examples-0.1.0-SNAPSHOT.jar:server/target/retina.jar:server/target/lib/*:examples/target/lib/*"
out=$(java -cp "$CP" dev.retina.examples.OfflineExample 2> /dev/null)
echo "$out"
check OfflineExample "$(grep -A1 'image 0, Is the circle left' <<< "$out")" left
check OfflineExample "$(grep -A1 'image 0, What color is the circle' <<< "$out")" red
check "OfflineExample (the seed's prompt form)" "$(grep -A1 "seed's prompt form" <<< "$out")" left

out=$(java -cp "$CP" dev.retina.examples.OnlineExample "http://127.0.0.1:$PORT/v1" 2> /dev/null)
echo "$out"
check OnlineExample "$out" left

(cd examples/online && npm ci --no-audit --no-fund --loglevel=error > /dev/null)
out=$(node examples/online/openai_chat.mjs examples/images/red-circle-blue-square.png "http://127.0.0.1:$PORT/v1")
echo "$out"
check "openai_chat.mjs (OpenAI Node SDK, whole and streamed)" "$out" "whole: left" "streamed: left"
echo "examples: all answers checked"
