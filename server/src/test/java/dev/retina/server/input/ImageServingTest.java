package dev.retina.server.input;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.engine.EncoderCacheStats;
import dev.retina.engine.ImageInput;
import dev.retina.server.config.MediaConfig;
import dev.retina.server.config.ServerConfig;
import dev.retina.server.protocol.ChatCompletionRequest;
import dev.retina.server.protocol.ChatMessage;
import dev.retina.server.protocol.ContentPart;
import dev.retina.server.protocol.ImageUrlPart;
import dev.retina.server.protocol.MessageContent;
import dev.retina.server.protocol.TextPart;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The image serving path end to end without HTTP (file: URLs under --allowed-local-media-path → ImagePipeline →
 * InputProcessor → LlmEngine with LlavaModelRunner): prompt ids and greedy tokens equal Hugging Face's for LLaVA-NeXT
 * at several aspect ratios and for two images in one LLaVA-1.5 prompt; the encoder cache skips the vision tower for
 * a repeated image.
 */
class ImageServingTest {
    static final ObjectMapper JSON = new ObjectMapper();

    static ServerConfig withImages(String modelCase) {
        ServerConfig c = FixtureServing.config(modelCase);
        return c.withMedia(c.media().withAllowedLocalMediaPath(FixtureServing.FIXTURES.resolve("images")));
    }

    static String url(String image) {
        return "file:" + FixtureServing.FIXTURES.resolve("images").resolve(image + ".png").toAbsolutePath();
    }

    static ChatCompletionRequest ask(List<String> images, String detail) {
        List<ContentPart> parts = new ArrayList<>();
        for (String i : images) parts.add(new ImageUrlPart(new ImageUrlPart.ImageUrl(url(i), detail)));
        parts.add(new TextPart("What is shown in this image?"));
        ChatCompletionRequest r = ChatCompletionRequest.of("m",
                List.of(new ChatMessage("user", new MessageContent.Parts(parts), null)));
        return r;
    }

    static int[] ints(JsonNode a) {
        int[] out = new int[a.size()];
        for (int i = 0; i < out.length; i++) out[i] = a.get(i).asInt();
        return out;
    }

    static JsonNode golden(String name) throws Exception {
        return JSON.readTree(FixtureServing.FIXTURES.resolve("golden").resolve(name + ".json").toFile());
    }

    static boolean present(String modelCase) {
        return Files.isRegularFile(FixtureServing.FIXTURES.resolve("models").resolve(modelCase).resolve("config.json"));
    }

    /** Prepares, checks the prompt ids against HF's, runs greedily for as many tokens as HF generated. */
    static void checkAgainstGolden(FixtureServing s, JsonNode prompt, String id) throws Exception {
        List<String> images = new ArrayList<>();
        prompt.get("images").forEach(n -> images.add(n.asText()));
        PreparedRequest p = s.inputs.process(ask(images, null), id).get();
        assertArrayEquals(ints(prompt.get("input_ids")), p.engineRequest().promptTokenIds(), id + ": prompt ids");
        int numGreedy = prompt.get("greedy_tokens").size();
        var r = p.engineRequest();
        var greedy = new dev.retina.engine.SamplingParams(1, 0f, 1f, -1, 0f, null, 0f, 0f, 1f, numGreedy, 0, List.of(),
                true, null);
        List<Integer> tokens = s.generate(new dev.retina.engine.EngineRequest(r.requestId(), r.promptTokenIds(),
                r.images(), greedy, r.eosTokenIds()));
        List<Integer> expected = new ArrayList<>();
        prompt.get("greedy_tokens").forEach(n -> expected.add(n.asInt()));
        assertEquals(expected, tokens, id + ": greedy tokens differ from transformers");
    }

    @Test
    void llavaNextAtSeveralAspectRatiosAndTwoImagesGivesTransformersTokens() throws Exception {
        assumeTrue(present("llava-next-tiny"), "fixtures not present");
        JsonNode golden = golden("llava-next-tiny");
        try (FixtureServing s = new FixtureServing("llava-next-tiny", withImages("llava-next-tiny"))) {
            int n = 0;
            for (JsonNode prompt : golden.get("prompts")) {
                String name = prompt.get("images").get(0).asText();
                if (!List.of("coffee", "wide", "tall", "one").contains(name)) continue; // 3:2, 20:1, 1:20, 1x1
                checkAgainstGolden(s, prompt, "next-" + name);
                n++;
            }
            assertEquals(4, n);
            checkAgainstGolden(s, golden.get("multi_image_prompt"), "next-two-images");
        }
    }

