#!/usr/bin/env python3
"""Chat with an image through a running `retina serve`, with the official OpenAI Python SDK (pip install openai).

    java -jar server/target/retina.jar serve --port 8000 &
    python3 examples/online/openai_chat.py [IMAGE_FILE_OR_URL] [--base-url http://localhost:8000/v1]

Asks once for a whole answer, then streams the same question. A local file is sent as a base64 data URL; an
http(s) URL is fetched by the server. OPENAI_API_KEY is sent if set (Retina ignores it unless given an API key).
"""
import argparse
import base64
import mimetypes
import os

from openai import OpenAI


def image_url(arg: str) -> str:
    if arg.startswith(("http://", "https://", "data:")):
        return arg
    mime = mimetypes.guess_type(arg)[0] or "image/png"
    with open(arg, "rb") as f:
        return f"data:{mime};base64,{base64.b64encode(f.read()).decode('ascii')}"


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?",
                        default=os.path.join(here, "..", "images", "red-circle-blue-square.png"))
    parser.add_argument("--base-url", default="http://localhost:8000/v1")
    parser.add_argument("--model", default=None, help="default: the first model the server lists")
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()

    client = OpenAI(base_url=args.base_url, api_key=os.environ.get("OPENAI_API_KEY", "EMPTY"))
    model = args.model or client.models.list().data[0].id
    messages = [{
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": {"url": image_url(args.image)}},
            {"type": "text", "text": "Is the circle left or right of the square?"},
        ],
    }]

    whole = client.chat.completions.create(model=model, messages=messages, max_tokens=args.max_tokens, temperature=0)
    print("model:", whole.model)
    print("answer:", whole.choices[0].message.content)
    print(f"usage: {whole.usage.prompt_tokens} prompt + {whole.usage.completion_tokens} completion tokens")

    print("streamed: ", end="", flush=True)
    stream = client.chat.completions.create(model=model, messages=messages, max_tokens=args.max_tokens,
                                            temperature=0, stream=True, stream_options={"include_usage": True})
    for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                print(choice.delta.content, end="", flush=True)
            if choice.finish_reason:
                print(f"  [{choice.finish_reason}]", end="")
        if chunk.usage:
            print(f"\nusage: {chunk.usage.completion_tokens} completion tokens")
    print()


if __name__ == "__main__":
    main()
