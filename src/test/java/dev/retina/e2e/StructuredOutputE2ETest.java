package dev.retina.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.networknt.schema.Schema;
import com.networknt.schema.SchemaRegistry;
import com.networknt.schema.SpecificationVersion;
import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.JsonValue;
import com.openai.models.FunctionDefinition;
import com.openai.models.FunctionParameters;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.chat.completions.ChatCompletionFunctionTool;
import com.openai.models.chat.completions.ChatCompletionMessageToolCall;
import com.openai.models.chat.completions.ChatCompletionNamedToolChoice;
import com.openai.models.chat.completions.ChatCompletionToolChoiceOption;
import dev.retina.server.RetinaServer;
import dev.retina.server.backend.LlavaBackendLoader;
import dev.retina.server.config.Device;
import dev.retina.server.config.Dtype;
import dev.retina.server.config.LoadFormat;
import dev.retina.server.config.MediaConfig;
import dev.retina.server.config.ServerConfig;
import dev.retina.server.config.ServingOptions;
import dev.retina.server.config.VlmConfig;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Structured output, tools and logit_bias against the real engine with the random-weight llava15-336-mha fixture
 * (served with the tools-aware template and --return-tokens-as-token-ids): whatever the weights, constrained output
 * must parse and validate.
 */
class StructuredOutputE2ETest {
    static final Path FIXTURES = Path.of(System.getProperty("retina.fixtures", "src/test/resources/fixtures"));
    static final String MODEL = "tiny-llava";
    static final ObjectMapper JSON = new ObjectMapper();
    static final SchemaRegistry SCHEMAS = SchemaRegistry.withDefaultDialect(SpecificationVersion.DRAFT_2020_12);
    static final String PERSON = """
            {"type":"object","properties":{"name":{"type":"string","minLength":1,"maxLength":8},
             "age":{"type":"integer"},"tags":{"type":"array","items":{"enum":["a","b",3,null]},"maxItems":3},
             "ok":{"type":"boolean"},"score":{"type":["number","null"]}},
             "required":["name","age"],"additionalProperties":false}""";
    static final String WEATHER = """
            {"type":"object","properties":{"city":{"type":"string","maxLength":10},
             "unit":{"enum":["celsius","fahrenheit"]},"days":{"type":"integer"}},"required":["city","unit"],
             "additionalProperties":false}""";

    static RetinaServer server;
    static HttpClient http;
    static String base;

    @BeforeAll
    static void boot() throws Exception {
        Path modelDir = FIXTURES.resolve("models").resolve("llava15-336-mha");
        assumeTrue(Files.isRegularFile(modelDir.resolve("config.json")), "fixtures not present");
        Path template = Files.createTempFile("template_llava_tools", ".jinja");
        try (InputStream in = dev.retina.templates.ChatTemplate.class.getResourceAsStream("template_llava_tools.jinja")) {
            Files.write(template, in.readAllBytes());
        }
        ServerConfig config = new ServerConfig(modelDir.toString(), MODEL, "127.0.0.1", 0, template, Dtype.AUTO,
                Device.CPU, null, 0L, LoadFormat.AUTO, VlmConfig.defaults(), Duration.ofMillis(800), 20 << 20,
                20L << 20, MediaConfig.defaults());
        ServingOptions options = new ServingOptions(List.of(), null, null, null, 0, null, true, false, null, null,
                "assistant", true);
        server = RetinaServer.start(config, options, new LlavaBackendLoader());
        http = HttpClient.newHttpClient();
        base = "http://127.0.0.1:" + server.port();
    }

    @AfterAll
    static void stop() {
        if (server != null) server.close();
    }

