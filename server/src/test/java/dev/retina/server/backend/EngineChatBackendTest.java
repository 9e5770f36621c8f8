package dev.retina.server.backend;

import dev.retina.engine.EngineRequest;
import dev.retina.engine.FinishReason;
import dev.retina.engine.OutputSink;
import dev.retina.engine.RequestOutput;
import dev.retina.server.CollectingListener;
import dev.retina.server.protocol.ApiException;
import dev.retina.server.GenerationResult;
import dev.retina.server.input.InputProcessor;
import dev.retina.server.input.InputProcessorTest;
import dev.retina.server.input.PromptLimits;
import dev.retina.server.protocol.ChatCompletionRequest;
import dev.retina.server.protocol.ChatMessage;
import dev.retina.server.protocol.MessageContent;
import dev.retina.templates.ChatTemplate;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/** The backend's output side over a scripted engine (one token per output) and a word tokenizer. */
class EngineChatBackendTest {
    final InputProcessorTest.WordTokenizer tokenizer = new InputProcessorTest.WordTokenizer();
    final Set<String> aborted = ConcurrentHashMap.newKeySet();

    /** Emits {@code script} one id per output, EOS (2) or stop ids end it, max_tokens caps it; honours abort. */
    final class ScriptedEngine implements EngineClient {
        final int[] script;

        ScriptedEngine(int[] script) {
            this.script = script;
        }

        @Override
        public void addRequest(EngineRequest request, OutputSink sink) {
            int numPrompt = request.promptTokenIds().length;
            for (int c = 0; c < request.params().n(); c++) {
                for (int i = 0; i < script.length; i++) {
                    if (aborted.contains(request.requestId())) return;
                    int id = script[i];
                    boolean eos = id == 2 || request.params().stopTokenIds().contains(id);
                    boolean length = i + 1 == request.params().maxTokens();
                    FinishReason reason = eos ? FinishReason.STOP : length ? FinishReason.LENGTH : null;
                    sink.accept(new RequestOutput(request.requestId(), c, new int[]{id}, null, reason, numPrompt,
                            i + 1, 0, null));
                    if (reason != null) break;
                }
            }
        }

        @Override
        public void abort(String requestId) {
            aborted.add(requestId);
        }
    }

    /** Decodes by re-decoding all ids and returning the new suffix (the word tokenizer has no incremental form). */
    final OutputTokenizer output = new OutputTokenizer() {
        @Override
        public StreamDecoder newStreamDecoder(boolean skip) {
            List<Integer> ids = new ArrayList<>();
            return new StreamDecoder() {
                String sent = "";

                @Override
                public String append(int tokenId) {
                    ids.add(tokenId);
                    String all = tokenizer.decode(ids.stream().mapToInt(Integer::intValue).toArray(), skip);
                    String delta = all.substring(sent.length());
                    sent = all;
                    return delta;
                }

                @Override
                public String flush() {
                    return "";
                }
            };
        }

        @Override
        public String tokenText(int tokenId) {
            return tokenizer.decode(new int[]{tokenId}, false);
        }

        @Override
        public byte[] tokenBytes(int tokenId) {
            return tokenText(tokenId).getBytes();
        }
    };

    EngineChatBackend backend(int[] script) {
        // Pre-register words so the scripted ids decode: 13 = "the", 14 = "cat", 15 = "sat", 16 = "STOP", 17 = "mat"
        tokenizer.encodePrompt("the cat sat STOP mat");
        InputProcessor inputs = new InputProcessor(ChatTemplate.fromString(InputProcessorTest.STRING_TEMPLATE),
                tokenizer, null, new PromptLimits(99, 5, 1, 100), Runnable::run);
        return new EngineChatBackend(inputs, new ScriptedEngine(script), tokenizer, output, Runnable::run,
                new EngineChatBackend.TextLimits(100, 99));
    }

    static ChatCompletionRequest req(Integer n, Integer maxTokens, List<String> stop) {
        return new ChatCompletionRequest("m", List.of(new ChatMessage("user", new MessageContent.Text("hi"), null)),
                0.0, null, maxTokens, null, stop, null, n, null, null, null, null, null, null, null, null,
                null, null, null, null, null);
    }

    GenerationResult run(EngineChatBackend backend, ChatCompletionRequest req) throws Exception {
        CollectingListener l = new CollectingListener();
        backend.chat(req, l);
        return l.result().get(5, TimeUnit.SECONDS);
    }

