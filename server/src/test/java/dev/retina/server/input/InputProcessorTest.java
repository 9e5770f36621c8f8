package dev.retina.server.input;

import dev.retina.engine.EngineRequest;
import dev.retina.engine.ImageInput;
import dev.retina.server.protocol.ApiException;
import dev.retina.server.protocol.ChatCompletionRequest;
import dev.retina.server.protocol.ChatMessage;
import dev.retina.server.protocol.ContentPart;
import dev.retina.server.protocol.ImageUrlPart;
import dev.retina.server.protocol.MessageContent;
import dev.retina.server.protocol.TextPart;
import dev.retina.templates.ChatTemplate;
import dev.retina.templates.ContentFormat;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

public class InputProcessorTest {
    static final int IMAGE_ID = 99;
    static final int NUM_IMAGE_TOKENS = 5;

    /** Whitespace tokenizer: BOS 1, EOS 2, "<image>" 99, each other word its own id from 10 up. */
    public static final class WordTokenizer implements PromptTokenizer {
        final Map<String, Integer> ids = new HashMap<>(Map.of("<s>", 1, "</s>", 2, "<image>", IMAGE_ID));
        final List<String> rendered = new ArrayList<>();

        @Override
        public synchronized int[] encodePrompt(String text) {
            rendered.add(text);
            List<Integer> out = new ArrayList<>(List.of(1));
            for (String w : text.split("\\s+|(?=<image>)|(?<=<image>)")) if (!w.isEmpty()) out.add(ids.computeIfAbsent(w, k -> 10 + ids.size()));
            return out.stream().mapToInt(Integer::intValue).toArray();
        }

        @Override
        public synchronized String decode(int[] tokenIds, boolean skipSpecial) {
            List<String> words = new ArrayList<>();
            for (int id : tokenIds)
                for (var e : ids.entrySet())
                    if (e.getValue() == id && !(skipSpecial && (id == 1 || id == 2))) words.add(e.getKey());
            return String.join(" ", words);
        }

        @Override
        public String bosToken() {
            return "<s>";
        }

        @Override
        public String eosToken() {
            return "</s>";
        }

        @Override
        public List<Integer> eosTokenIds() {
            return List.of(2);
        }
    }

    public static final String STRING_TEMPLATE = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
            + "{% if add_generation_prompt %}assistant:{% endif %}";

    final WordTokenizer tokenizer = new WordTokenizer();
    final List<String> loadedUrls = new ArrayList<>();
    final ImageLoader images = (url, detail, param) -> {
        loadedUrls.add(url);
        if (url.equals("data:broken")) throw new ApiException(422, ApiException.INVALID_REQUEST, "not an image", param, "image_not_an_image");
        return ImageInput.ofPixels(new float[3 * 2 * 2], 2, 2, NUM_IMAGE_TOKENS);
    };

    InputProcessor processor(String template, int maxImages, int maxModelLen) {
        return new InputProcessor(ChatTemplate.fromString(template), tokenizer, images,
                new PromptLimits(IMAGE_ID, NUM_IMAGE_TOKENS, maxImages, maxModelLen), Runnable::run);
    }

    static ChatCompletionRequest request(ChatMessage... messages) {
        return ChatCompletionRequest.of("m", List.of(messages));
    }

    static ChatMessage user(ContentPart... parts) {
        return new ChatMessage("user", new MessageContent.Parts(List.of(parts)), null);
    }

    static ImageUrlPart image(String url) {
        return new ImageUrlPart(new ImageUrlPart.ImageUrl(url, null));
    }

    @Test
    void stringTemplatePutsEachImageOnItsOwnLineBeforeTheTextAndExpandsIt() {
        PreparedRequest p = processor(STRING_TEMPLATE, 2, 100).prepare(
                request(user(new TextPart("what is"), image("data:a"), new TextPart("this?"))), "r1");
        // The tokenizer sees the rendered text with the placeholder already expanded, as LlavaProcessor tokenizes it.
        assertEquals("user: " + "<image>".repeat(NUM_IMAGE_TOKENS) + "\nwhat is\nthis?\nassistant:",
                tokenizer.rendered.getFirst());
        EngineRequest e = p.engineRequest();
        int[] ids = e.promptTokenIds();
        assertEquals(1, ids[0], "BOS first");
        assertEquals(NUM_IMAGE_TOKENS, java.util.Arrays.stream(ids).filter(id -> id == IMAGE_ID).count());
        for (int i = 2; i < 2 + NUM_IMAGE_TOKENS; i++) assertEquals(IMAGE_ID, ids[i], "image tokens consecutive");
        assertEquals(1, e.images().size());
        assertEquals(List.of(2), e.eosTokenIds());
        // No max_tokens: the rest of the context.
        assertEquals(100 - ids.length, e.params().maxTokens());
        assertEquals(1.0f, e.params().temperature(), "OpenAI's default temperature");
        assertEquals(List.of("data:a"), loadedUrls);
    }

