package dev.retina.e2e;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.retina.server.RetinaServer;
import dev.retina.server.backend.LlavaBackendLoader;
import dev.retina.server.config.Device;
import dev.retina.server.config.Dtype;
import dev.retina.server.config.LoadFormat;
import dev.retina.server.config.MediaConfig;
import dev.retina.server.config.ServerConfig;
import dev.retina.server.config.ServingOptions;
import dev.retina.server.config.VlmConfig;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The parity sweep (tools/parity_sweep.py): tiny random LLaVA and LLaVA-NeXT checkpoints drawn across tokenizer types,
 * chat templates, vision towers, attention and rope variants, each served by Retina over real HTTP and asked what
 * transformers 5.17 was asked. For every checkpoint and prompt: {@code /tokenize} of the chat gives transformers'
 * prompt ids; the chat completion's first-token log-probs equal transformers' float64 ones within 1e-4 (float32 on
 * CPU here); greedy tokens are identical wherever transformers' top-1 margin exceeds 1e-3; tokenizing text prompts and
 * detokenizing give transformers' ids and text. {@code -Dretina.sweep=DIR} runs another sweep (a new-user check).
 */
class ParitySweepE2ETest {
    static final Path SWEEP = Path.of(System.getProperty("retina.sweep",
            System.getProperty("retina.root", ".") + "/src/test/resources/sweep"));
    static final Path FIXTURE_IMAGES = Path.of(System.getProperty("retina.fixtures", "src/test/resources/fixtures"))
            .resolve("images");
    static final ObjectMapper JSON = new ObjectMapper();
    static final double LOGPROB_TOLERANCE = 1e-4;
    static final double MARGIN = 1e-3;
    static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
    static final List<String> TABLE = new ArrayList<>();

    @TestFactory
    Stream<DynamicTest> everySweepCheckpointAnswersAsTransformers() throws Exception {
        Path index = SWEEP.resolve("golden").resolve("index.json");
        assumeTrue(Files.isRegularFile(index), "no sweep at " + SWEEP);
        JsonNode cases = JSON.readTree(index.toFile());
        Map<String, String> imageFiles = new HashMap<>();
        cases.get("image_files").properties().forEach(e -> imageFiles.put(e.getKey(), e.getValue().asText()));
        List<DynamicTest> tests = new ArrayList<>();
        for (JsonNode c : cases.get("cases")) {
            String name = c.asText();
            tests.add(DynamicTest.dynamicTest(name, () -> runCase(name, imageFiles)));
        }
        if (System.getProperty("retina.sweep") == null) // the committed sweep; another may be smaller
            assertTrue(tests.size() >= 24, "sweep has " + tests.size() + " checkpoints");
        return tests.stream();
    }

    /**
     * A {@code json_schema} request on each sweep tokenizer (a few hundred tokens: SentencePiece legacy / first /
     * always, byte-level, Llama-3 split): the answer parses and has the schema's integer, or, when max_tokens ran out
     * first, finish_reason is "length"; it never ends as "stop" with text that breaks the schema.
     */
    @TestFactory
    Stream<DynamicTest> constrainedOutputHoldsOnEveryTokenizer() throws Exception {
        Path index = SWEEP.resolve("golden").resolve("index.json");
        assumeTrue(Files.isRegularFile(index), "no sweep at " + SWEEP);
        List<DynamicTest> tests = new ArrayList<>();
        Map<String, Boolean> kinds = new HashMap<>();
        for (JsonNode c : JSON.readTree(index.toFile()).get("cases")) {
            String name = c.asText();
            JsonNode golden = JSON.readTree(SWEEP.resolve("golden").resolve(name + ".json").toFile());
            String kind = golden.at("/axes/tokenizer/kind").asText() + golden.at("/axes/tokenizer/bos_post").asText();
            if (kinds.putIfAbsent(kind, true) != null) continue;
            tests.add(DynamicTest.dynamicTest(name + " json_schema", () -> constrained(name)));
        }
        return tests.stream();
    }

