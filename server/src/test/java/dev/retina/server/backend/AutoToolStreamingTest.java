package dev.retina.server.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.http.StreamResponse;
import com.openai.helpers.ChatCompletionAccumulator;
import com.openai.models.FunctionDefinition;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.chat.completions.ChatCompletionFunctionTool;
import com.openai.models.chat.completions.ChatCompletionMessageToolCall;
import dev.retina.engine.EngineRequest;
import dev.retina.engine.FinishReason;
import dev.retina.engine.OutputSink;
import dev.retina.engine.RequestOutput;
import dev.retina.server.BackendLoader;
import dev.retina.server.RetinaServer;
import dev.retina.server.config.ServerConfig;
import dev.retina.server.input.InputProcessor;
import dev.retina.server.input.InputProcessorTest;
import dev.retina.server.input.PromptLimits;
import dev.retina.templates.ChatTemplate;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Streamed tool_choice "auto" over a socket with a scripted engine: each scripted piece is one generated token, so
 * the tag boundaries fall exactly where the test puts them. Content must never show a tag (or part of one) that
 * became a call; calls arrive as delta.tool_calls when their block closes; finish_reason is tool_calls.
 */
class AutoToolStreamingTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final int EOS = 2;
    static final String CALL_PARIS = "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}";

    /** Piece text by token id; ids from 10 up, EOS decodes to nothing. */
    static final List<String> vocab = new CopyOnWriteArrayList<>();
    static volatile int[] script = new int[0];
    static RetinaServer server;
    static String base;

    static void script(String... pieces) {
        int[] ids = new int[pieces.length + 1];
        for (int i = 0; i < pieces.length; i++) {
            vocab.add(pieces[i]);
            ids[i] = 10 + vocab.size() - 1;
        }
        ids[pieces.length] = EOS;
        script = ids;
    }

    static final class ScriptedEngine implements EngineClient {
        @Override
        public void addRequest(EngineRequest request, OutputSink sink) {
            int[] ids = script;
            int numPrompt = request.promptTokenIds().length;
            for (int i = 0; i < ids.length; i++) {
                FinishReason reason = ids[i] == EOS ? FinishReason.STOP
                        : i + 1 == request.params().maxTokens() ? FinishReason.LENGTH : null;
                sink.accept(new RequestOutput(request.requestId(), 0, new int[] {ids[i]}, null, reason, numPrompt,
                        i + 1, 0, null));
                if (reason != null) return;
            }
        }

        @Override
        public void abort(String requestId) {
        }
    }

    static final OutputTokenizer PIECES = new OutputTokenizer() {
        @Override
        public StreamDecoder newStreamDecoder(boolean skipSpecialTokens) {
            return new StreamDecoder() {
                @Override
                public String append(int tokenId) {
                    return tokenText(tokenId);
                }

                @Override
                public String flush() {
                    return "";
                }
            };
        }

        @Override
        public String tokenText(int tokenId) {
            return tokenId < 10 ? "" : vocab.get(tokenId - 10);
        }

        @Override
        public byte[] tokenBytes(int tokenId) {
            return tokenText(tokenId).getBytes(java.nio.charset.StandardCharsets.UTF_8);
        }
    };

    @BeforeAll
    static void boot() throws Exception {
        InputProcessorTest.WordTokenizer prompts = new InputProcessorTest.WordTokenizer();
        InputProcessor inputs = new InputProcessor(ChatTemplate.builtin("llava_tools"), prompts, null,
                new PromptLimits(99, 5, 1, 4096), Runnable::run);
        BackendLoader loader = c -> new BackendLoader.LoadedModel(new EngineChatBackend(inputs, new ScriptedEngine(),
                prompts, PIECES, Runnable::run, new EngineChatBackend.TextLimits(4096, 99)), "/models/scripted", 4096);
        server = RetinaServer.start(ServerConfig.defaults("scripted"), loader);
        base = "http://127.0.0.1:" + server.port();
    }

    @AfterAll
    static void stop() {
        if (server != null) server.close();
    }

    /** A streamed chat with one tool (get_weather) and tool_choice auto; the events' JSON, in order. */
    static List<JsonNode> stream(Integer maxTokens) throws Exception {
        ObjectNode req = JSON.createObjectNode().put("model", "scripted").put("stream", true);
        if (maxTokens != null) req.put("max_tokens", maxTokens);
        req.putArray("messages").addObject().put("role", "user").put("content", "Weather in Paris?");
        req.putArray("tools").addObject().put("type", "function").putObject("function").put("name", "get_weather")
                .putObject("parameters").put("type", "object");
        HttpResponse<String> r = HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(base
                        + "/v1/chat/completions")).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(JSON.writeValueAsString(req))).build(),
                HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode(), r.body());
        List<JsonNode> events = new ArrayList<>();
        for (String line : r.body().split("\n"))
            if (line.startsWith("data: {")) events.add(JSON.readTree(line.substring(6)).path("choices").get(0));
        return events;
    }

    record Streamed(String content, List<JsonNode> calls, String finish, List<String> contentDeltas) {
    }

    static Streamed collect(List<JsonNode> events) {
        StringBuilder content = new StringBuilder();
        List<JsonNode> calls = new ArrayList<>();
        List<String> deltas = new ArrayList<>();
        String finish = null;
        for (JsonNode e : events) {
            JsonNode delta = e.path("delta");
            if (delta.path("content").isTextual() && !delta.path("content").asText().isEmpty()) {
                content.append(delta.path("content").asText());
                deltas.add(delta.path("content").asText());
            }
            delta.path("tool_calls").forEach(calls::add);
            if (!e.path("finish_reason").isNull() && !e.path("finish_reason").isMissingNode())
                finish = e.path("finish_reason").asText();
        }
        return new Streamed(content.toString(), calls, finish, deltas);
    }

    @Test
    void textBeforeACallStreamsAndTagsSplitAcrossTokensNeverLeak() throws Exception {
        script("Let me ", "check.", " <", "tool", "_ca", "ll>", "{\"name\": \"get_", "weather\", \"arguments\": ",
                "{\"city\": \"Paris\"}}", "</tool", "_call>", "\n", "<tool_call>",
                "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}", "</tool_call>");
        Streamed s = collect(stream(null));
        assertEquals("Let me check. ", s.content());
        for (String d : s.contentDeltas()) assertFalse(d.contains("<"), "a tag leaked into content: " + s.contentDeltas());
        assertEquals(List.of("Let me ", "check."), s.contentDeltas().subList(0, 2), "text before the call is not held");
        assertEquals(2, s.calls().size(), s.calls().toString());
        for (int i = 0; i < 2; i++) {
            JsonNode call = s.calls().get(i);
            assertEquals(i, call.path("index").asInt());
            assertTrue(call.path("id").asText().startsWith("call_"));
            assertEquals("function", call.path("type").asText());
            assertEquals("get_weather", call.path("function").path("name").asText());
        }
        assertEquals("{\"city\":\"Paris\"}", s.calls().get(0).path("function").path("arguments").asText());
        assertEquals("{\"city\":\"Rome\"}", s.calls().get(1).path("function").path("arguments").asText());
        assertEquals("tool_calls", s.finish());
    }

    @Test
    void aTagPrefixThatIsNotATagIsContentAndTheFinishIsStop() throws Exception {
        script("a <", "tool", "box b", " <tool_c");
        Streamed s = collect(stream(null));
        assertEquals("a <toolbox b <tool_c", s.content(), "held prefixes come back as content");
        assertTrue(s.calls().isEmpty());
        assertEquals("stop", s.finish());
    }

    @Test
    void blocksThatAreNotCallsStayContent() throws Exception {
        script("x", "<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>", "y",
                "<tool_call>not json</tool_call>");
        Streamed s = collect(stream(null));
        assertEquals("x<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>y<tool_call>not json</tool_call>",
                s.content());
        assertTrue(s.calls().isEmpty());
        assertEquals("stop", s.finish());
    }

    @Test
    void aBlockCutByMaxTokensIsContentWithFinishLength() throws Exception {
        script("x", "<tool_call>", "{\"name\": \"get_weather\"", ", \"arguments\"");
        Streamed s = collect(stream(3));
        assertEquals("x<tool_call>{\"name\": \"get_weather\"", s.content());
        assertTrue(s.calls().isEmpty());
        assertEquals("length", s.finish());
    }

    @Test
    void sdkAccumulatesTheStreamedCall() {
        script("Checking. ", "<tool_", "call>", CALL_PARIS, "</tool_call>");
        OpenAIClient client = OpenAIOkHttpClient.builder().baseUrl(base + "/v1").apiKey("none").maxRetries(0).build();
        ChatCompletionAccumulator acc = ChatCompletionAccumulator.create();
        try (StreamResponse<ChatCompletionChunk> chunks = client.chat().completions().createStreaming(
                ChatCompletionCreateParams.builder().model("scripted").addUserMessage("Weather in Paris?")
                        .addTool(ChatCompletionFunctionTool.builder().function(FunctionDefinition.builder()
                                .name("get_weather").build()).build())
                        .build())) {
            chunks.stream().forEach(acc::accumulate);
        }
        ChatCompletion.Choice choice = acc.chatCompletion().choices().getFirst();
        assertEquals(ChatCompletion.Choice.FinishReason.TOOL_CALLS, choice.finishReason());
        assertEquals("Checking. ", choice.message().content().orElseThrow());
        List<ChatCompletionMessageToolCall> calls = choice.message().toolCalls().orElseThrow();
        assertEquals(1, calls.size());
        assertEquals("get_weather", calls.getFirst().asFunction().function().name());
        assertEquals("{\"city\":\"Paris\"}", calls.getFirst().asFunction().function().arguments());
    }
}