    @Test
    void stopsAtEosAndSkipsIt() throws Exception {
        GenerationResult r = run(backend(new int[]{13, 14, 2, 15}), req(null, 10, null));
        assertEquals("the cat", r.choices().getFirst().text().strip());
        assertEquals(FinishReason.STOP, r.choices().getFirst().finishReason());
        assertEquals(3, r.completionTokens(), "EOS counts as generated");
        assertTrue(r.promptTokens() > 0);
    }

    @Test
    void maxTokensGivesLength() throws Exception {
        GenerationResult r = run(backend(new int[]{13, 14, 15, 17}), req(null, 2, null));
        assertEquals("the cat", r.choices().getFirst().text());
        assertEquals(FinishReason.LENGTH, r.choices().getFirst().finishReason());
        assertEquals(2, r.completionTokens());
    }

    @Test
    void stopStringIsCutNotReturnedAndAbortsTheEngineRequest() throws Exception {
        GenerationResult r = run(backend(new int[]{13, 14, 16, 17, 2}), req(null, 10, List.of("STOP")));
        assertEquals("the cat ", r.choices().getFirst().text());
        assertEquals(FinishReason.STOP, r.choices().getFirst().finishReason());
        assertEquals(3, r.completionTokens(), "tokens through the stop string");
        assertEquals(1, aborted.size(), "the engine request was aborted to free its blocks");
    }

    @Test
    void stopStringSpanningTokensIsFound() throws Exception {
        GenerationResult r = run(backend(new int[]{13, 14, 15, 17, 2}), req(null, 10, List.of("cat sat")));
        assertEquals("the ", r.choices().getFirst().text());
        assertEquals(3, r.completionTokens());
    }

    @Test
    void nChoicesAreIndexed() throws Exception {
        GenerationResult r = run(backend(new int[]{13, 14, 2}), req(3, 10, null));
        assertEquals(List.of(0, 1, 2), r.choices().stream().map(GenerationResult.Choice::index).toList());
        assertEquals(9, r.completionTokens());
    }

    @Test
    void choiceDecoderHoldsBackOnlyWhatCouldStartAStop() {
        ChoiceDecoder d = new ChoiceDecoder(output, true, List.of("XYZ"));
        tokenizer.encodePrompt("a XY b");
        int[] ids = tokenizer.encodePrompt("a XY b");
        StringBuilder streamed = new StringBuilder();
        for (int id : Arrays.copyOfRange(ids, ids.length - 3, ids.length)) streamed.append(d.append(id));
        streamed.append(d.finish());
        assertEquals(tokenizer.decode(Arrays.copyOfRange(ids, ids.length - 3, ids.length), true), streamed.toString());
        assertFalse(d.stopped());
    }

    @Test
    void aDeadEngineMakesTheBackendUnhealthyAndRequestsGet503() throws Exception {
        java.util.concurrent.atomic.AtomicBoolean alive = new java.util.concurrent.atomic.AtomicBoolean(true);
        ScriptedEngine scripted = new ScriptedEngine(new int[]{13, 2});
        EngineClient engine = new EngineClient() {
            @Override
            public void addRequest(EngineRequest request, OutputSink sink) {
                if (!alive.get()) throw new dev.retina.engine.EngineStoppedException("the engine stopped: test");
                scripted.addRequest(request, sink);
            }

            @Override
            public void abort(String requestId) {
                scripted.abort(requestId);
            }

            @Override
            public boolean isAlive() {
                return alive.get();
            }
        };
        tokenizer.encodePrompt("the cat sat STOP mat");
        InputProcessor inputs = new InputProcessor(ChatTemplate.fromString(InputProcessorTest.STRING_TEMPLATE),
                tokenizer, null, new PromptLimits(99, 5, 1, 100), Runnable::run);
        EngineChatBackend backend = new EngineChatBackend(inputs, engine, tokenizer, output, Runnable::run,
                new EngineChatBackend.TextLimits(100, 99));
        assertTrue(backend.isHealthy());
        assertEquals("the", run(backend, req(null, 10, null)).choices().getFirst().text().strip());
        alive.set(false);
        assertFalse(backend.isHealthy());
        CollectingListener l = new CollectingListener();
        backend.chat(req(null, 10, null), l);
        java.util.concurrent.ExecutionException e = assertThrows(java.util.concurrent.ExecutionException.class,
                () -> l.result().get(5, TimeUnit.SECONDS));
        assertTrue(e.getCause() instanceof ApiException a && a.status() == 503, String.valueOf(e.getCause()));
    }
}