    @Test
    void llavaNextDetailLowIsTheBaseTileOnlyAndCachedApartFromHigh() throws Exception {
        assumeTrue(present("llava-next-tiny"), "fixtures not present");
        try (FixtureServing s = new FixtureServing("llava-next-tiny", withImages("llava-next-tiny"))) {
            ImageInput low = s.images.loader().load(url("coffee"), ImageDetail.LOW, "p");
            ImageInput high = s.images.loader().load(url("coffee"), ImageDetail.HIGH, "p");
            ImageInput auto = s.images.loader().load(url("coffee"), ImageDetail.AUTO, "p");
            int side = 30 / 6;
            assertEquals(side * side, low.numImageTokens(), "low: the base tile's patches only");
            assertEquals(1, low.numTiles());
            assertEquals(91, high.numImageTokens(), "high: the anyres grid (HF's count for coffee)");
            assertEquals(5, high.numTiles());
            assertEquals(high.numImageTokens(), auto.numImageTokens());
            assertNotEquals(low.contentHash(), high.contentHash());
            assertArrayEquals(java.util.Arrays.copyOf(high.pixelValues(), 3 * 30 * 30), low.pixelValues(),
                    "low's tile is the grid's base tile");
            List<Integer> answer = s.run(ask(List.of("coffee"), "low"), "low");
            assertFalse(answer.isEmpty());
            assertEquals(1, s.runner.encoderCacheStats().numEncoderPasses());
        }
    }

    @Test
    void twoImagesInOneLlava15PromptGiveTransformersTokens() throws Exception {
        assumeTrue(present("llava15-336-mha"), "fixtures not present");
        JsonNode golden = golden("llava15-336-mha-multi");
        try (FixtureServing s = new FixtureServing("llava15-336-mha", withImages("llava15-336-mha"))) {
            checkAgainstGolden(s, golden.get("prompts").get(0), "llava15-two-images");
            EncoderCacheStats stats = s.runner.encoderCacheStats();
            assertEquals(2, stats.numEncoderPasses());
            // The same two images again (another turn's worth): no vision-tower pass, the same answer.
            checkAgainstGolden(s, golden.get("prompts").get(0), "llava15-two-images-again");
            stats = s.runner.encoderCacheStats();
            assertEquals(2, stats.numEncoderPasses(), "second request ran no encoder pass");
            assertEquals(2, stats.numCacheHits());
            assertEquals(2, stats.numCacheMisses());
        }
    }

    @Test
    void imagesOverTheLimitAre400() throws Exception {
        assumeTrue(present("llava15-336-mha"), "fixtures not present");
        ServerConfig c = withImages("llava15-336-mha");
        c = c.withMedia(c.media().withLimitImagesPerPrompt(1));
        try (FixtureServing s = new FixtureServing("llava15-336-mha", c)) {
            var e = assertThrows(java.util.concurrent.ExecutionException.class,
                    () -> s.inputs.process(ask(List.of("coffee", "chelsea"), null), "r").get());
            var api = assertInstanceOf(dev.retina.server.protocol.ApiException.class, e.getCause());
            assertEquals(400, api.status());
            assertEquals("messages[0].content[1].image_url", api.toBody().error().param());
        }
    }

    @Test
    void llavaNextStaticShapeResizesEveryImageFirst() throws Exception {
        assumeTrue(present("llava-next-tiny"), "fixtures not present");
        ServerConfig c = withImages("llava-next-tiny");
        c = new ServerConfig(c.model(), null, c.host(), 0, null, c.dtype(), c.device(), null, 0, c.loadFormat(),
                new dev.retina.server.config.VlmConfig(dev.retina.server.config.ImageInputType.PIXEL_VALUES, null,
                        List.of(2, 3, 60, 90), null, null, null, false),
                c.imageFetchTimeout(), c.maxRequestBytes(), c.maxImageBytes(), c.media());
        var llava = dev.retina.engine.model.LlavaConfig.load(FixtureServing.FIXTURES.resolve("models").resolve("llava-next-tiny"));
        try (ImagePipeline p = ImagePipeline.create(c, c.resolve(FixtureServing.facts(llava), c.model()), llava)) {
            assertEquals(2, p.limits().maxImagesPerPrompt(), "N of --image-input-shape");
            for (String image : List.of("coffee", "tall", "wide")) {
                ImageInput in = p.loader().load(url(image), ImageDetail.AUTO, "p");
                assertEquals(60, in.imageHeight(), image);
                assertEquals(90, in.imageWidth(), image);
                assertEquals(llava.numImageTokens(60, 90), in.numImageTokens(), image);
            }
        }
    }
}