    @Test
    void openAiTemplateGetsPartsInOrder() {
        InputProcessor ip = processor(STRING_TEMPLATE, 2, 100);
        var messages = ip.toTemplateMessages(List.of(
                new ChatMessage("system", new MessageContent.Text("be brief"), null),
                user(new TextPart("a"), image("data:x"), new TextPart("b"))), ContentFormat.OPENAI);
        assertEquals(List.of(Map.of("type", "text", "text", "be brief")), messages.get(0).get("content"));
        assertEquals(List.of(Map.of("type", "text", "text", "a"), Map.of("type", "image"),
                Map.of("type", "text", "text", "b")), messages.get(1).get("content"));
    }

    @Test
    void placeholderCountMustMatchImages() {
        // The user typed the placeholder without sending an image.
        var e = assertThrows(ApiException.class, () -> processor(STRING_TEMPLATE, 2, 100).prepare(
                request(new ChatMessage("user", new MessageContent.Text("look <image>"), null)), "r"));
        assertEquals(400, e.status());
        assertEquals("messages", e.toBody().error().param());
    }

    @Test
    void tooManyImagesAndTooLongPromptsAre400() {
        var e = assertThrows(ApiException.class, () -> processor(STRING_TEMPLATE, 1, 100).prepare(
                request(user(image("data:a"), image("data:b"), new TextPart("x"))), "r"));
        assertEquals("messages[0].content[1].image_url", e.toBody().error().param());
        e = assertThrows(ApiException.class, () -> processor(STRING_TEMPLATE, 1, 8).prepare(
                request(user(image("data:a"), new TextPart("x"))), "r"));
        assertEquals(400, e.status());
        ChatCompletionRequest big = new ChatCompletionRequest("m", List.of(user(new TextPart("x"))), 0.0, null, 500,
                null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null);
        e = assertThrows(ApiException.class, () -> processor(STRING_TEMPLATE, 1, 100).prepare(big, "r"));
        assertEquals("max_tokens", e.toBody().error().param());
    }

    @Test
    void imageErrorsPassThrough() {
        var e = assertThrows(ApiException.class, () -> processor(STRING_TEMPLATE, 1, 100).prepare(
                request(user(image("data:broken"), new TextPart("x"))), "r"));
        assertEquals(422, e.status());
    }

    @Test
    void disabledImageProcessorRefusesImages() {
        InputProcessor ip = new InputProcessor(ChatTemplate.fromString(STRING_TEMPLATE), tokenizer, null,
                new PromptLimits(IMAGE_ID, NUM_IMAGE_TOKENS, 1, 100), Runnable::run);
        var e = assertThrows(ApiException.class, () -> ip.prepare(request(user(image("data:a"))), "r"));
        assertEquals(400, e.status());
        assertNotNull(ip.prepare(request(user(new TextPart("only text"))), "r"));
    }

    @Test
    void samplingParamsFromRequest() {
        ChatCompletionRequest req = new ChatCompletionRequest("m", List.of(user(new TextPart("x"))), 0.0, 0.5, null,
                7, List.of("STOP"), null, null, 42L, null, null, null, null, null, null, null, null, null, null, null, null);
        PreparedRequest p = processor(STRING_TEMPLATE, 1, 100).prepare(req, "r");
        assertTrue(p.engineRequest().params().isGreedy());
        assertEquals(7, p.engineRequest().params().maxTokens());
        assertEquals(0.5f, p.engineRequest().params().topP());
        assertEquals(42L, p.engineRequest().params().seed());
        assertEquals(List.of("STOP"), p.stop());
        assertTrue(p.skipSpecialTokens());
    }