    static HttpResponse<String> post(String path, Object body) throws Exception {
        return http.send(HttpRequest.newBuilder(URI.create(base + path)).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(JSON.writeValueAsString(body))).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    static ObjectNode chat(String prompt) {
        ObjectNode req = JSON.createObjectNode().put("model", MODEL);
        req.putArray("messages").addObject().put("role", "user").put("content", prompt);
        return req;
    }

    @Test
    void jsonSchemaOutputsAlwaysValidateAcrossSeedsAndTemperatures() throws Exception {
        Schema validator = SCHEMAS.getSchema(PERSON);
        int stopped = 0;
        for (double temperature : new double[] {0, 0.8, 1.5}) {
            for (long seed = 1; seed <= 4; seed++) {
                ObjectNode req = chat("Describe a person as JSON.").put("temperature", temperature).put("seed", seed)
                        .put("max_tokens", 200);
                req.putObject("response_format").put("type", "json_schema").putObject("json_schema")
                        .put("name", "person").set("schema", JSON.readTree(PERSON));
                HttpResponse<String> r = post("/v1/chat/completions", req);
                assertEquals(200, r.statusCode(), r.body());
                JsonNode choice = JSON.readTree(r.body()).path("choices").get(0);
                if (!choice.path("finish_reason").asText().equals("stop")) continue;
                stopped++;
                JsonNode value = JSON.readTree(choice.path("message").path("content").asText());
                assertTrue(validator.validate(value).isEmpty(), value + " " + validator.validate(value));
            }
        }
        assertTrue(stopped >= 10, "only " + stopped + " of 12 finished within max_tokens");
    }

    @Test
    void jsonObjectOutputsAlwaysParseAsObjects() throws Exception {
        int stopped = 0;
        for (long seed = 1; seed <= 6; seed++) {
            ObjectNode req = chat("Answer in JSON.").put("temperature", seed % 2 == 0 ? 0.0 : 1.0).put("seed", seed)
                    .put("max_tokens", 300);
            req.putObject("response_format").put("type", "json_object");
            HttpResponse<String> r = post("/v1/chat/completions", req);
            assertEquals(200, r.statusCode(), r.body());
            JsonNode choice = JSON.readTree(r.body()).path("choices").get(0);
            if (!choice.path("finish_reason").asText().equals("stop")) continue;
            stopped++;
            assertTrue(JSON.readTree(choice.path("message").path("content").asText()).isObject());
        }
        assertTrue(stopped >= 1, "no json_object answer finished within 300 tokens");
    }

    @Test
    void streamedSchemaOutputValidates() throws Exception {
        ObjectNode req = chat("Describe a person.").put("temperature", 1.0).put("seed", 9).put("max_tokens", 200)
                .put("stream", true);
        req.putObject("response_format").put("type", "json_schema").putObject("json_schema").put("name", "p")
                .set("schema", JSON.readTree(PERSON));
        HttpResponse<String> r = post("/v1/chat/completions", req);
        assertEquals(200, r.statusCode());
        StringBuilder text = new StringBuilder();
        String finish = null;
        for (String line : r.body().split("\n")) {
            if (!line.startsWith("data: {")) continue;
            JsonNode c = JSON.readTree(line.substring(6)).path("choices");
            if (c.isEmpty()) continue;
            text.append(c.get(0).path("delta").path("content").asText(""));
            if (!c.get(0).path("finish_reason").isNull()) finish = c.get(0).path("finish_reason").asText();
        }
        assertEquals("stop", finish, text.toString());
        assertTrue(SCHEMAS.getSchema(PERSON).validate(JSON.readTree(text.toString())).isEmpty(), text.toString());
    }

    @Test
    void unsupportedSchemaKeywordsAndBadValuesAre400s() throws Exception {
        ObjectNode req = chat("x");
        req.putObject("response_format").put("type", "json_schema").putObject("json_schema").put("name", "p")
                .set("schema", JSON.readTree("{\"type\":\"string\",\"pattern\":\"^a$\"}"));
        HttpResponse<String> r = post("/v1/chat/completions", req);
        assertEquals(400, r.statusCode());
        JsonNode error = JSON.readTree(r.body()).path("error");
        assertEquals("response_format.json_schema.schema", error.path("param").asText());
        assertTrue(error.path("message").asText().contains("'pattern'"), error.toString());

        ObjectNode bias = chat("x");
        bias.putObject("logit_bias").put("5", 101);
        r = post("/v1/chat/completions", bias);
        assertEquals(400, r.statusCode());
        assertEquals("logit_bias", JSON.readTree(r.body()).path("error").path("param").asText());
        ObjectNode cmpl = JSON.createObjectNode().put("model", MODEL).put("prompt", "hi");
        cmpl.putObject("logit_bias").put("abc", 1);
        r = post("/v1/completions", cmpl);
        assertEquals(400, r.statusCode());
        assertEquals("logit_bias", JSON.readTree(r.body()).path("error").path("param").asText());

        ObjectNode choice = chat("x");
        choice.put("tool_choice", "required");
        assertEquals(400, post("/v1/chat/completions", choice).statusCode(), "tool_choice without tools");
    }

    @Test
    void logitBiasSteersGreedyOutputAndLogprobsShowTokenIds() throws Exception {
        int target = 300; // an ordinary piece of the fixture vocabulary
        ObjectNode req = chat("Hi").put("temperature", 0).put("max_tokens", 4).put("ignore_eos", true)
                .put("logprobs", true).put("top_logprobs", 2).put("user", "tester-1");
        req.putObject("logit_bias").put(String.valueOf(target), 100);
        HttpResponse<String> r = post("/v1/chat/completions", req);
        assertEquals(200, r.statusCode(), r.body());
        JsonNode content = JSON.readTree(r.body()).path("choices").get(0).path("logprobs").path("content");
        assertEquals(4, content.size());
        for (JsonNode entry : content) {
            assertEquals("token_id:" + target, entry.path("token").asText(), "bias 100 wins every step");
            assertTrue(entry.path("top_logprobs").get(0).path("token").asText().startsWith("token_id:"));
        }
        ObjectNode cmpl = JSON.createObjectNode().put("model", MODEL).put("prompt", "hi").put("max_tokens", 2)
                .put("temperature", 0).put("logprobs", 1).put("ignore_eos", true);
        cmpl.putObject("logit_bias").put(String.valueOf(target), 100);
        JsonNode tokens = JSON.readTree(post("/v1/completions", cmpl).body()).path("choices").get(0)
                .path("logprobs").path("tokens");
        assertEquals("token_id:" + target, tokens.get(0).asText());
    }

    @Test
    void namedToolCallThroughTheSdkValidatesAgainstItsParameters() throws Exception {
        OpenAIClient client = OpenAIOkHttpClient.builder().baseUrl(base + "/v1").apiKey("none").build();
        Map<String, JsonValue> params = JSON.convertValue(JSON.readTree(WEATHER), new com.fasterxml.jackson.core.type.TypeReference<>() {
        });
        FunctionParameters.Builder fp = FunctionParameters.builder();
        params.forEach(fp::putAdditionalProperty);
        for (long seed = 1; seed <= 3; seed++) {
            ChatCompletion c = client.chat().completions().create(ChatCompletionCreateParams.builder()
                    .model(MODEL).addUserMessage("Weather in Paris?").seed(seed).temperature(1.0).maxCompletionTokens(120)
                    .addTool(ChatCompletionFunctionTool.builder().function(FunctionDefinition.builder()
                            .name("get_weather").parameters(fp.build()).build()).build())
                    .toolChoice(ChatCompletionToolChoiceOption.ofNamedToolChoice(ChatCompletionNamedToolChoice.builder()
                            .function(ChatCompletionNamedToolChoice.Function.builder().name("get_weather").build())
                            .build()))
                    .build());
            var choice = c.choices().getFirst();
            assertEquals(ChatCompletion.Choice.FinishReason.TOOL_CALLS, choice.finishReason());
            assertTrue(choice.message().content().isEmpty(), "content is null with tool calls");
            ChatCompletionMessageToolCall call = choice.message().toolCalls().orElseThrow().getFirst();
            var fn = call.asFunction();
            assertTrue(fn.id().startsWith("call_"));
            assertEquals("get_weather", fn.function().name());
            JsonNode args = JSON.readTree(fn.function().arguments());
            assertTrue(SCHEMAS.getSchema(WEATHER).validate(args).isEmpty(), args.toString());
        }
    }

    @Test
    void requiredToolChoiceStreamsOneCallWithNameThenArguments() throws Exception {
        ObjectNode req = chat("Weather?").put("temperature", 1.0).put("seed", 4).put("max_tokens", 150)
                .put("stream", true).put("tool_choice", "required");
        var tools = req.putArray("tools");
        for (String name : List.of("get_weather", "get_time")) {
            ObjectNode fn = tools.addObject().put("type", "function").putObject("function").put("name", name);
            fn.set("parameters", JSON.readTree(WEATHER));
        }
        HttpResponse<String> r = post("/v1/chat/completions", req);
        assertEquals(200, r.statusCode(), r.body());
        String name = null;
        StringBuilder args = new StringBuilder();
        String finish = null;
        for (String line : r.body().split("\n")) {
            if (!line.startsWith("data: {")) continue;
            JsonNode c = JSON.readTree(line.substring(6)).path("choices");
            if (c.isEmpty()) continue;
            JsonNode delta = c.get(0).path("delta");
            assertTrue(delta.path("content").isMissingNode(), "no content deltas in a forced call: " + line);
            for (JsonNode call : delta.path("tool_calls")) {
                assertEquals(0, call.path("index").asInt());
                if (call.has("id")) {
                    assertNull(name, "one head");
                    name = call.path("function").path("name").asText();
                }
                args.append(call.path("function").path("arguments").asText(""));
            }
            if (!c.get(0).path("finish_reason").isNull()) finish = c.get(0).path("finish_reason").asText();
        }
        assertEquals("tool_calls", finish, r.body());
        assertTrue(List.of("get_weather", "get_time").contains(name), String.valueOf(name));
        assertTrue(SCHEMAS.getSchema(WEATHER).validate(JSON.readTree(args.toString())).isEmpty(), args.toString());
    }
}