    static void constrained(String name) throws Exception {
        Path modelDir = SWEEP.resolve("models").resolve(name);
        ServerConfig config = new ServerConfig(modelDir.toString(), "sweep", "127.0.0.1", 0, null, Dtype.AUTO,
                Device.CPU, null, 0L, LoadFormat.AUTO, VlmConfig.defaults(), Duration.ofSeconds(5), 20 << 20,
                20L << 20, MediaConfig.defaults());
        RetinaServer server = RetinaServer.start(config, new LlavaBackendLoader());
        try {
            String base = "http://127.0.0.1:" + server.port();
            for (int trial = 0; trial < 6; trial++) {
                ObjectNode chat = JSON.createObjectNode().put("model", "sweep").put("max_tokens", 16 + 24 * trial)
                        .put("seed", trial).put("temperature", trial == 0 ? 0.0 : 1.0);
                chat.putArray("messages").addObject().put("role", "user").put("content", "Give me a JSON object.");
                ObjectNode schema = JSON.createObjectNode().put("type", "object");
                schema.putObject("properties").putObject("a").put("type", "integer");
                schema.putArray("required").add("a");
                schema.put("additionalProperties", false);
                ObjectNode format = chat.putObject("response_format").put("type", "json_schema");
                format.putObject("json_schema").put("name", "a").set("schema", schema);
                JsonNode r = post(base + "/v1/chat/completions", chat);
                String finish = r.at("/choices/0/finish_reason").asText();
                String content = r.at("/choices/0/message/content").asText();
                System.out.println("json_schema " + name + " trial " + trial + ": " + finish + " "
                        + JSON.writeValueAsString(content));
                if (finish.equals("length")) continue;
                assertEquals("stop", finish, content);
                JsonNode parsed = JSON.readTree(content);
                assertTrue(parsed != null && parsed.isObject() && parsed.path("a").isIntegralNumber()
                        && parsed.size() == 1, name + " trial " + trial + ": " + JSON.writeValueAsString(content));
            }
        } finally {
            server.close();
        }
    }

    @AfterAll
    static void printTable() {
        if (TABLE.isEmpty()) return;
        System.out.println("| checkpoint | prompts | ids equal | max first-token abs dlogprob | greedy tokens checked/equal "
                + "| texts equal |");
        System.out.println("|---|---|---|---|---|---|");
        TABLE.forEach(System.out::println);
    }

    static void runCase(String name, Map<String, String> imageFiles) throws Exception {
        JsonNode golden = JSON.readTree(SWEEP.resolve("golden").resolve(name + ".json").toFile());
        Path modelDir = SWEEP.resolve("models").resolve(name);
        ServerConfig config = new ServerConfig(modelDir.toString(), "sweep", "127.0.0.1", 0, null, Dtype.AUTO,
                Device.CPU, null, 0L, LoadFormat.AUTO, VlmConfig.defaults(), Duration.ofSeconds(5), 20 << 20,
                20L << 20, MediaConfig.defaults());
        ServingOptions d = ServingOptions.defaults();
        ServingOptions options = new ServingOptions(d.apiKeys(), d.allowedOrigins(), d.allowedMethods(),
                d.allowedHeaders(), d.maxNumWaiting(), d.requestTimeout(), false, false, null, null, "assistant", true);
        RetinaServer server = RetinaServer.start(config, options, new LlavaBackendLoader());
        try {
            String base = "http://127.0.0.1:" + server.port();
            int idsEqual = 0, checked = 0, equalSteps = 0, textsEqual = 0;
            double worst = 0;
            List<String> failures = new ArrayList<>();
            JsonNode prompts = golden.get("prompts");
            for (int p = 0; p < prompts.size(); p++) {
                JsonNode prompt = prompts.get(p);
                ArrayNode messages = messages(prompt.get("messages"), imageFiles);
                ObjectNode tokenize = JSON.createObjectNode().put("model", "sweep").put("add_generation_prompt", true);
                tokenize.set("messages", messages);
                JsonNode tokens = post(base + "/tokenize", tokenize).get("tokens");
                if (tokens.equals(prompt.get("input_ids"))) idsEqual++;
                else failures.add("prompt " + p + " ids differ:\n  ours " + tokens + "\n  HF   " + prompt.get("input_ids"));

                ObjectNode chat = JSON.createObjectNode().put("model", "sweep").put("temperature", 0)
                        .put("max_tokens", prompt.get("greedy").size()).put("ignore_eos", true).put("logprobs", true)
                        .put("top_logprobs", 5);
                chat.set("messages", messages);
                JsonNode response = post(base + "/v1/chat/completions", chat);
                JsonNode content = response.at("/choices/0/logprobs/content");
                assertEquals(prompt.get("input_ids").size(), response.at("/usage/prompt_tokens").asInt(), name);
                // First token: every HF top-5 id clearly inside the top 5 is in ours, with the same log-prob.
                JsonNode hfFirst = prompt.get("steps").get(0);
                Map<Integer, Double> ours = new HashMap<>();
                for (JsonNode t : content.get(0).get("top_logprobs")) ours.put(tokenId(t), t.get("logprob").asDouble());
                double fifth = hfFirst.get("logprobs").get(4).asDouble();
                for (int k = 0; k < 5; k++) {
                    int id = hfFirst.get("ids").get(k).asInt();
                    double lp = hfFirst.get("logprobs").get(k).asDouble();
                    if (lp - fifth <= MARGIN && k > 0) continue;
                    Double mine = ours.get(id);
                    if (mine == null) {
                        failures.add("prompt " + p + ": HF's first-token top-" + (k + 1) + " id " + id + " not in ours " + ours);
                        continue;
                    }
                    worst = Math.max(worst, Math.abs(mine - lp));
                    if (Math.abs(mine - lp) > LOGPROB_TOLERANCE)
                        failures.add("prompt " + p + ": first-token logprob of " + id + " " + mine + " vs HF " + lp);
                }
                // Greedy tokens, up to the first step where HF's own top-1 is within the margin of its top-2.
                JsonNode greedy = prompt.get("greedy");
                JsonNode margins = prompt.get("margins");
                boolean all = true;
                for (int s = 0; s < greedy.size(); s++) {
                    checked++;
                    int mine = tokenId(content.get(s));
                    if (mine != greedy.get(s).asInt()) {
                        failures.add("prompt " + p + " step " + s + ": token " + mine + " vs HF " + greedy.get(s)
                                + " (HF margin " + margins.get(s) + ")");
                        all = false;
                        break;
                    }
                    equalSteps++;
                    if (margins.get(s).asDouble() <= MARGIN) {
                        all = false;
                        break;
                    }
                }
                if (all && !response.at("/choices/0/message/content").asText().equals(prompt.get("text").asText()))
                    failures.add("prompt " + p + " text " + response.at("/choices/0/message/content") + " vs HF "
                            + prompt.get("text"));
            }
            for (JsonNode t : golden.get("texts")) {
                ObjectNode tokenize = JSON.createObjectNode().put("model", "sweep").put("prompt", t.get("text").asText());
                JsonNode ids = post(base + "/tokenize", tokenize).get("tokens");
                ObjectNode detok = JSON.createObjectNode().put("model", "sweep");
                detok.set("tokens", t.get("ids"));
                String text = post(base + "/detokenize", detok).get("prompt").asText();
                boolean ok = ids.equals(t.get("ids")) && text.equals(t.get("decoded_special").asText());
                if (ok) textsEqual++;
                else failures.add("text " + JSON.writeValueAsString(t.get("text")) + ": ids " + ids + " vs HF "
                        + t.get("ids") + "; detokenized " + JSON.writeValueAsString(text) + " vs HF "
                        + JSON.writeValueAsString(t.get("decoded_special").asText()));
            }
            TABLE.add(String.format("| %s | %d | %d/%d | %.2g | %d/%d | %d/%d |", name, prompts.size(), idsEqual,
                    prompts.size(), worst, equalSteps, checked, textsEqual, golden.get("texts").size()));
            if (!failures.isEmpty()) fail(name + ":\n" + String.join("\n", failures));
        } finally {
            server.close();
        }
    }