    @Test
    void imagesOfEveryTurnExpandToTheirOwnTokenCountsInPromptOrder() {
        // A NeXT-like loader: the token count depends on the image (here: on the URL).
        ImageLoader sized = (url, detail, param) -> ImageInput.ofPixels(new float[12], 2, 2,
                url.equals("data:big") ? 7 : detail == ImageDetail.LOW ? 2 : 3);
        InputProcessor ip = new InputProcessor(ChatTemplate.fromString(STRING_TEMPLATE), tokenizer, sized,
                new PromptLimits(IMAGE_ID, NUM_IMAGE_TOKENS, 4, 200), Runnable::run);
        PreparedRequest p = ip.prepare(request(
                user(image("data:big"), new TextPart("first")),
                new ChatMessage("assistant", new MessageContent.Text("ok"), null),
                user(new TextPart("and"), new ImageUrlPart(new ImageUrlPart.ImageUrl("data:small", "low")),
                        image("data:small"))), "r");
        List<Integer> counts = p.engineRequest().images().stream().map(ImageInput::numImageTokens).toList();
        assertEquals(List.of(7, 2, 3), counts, "prompt order across turns, detail passed through");
        // The runs of image tokens in the prompt have the same lengths, in the same order.
        List<Integer> runs = new ArrayList<>();
        int run = 0;
        for (int id : p.engineRequest().promptTokenIds()) {
            if (id == IMAGE_ID) run++;
            else if (run > 0) {
                runs.add(run);
                run = 0;
            }
        }
        assertEquals(List.of(7, 2 + 3), runs, "the last turn's two placeholders sit on adjacent lines");
    }

    @Test
    void overTheImageCapIs400NamingTheFirstExtraImageAndNothingIsFetched() {
        var e = assertThrows(ApiException.class, () -> processor(STRING_TEMPLATE, 2, 100).prepare(request(
                user(image("data:a"), new TextPart("x")), user(image("data:b"), image("data:c"))), "r"));
        assertEquals(400, e.status());
        assertEquals("messages[1].content[1].image_url", e.toBody().error().param());
        assertTrue(e.getMessage().contains("--limit-mm-per-prompt image=2"), e.getMessage());
        assertEquals(List.of(), loadedUrls, "the count is checked before any fetch");
    }

    @Test
    void badDetailIs400OnTheDetailField() {
        var e = assertThrows(ApiException.class, () -> processor(STRING_TEMPLATE, 2, 100).prepare(request(
                user(new ImageUrlPart(new ImageUrlPart.ImageUrl("data:a", "ultra")))), "r"));
        assertEquals(400, e.status());
        assertEquals("messages[0].content[0].image_url.detail", e.toBody().error().param());
    }

    @Test
    void imagesOfOneRequestLoadInParallelAndTheFirstFailureInPromptOrderIsReported() throws Exception {
        int n = 3;
        java.util.concurrent.CountDownLatch allStarted = new java.util.concurrent.CountDownLatch(n);
        ImageLoader slow = (url, detail, param) -> {
            allStarted.countDown();
            try {
                // Each load waits until all have started: only parallel loading gets past this.
                if (!allStarted.await(5, java.util.concurrent.TimeUnit.SECONDS))
                    throw new AssertionError("images were not loaded in parallel");
            } catch (InterruptedException ex) {
                throw new AssertionError(ex);
            }
            if (url.startsWith("data:bad")) throw new ApiException(422, ApiException.INVALID_REQUEST, url, param, "x");
            return ImageInput.ofPixels(new float[12], 2, 2, NUM_IMAGE_TOKENS);
        };
        var pool = ImageLoadPool.create(4);
        try {
            InputProcessor ip = new InputProcessor(ChatTemplate.fromString(STRING_TEMPLATE), tokenizer, slow,
                    new PromptLimits(IMAGE_ID, NUM_IMAGE_TOKENS, 4, 200), Runnable::run, pool);
            assertEquals(3, ip.prepare(request(user(image("data:a"), image("data:b"), image("data:c"))), "r")
                    .engineRequest().images().size());
            java.util.concurrent.CountDownLatch again = new java.util.concurrent.CountDownLatch(n);
            ImageLoader failing = (url, detail, param) -> {
                again.countDown();
                try {
                    again.await(5, java.util.concurrent.TimeUnit.SECONDS);
                    if (url.equals("data:bad2")) Thread.sleep(50); // the later failure finishes first
                } catch (InterruptedException ex) {
                    throw new AssertionError(ex);
                }
                if (url.startsWith("data:bad")) throw new ApiException(422, ApiException.INVALID_REQUEST, url, param, "x");
                return ImageInput.ofPixels(new float[12], 2, 2, NUM_IMAGE_TOKENS);
            };
            InputProcessor ip2 = new InputProcessor(ChatTemplate.fromString(STRING_TEMPLATE), tokenizer, failing,
                    new PromptLimits(IMAGE_ID, NUM_IMAGE_TOKENS, 4, 200), Runnable::run, pool);
            var e = assertThrows(ApiException.class, () -> ip2.prepare(request(
                    user(image("data:ok"), image("data:bad2"), image("data:bad3"))), "r"));
            assertEquals("messages[0].content[1].image_url", e.toBody().error().param());
        } finally {
            pool.shutdownNow();
        }
    }
}
