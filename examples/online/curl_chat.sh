#!/usr/bin/env bash
# Chat with an image through a running `retina serve`, with curl:
#   1. the image inline as a base64 data URL,  2. the image by http(s) URL,  3. (2) streamed as server-sent events.
#
#   java -jar server/target/retina.jar serve --port 8000 &
#   examples/online/curl_chat.sh [IMAGE_FILE]
#
# Environment: BASE_URL (default http://localhost:8000/v1), MODEL (default: the first model the server lists),
# IMAGE_URL (an http(s) image for 2 and 3), OPENAI_API_KEY (sent as a bearer token when set).
# The server refuses image URLs that resolve to private addresses (localhost, 10.x, ...), as a public server should.
set -euo pipefail

BASE_URL=${BASE_URL:-http://localhost:8000/v1}
IMAGE_FILE=${1:-$(dirname "$0")/../images/red-circle-blue-square.png}
IMAGE_URL=${IMAGE_URL:-https://upload.wikimedia.org/wikipedia/commons/thumb/3/3a/Cat03.jpg/320px-Cat03.jpg}
QUESTION=${QUESTION:-Describe the image.}
AUTH=()
if [[ -n "${OPENAI_API_KEY:-}" ]]; then AUTH=(-H "Authorization: Bearer ${OPENAI_API_KEY}"); fi

MODEL=${MODEL:-$(curl -sf "${AUTH[@]}" "$BASE_URL/models" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')}
echo "model: $MODEL"

# A request body: $1 = image URL or a local file (sent as a base64 data URL), $2 = stream (true|false).
# Built in Python because a data URL is too long for a command-line argument.
body() {
  python3 - "$MODEL" "$1" "$2" "$QUESTION" <<'PY'
import base64, json, mimetypes, sys
model, url, stream, question = sys.argv[1], sys.argv[2], sys.argv[3] == "true", sys.argv[4]
if not url.startswith(("http://", "https://", "data:")):
    mime = mimetypes.guess_type(url)[0] or "image/png"
    url = "data:%s;base64,%s" % (mime, base64.b64encode(open(url, "rb").read()).decode())
print(json.dumps({
    "model": model,
    "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}},
        {"type": "text", "text": question},
    ]}],
    "max_tokens": 32,
    "temperature": 0,
    "stream": stream,
    **({"stream_options": {"include_usage": True}} if stream else {}),
}))
PY
}

echo "--- 1. data URL ($IMAGE_FILE)"
body "$IMAGE_FILE" false | curl -sS "${AUTH[@]}" "$BASE_URL/chat/completions" \
  -H "Content-Type: application/json" --data-binary @- | python3 -m json.tool
echo

echo "--- 2. http URL ($IMAGE_URL)"
body "$IMAGE_URL" false | curl -sS "${AUTH[@]}" "$BASE_URL/chat/completions" \
  -H "Content-Type: application/json" --data-binary @- | python3 -m json.tool
echo

echo "--- 3. http URL, streamed (one 'data:' line per chunk, then 'data: [DONE]')"
body "$IMAGE_URL" true | curl -sS -N "${AUTH[@]}" "$BASE_URL/chat/completions" \
  -H "Content-Type: application/json" --data-binary @-
