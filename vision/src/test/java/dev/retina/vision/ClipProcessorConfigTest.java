package dev.retina.vision;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ClipProcessorConfigTest {
    static final String LLAVA_15 = """
            {"crop_size": {"height": 336, "width": 336}, "do_center_crop": true, "do_convert_rgb": true,
             "do_normalize": true, "do_rescale": true, "do_resize": true,
             "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_processor_type": "CLIPImageProcessor",
             "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3,
             "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 336}}""";

    @Test
    void readsTransformers4Config() {
        ClipProcessorConfig c = ClipProcessorConfig.fromJson(LLAVA_15);
        assertEquals(336, c.shortestEdge());
        assertEquals(336, c.cropHeight());
        assertEquals(336, c.cropWidth());
        assertEquals(0.00392156862745098, c.rescaleFactor());
        assertArrayEquals(new double[] {0.26862954, 0.26130258, 0.27577711}, c.imageStd());
        assertTrue(c.doCenterCrop() && c.doResize() && c.doRescale() && c.doNormalize() && c.doConvertRgb());
    }

    @Test
    void readsLegacyIntSizesAndDefaults() {
        ClipProcessorConfig c = ClipProcessorConfig.fromJson("{\"size\": 224, \"crop_size\": 200}");
        assertEquals(224, c.shortestEdge());
        assertEquals(200, c.cropHeight());
        assertEquals(200, c.cropWidth());
        assertEquals(1 / 255.0, c.rescaleFactor());
        assertArrayEquals(ClipProcessorConfig.OPENAI_CLIP_MEAN, c.imageMean());
        ClipProcessorConfig fixed = ClipProcessorConfig.fromJson(
                "{\"size\": {\"height\": 30, \"width\": 40}, \"do_center_crop\": false}");
        assertEquals(0, fixed.shortestEdge());
        assertEquals(30, fixed.resizeHeight());
        assertEquals(40, fixed.resizeWidth());
        assertFalse(fixed.doCenterCrop());
        // transformers 5.x may serialise unused size keys as null
        assertEquals(336, ClipProcessorConfig.fromJson(
                "{\"size\": {\"shortest_edge\": 336, \"longest_edge\": null, \"height\": null}}").shortestEdge());
        assertEquals(30, new ClipImageProcessor(fixed, ImageProcessorBackend.PIL).outputHeight());
        assertEquals(40, new ClipImageProcessor(fixed, ImageProcessorBackend.PIL).outputWidth());
    }

    @Test
    void unwrapsTransformers5ProcessorConfig(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("processor_config.json"),
                "{\"image_processor\": " + LLAVA_15 + ", \"processor_class\": \"LlavaProcessor\"}");
        assertEquals(ClipProcessorConfig.fromJson(LLAVA_15), ClipProcessorConfig.load(dir));
        // preprocessor_config.json wins when both exist
        Files.writeString(dir.resolve("preprocessor_config.json"), LLAVA_15.replace("336}}", "400}}"));
        assertEquals(400, ClipProcessorConfig.load(dir).shortestEdge());
    }

    @Test
    void refusesWhatItCannotReproduce() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ClipProcessorConfig.fromJson(LLAVA_15.replace("\"resample\": 3", "\"resample\": 2")));
        assertTrue(e.getMessage().contains("BICUBIC"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> ClipProcessorConfig.fromJson(
                "{\"size\": {\"shortest_edge\": 10, \"longest_edge\": 20}}"));
        assertThrows(IllegalArgumentException.class, () -> ClipProcessorConfig.fromJson("{\"image_mean\": [1, 2]}"));
        assertThrows(IllegalArgumentException.class, () -> ClipProcessorConfig.fromJson("[1]"));
        assertThrows(IllegalArgumentException.class, () -> ClipProcessorConfig.fromJson("{oops"));
    }
}