    /** The golden's messages as an OpenAI request's: images become data: URLs of the image files. */
    static ArrayNode messages(JsonNode golden, Map<String, String> imageFiles) throws Exception {
        ArrayNode out = JSON.createArrayNode();
        for (JsonNode m : golden) {
            ObjectNode msg = out.addObject().put("role", m.get("role").asText());
            if (m.get("content").isTextual()) {
                msg.put("content", m.get("content").asText());
                continue;
            }
            ArrayNode parts = msg.putArray("content");
            for (JsonNode part : m.get("content")) {
                if (part.get("type").asText().equals("text")) {
                    parts.addObject().put("type", "text").put("text", part.get("text").asText());
                } else {
                    String file = imageFiles.get(part.get("image").asText());
                    Path path = SWEEP.resolve("images").resolve(file);
                    if (!Files.isRegularFile(path)) path = FIXTURE_IMAGES.resolve(file);
                    String mime = file.endsWith(".jpg") ? "image/jpeg" : "image/png";
                    String url = "data:" + mime + ";base64," + Base64.getEncoder().encodeToString(Files.readAllBytes(path));
                    parts.addObject().put("type", "image_url").putObject("image_url").put("url", url);
                }
            }
        }
        return out;
    }

    static int tokenId(JsonNode logprob) {
        String token = logprob.get("token").asText();
        assertTrue(token.startsWith("token_id:"), token);
        return Integer.parseInt(token.substring("token_id:".length()));
    }

    static JsonNode post(String url, JsonNode body) throws Exception {
        HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create(url))
                .header("Content-Type", "application/json").timeout(Duration.ofSeconds(120))
                .POST(HttpRequest.BodyPublishers.ofString(JSON.writeValueAsString(body))).build(),
                HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode(), url + ": " + r.body());
        JsonNode json = JSON.readTree(r.body());
        assertNotNull(json);
        return json;
    }
}
