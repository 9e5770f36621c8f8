package dev.retina.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.JsonValue;
import com.openai.errors.BadRequestException;
import com.openai.models.FunctionDefinition;
import com.openai.models.FunctionParameters;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.chat.completions.ChatCompletionFunctionTool;
import com.openai.models.chat.completions.ChatCompletionMessageFunctionToolCall;
import com.openai.models.chat.completions.ChatCompletionNamedToolChoice;
import com.openai.models.chat.completions.ChatCompletionToolChoiceOption;
import com.openai.models.chat.completions.ChatCompletionToolMessageParam;
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
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A two-turn tool conversation through the OpenAI Java SDK against the real engine (llava15-336-mha fixture, served
 * with the tools-aware template): a named call, then the call and its result sent back, then an answer.
 */
class ToolConversationE2ETest {
    static final Path FIXTURES = Path.of(System.getProperty("retina.fixtures", "src/test/resources/fixtures"));
    static final String MODEL = "tiny-llava";
    static final ObjectMapper JSON = new ObjectMapper();
    static final String WEATHER = """
            {"type":"object","properties":{"city":{"type":"string","maxLength":10}},"required":["city"],
             "additionalProperties":false}""";

    static RetinaServer server;
    static OpenAIClient client;

    @BeforeAll
    static void boot() throws Exception {
        Path modelDir = FIXTURES.resolve("models").resolve("llava15-336-mha");
        assumeTrue(Files.isRegularFile(modelDir.resolve("config.json")), "fixtures not present");
        Path template = Files.createTempFile("template_llava_tools", ".jinja");
        try (InputStream in = dev.retina.templates.ChatTemplate.class.getResourceAsStream("template_llava_tools.jinja")) {
            Files.write(template, in.readAllBytes());
        }
        ServerConfig config = new ServerConfig(modelDir.toString(), MODEL, "127.0.0.1", 0, template, Dtype.AUTO,
                Device.CPU, null, 0L, LoadFormat.AUTO, VlmConfig.defaults(), Duration.ofSeconds(5), 20 << 20,
                20L << 20, MediaConfig.defaults());
        server = RetinaServer.start(config, ServingOptions.defaults(), new LlavaBackendLoader());
        client = OpenAIOkHttpClient.builder().baseUrl("http://127.0.0.1:" + server.port() + "/v1").apiKey("none")
                .maxRetries(0).timeout(Duration.ofSeconds(120)).build();
    }

    @AfterAll
    static void stop() {
        if (server != null) server.close();
    }

    static ChatCompletionFunctionTool weatherTool() throws Exception {
        Map<String, JsonValue> params = JSON.convertValue(JSON.readTree(WEATHER),
                new com.fasterxml.jackson.core.type.TypeReference<>() {
                });
        FunctionParameters.Builder fp = FunctionParameters.builder();
        params.forEach(fp::putAdditionalProperty);
        return ChatCompletionFunctionTool.builder().function(FunctionDefinition.builder().name("get_weather")
                .parameters(fp.build()).build()).build();
    }

    @Test
    void namedCallThenItsResultThenAnAnswer() throws Exception {
        ChatCompletionCreateParams first = ChatCompletionCreateParams.builder().model(MODEL)
                .addUserMessage("What is the weather in Paris?").addTool(weatherTool()).temperature(1.0).seed(3L)
                .maxCompletionTokens(60)
                .toolChoice(ChatCompletionToolChoiceOption.ofNamedToolChoice(ChatCompletionNamedToolChoice.builder()
                        .function(ChatCompletionNamedToolChoice.Function.builder().name("get_weather").build())
                        .build()))
                .build();
        ChatCompletion called = client.chat().completions().create(first);
        ChatCompletion.Choice callChoice = called.choices().getFirst();
        assertEquals(ChatCompletion.Choice.FinishReason.TOOL_CALLS, callChoice.finishReason());
        ChatCompletionMessageFunctionToolCall call = callChoice.message().toolCalls().orElseThrow().getFirst().asFunction();
        assertTrue(JSON.readTree(call.function().arguments()).path("city").isTextual(), call.function().arguments());

        // Turn two: the assistant's call as the SDK hands it back (content null), then the tool's result.
        ChatCompletionCreateParams second = ChatCompletionCreateParams.builder().model(MODEL)
                .addUserMessage("What is the weather in Paris?")
                .addMessage(callChoice.message())
                .addMessage(ChatCompletionToolMessageParam.builder().toolCallId(call.id())
                        .content("21 degrees and sunny").build())
                .addTool(weatherTool()).temperature(0.0).maxCompletionTokens(6)
                .build();
        ChatCompletion answer = client.chat().completions().create(second);
        ChatCompletion.Choice choice = answer.choices().getFirst();
        assertTrue(List.of(ChatCompletion.Choice.FinishReason.STOP, ChatCompletion.Choice.FinishReason.LENGTH)
                .contains(choice.finishReason()), choice.finishReason().toString());
        assertTrue(choice.message().content().isPresent(), "an answer, not a call: " + choice.message());
        // The history was rendered, not dropped: the second prompt holds the first, the call and the result.
        long firstPrompt = called.usage().orElseThrow().promptTokens();
        long callTokens = called.usage().orElseThrow().completionTokens();
        long secondPrompt = answer.usage().orElseThrow().promptTokens();
        assertTrue(secondPrompt > firstPrompt + callTokens, firstPrompt + " + " + callTokens + " vs " + secondPrompt);
    }

    @Test
    void aToolResultWithoutItsCallIdIsABadRequestNamingIt() {
        // The SDK's builder demands tool_call_id, so the malformed message goes in as raw JSON.
        BadRequestException e = org.junit.jupiter.api.Assertions.assertThrows(BadRequestException.class,
                () -> client.chat().completions().create(ChatCompletionCreateParams.builder().model(MODEL)
                        .addUserMessage("hi").messages(List.of())
                        .putAdditionalBodyProperty("messages", JsonValue.from(List.of(
                                Map.of("role", "user", "content", "hi"),
                                Map.of("role", "tool", "content", "21 degrees"))))
                        .build()));
        assertEquals("messages[1].tool_call_id", e.param().orElse(null));
    }
}
