// Chat with an image through a running `retina serve`, with the official OpenAI Node SDK:
//
//   java -jar server/target/retina.jar serve --port 8000 &
//   npm install openai && node examples/online/openai_chat.mjs [IMAGE_FILE_OR_URL] [BASE_URL]
//
// Asks once for a whole answer, then streams the same question. A local file is sent as a base64 data URL; an http(s)
// URL is fetched by the server. OPENAI_API_KEY is sent if set (Retina ignores it unless started with an API key).
import { readFileSync } from "node:fs";
import OpenAI from "openai";

const image = process.argv[2] ?? new URL("../images/red-circle-blue-square.png", import.meta.url).pathname;
const baseURL = process.argv[3] ?? "http://localhost:8000/v1";
const url = /^(https?|data):/.test(image)
  ? image
  : `data:image/png;base64,${readFileSync(image).toString("base64")}`;
const client = new OpenAI({ baseURL, apiKey: process.env.OPENAI_API_KEY ?? "EMPTY" });
const model = (await client.models.list()).data[0].id;
const messages = [{ role: "user", content: [
  { type: "image_url", image_url: { url } },
  { type: "text", text: "Is the circle left or right of the square?" },
] }];

const whole = await client.chat.completions.create({ model, messages, temperature: 0, max_tokens: 32 });
console.log("whole:", whole.choices[0].message.content, `(${whole.usage.prompt_tokens} prompt tokens)`);

process.stdout.write("streamed: ");
const stream = await client.chat.completions.create({ model, messages, temperature: 0, max_tokens: 32, stream: true });
for await (const chunk of stream) process.stdout.write(chunk.choices[0]?.delta?.content ?? "");
console.log();
