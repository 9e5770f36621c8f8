package dev.retina.server.backend;

import dev.retina.engine.FinishReason;
import dev.retina.server.ChatResult;
import dev.retina.server.input.InputProcessor;
import dev.retina.server.input.PromptLimits;
import dev.retina.server.protocol.ApiException;
import dev.retina.server.protocol.ChatCompletionRequest;
import dev.retina.server.protocol.ChatMessage;
import dev.retina.server.protocol.MessageContent;
import dev.retina.templates.ChatTemplate;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/** The backend over the interim serial engine with a scripted generator and a word tokenizer. */
class EngineChatBackendTest {
    final dev.retina.server.input.InputProcessorTest.WordTokenizer tokenizer =
            new dev.retina.server.input.InputProcessorTest.WordTokenizer();

    EngineChatBackend backend(int[] script) {
        // Pre-register words so the scripted ids decode: 13 = "the", 14 = "cat", 15 = "sat", 16 = "STOP", 17 = "mat"
        tokenizer.encodePrompt("the cat sat STOP mat");
        InputProcessor inputs = new InputProcessor(ChatTemplate.fromString(
                dev.retina.server.input.InputProcessorTest.STRING_TEMPLATE), tokenizer, null,
                new PromptLimits(99, 5, 1, 100), Runnable::run);
        SerialGreedyEngine engine = new SerialGreedyEngine((ids, pixels, numImages, maxNew) ->
                java.util.Arrays.copyOf(script, Math.min(maxNew, script.length)));
        return new EngineChatBackend(inputs, engine, tokenizer, Runnable::run);
    }

    static ChatCompletionRequest req(Double temperature, Integer maxTokens, List<String> stop) {
        return new ChatCompletionRequest("m", List.of(new ChatMessage("user", new MessageContent.Text("hi"), null)),
                temperature, null, maxTokens, null, stop, null, null, null, null, null, null, null, null, null, null,
                null, null, null, null, null);
    }

    @Test
    void stopsAtEosAndSkipsIt() throws Exception {
        ChatResult r = backend(new int[]{13, 14, 2, 15}).complete(req(0.0, 10, null)).get(5, TimeUnit.SECONDS);
        assertEquals("the cat", r.text());
        assertEquals(FinishReason.STOP, r.finishReason());
        assertEquals(3, r.completionTokens(), "EOS counts as generated");
        assertTrue(r.promptTokens() > 0);
    }

    @Test
    void maxTokensGivesLength() throws Exception {
        ChatResult r = backend(new int[]{13, 14, 15, 17}).complete(req(0.0, 2, null)).get(5, TimeUnit.SECONDS);
        assertEquals("the cat", r.text());
        assertEquals(FinishReason.LENGTH, r.finishReason());
        assertEquals(2, r.completionTokens());
    }

    @Test
    void stopStringIsCutAndNotReturned() throws Exception {
        ChatResult r = backend(new int[]{13, 14, 16, 17, 2}).complete(req(0.0, 10, List.of("STOP")))
                .get(5, TimeUnit.SECONDS);
        assertEquals("the cat ", r.text());
        assertEquals(FinishReason.STOP, r.finishReason());
        assertEquals(3, r.completionTokens(), "tokens through the stop string");
    }

    @Test
    void samplingIsRefusedByTheGreedyEngine() {
        var e = assertThrows(ExecutionException.class,
                () -> backend(new int[]{10}).complete(req(0.7, 10, null)).get(5, TimeUnit.SECONDS));
        ApiException api = assertInstanceOf(ApiException.class, e.getCause());
        assertEquals("temperature", api.toBody().error().param());
    }

    @Test
    void stopCutPicksTheEarliestMatch() {
        assertEquals("ab", StopCut.apply("abXYcdZ", List.of("Z", "XY")).text());
        assertNull(StopCut.apply("abc", List.of("d")));
    }
}
