#!/usr/bin/env bash
# Two images in one user message (up to --limit-mm-per-prompt, default 4), with curl. Each image becomes its own run
# of image tokens in the prompt, in message order; usage.prompt_tokens counts them. (The demo model was trained on
# one picture at a time, so its answer about two is a guess; a LLaVA checkpoint compares them.)
#
#   java -jar server/target/retina.jar serve --port 8000 &
#   examples/online/multi_image.sh [IMAGE_1] [IMAGE_2]
set -euo pipefail
BASE_URL=${BASE_URL:-http://localhost:8000/v1}
HERE=$(dirname "$0")
A=${1:-$HERE/../images/red-circle-blue-square.png}
B=${2:-$HERE/../images/three-triangles.png}
python3 - "$A" "$B" <<'PY' | curl -sS "$BASE_URL/chat/completions" -H "Content-Type: application/json" --data-binary @- \
  | python3 -m json.tool
import base64, json, sys
def url(path):
    return "data:image/png;base64," + base64.b64encode(open(path, "rb").read()).decode()
print(json.dumps({
    "model": "demo", "temperature": 0, "max_tokens": 32,
    "messages": [{"role": "user", "content": [
        {"type": "text", "text": "First picture:"},
        {"type": "image_url", "image_url": {"url": url(sys.argv[1])}},
        {"type": "text", "text": "Second picture:"},
        {"type": "image_url", "image_url": {"url": url(sys.argv[2])}},
        {"type": "text", "text": "Describe the image."}]}]}))
PY
