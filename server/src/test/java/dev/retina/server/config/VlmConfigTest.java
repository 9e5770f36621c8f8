package dev.retina.server.config;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class VlmConfigTest {
    /** llava-1.5-7b's numbers: image token 32000, 336/14 vision, 576 image tokens, 4096 hidden, 4096 positions. */
    static final CheckpointFacts LLAVA15 = new Facts(32000, 336, 3, 576, 4096, 4096);

    record Facts(int imageTokenId, int visionImageSize, int visionNumChannels, int numImageTokens, int textHiddenSize,
                 int maxPositionEmbeddings) implements CheckpointFacts {
    }

    private static VlmConfig vlm(ImageInputType type, Integer tokenId, String shape, Integer featureSize) {
        return new VlmConfig(type, tokenId, shape == null ? null : VlmConfig.parseShape(shape), featureSize, null, null, false);
    }

    @Test
    void defaultsComeFromTheCheckpoint() {
        VlmConfig.Resolved r = VlmConfig.defaults().resolve(LLAVA15, "/m");
        assertEquals(32000, r.imageTokenId());
        assertEquals(576, r.imageFeatureSize());
        assertEquals(List.of(1, 3, 336, 336), r.imageInputShape());
        assertEquals("/m", r.imageProcessor());
        assertEquals(1, r.maxImagesPerPrompt());
    }

    @Test
    void vllmSeedFlagsThatAgreeAreAccepted() {
        VlmConfig.Resolved r = vlm(ImageInputType.PIXEL_VALUES, 32000, "2, 3,336,336", 576).resolve(LLAVA15, "/m");
        assertEquals(List.of(2, 3, 336, 336), r.imageInputShape());
        assertEquals(2, r.maxImagesPerPrompt());
    }

    @Test
    void contradictionsNameBothValues() {
        var e = assertThrows(ConfigException.class,
                () -> vlm(ImageInputType.PIXEL_VALUES, 32001, null, null).resolve(LLAVA15, "/m"));
        assertTrue(e.getMessage().contains("32001") && e.getMessage().contains("32000"), e.getMessage());
        e = assertThrows(ConfigException.class,
                () -> vlm(ImageInputType.PIXEL_VALUES, null, null, 577).resolve(LLAVA15, "/m"));
        assertTrue(e.getMessage().contains("577") && e.getMessage().contains("576"), e.getMessage());
        e = assertThrows(ConfigException.class,
                () -> vlm(ImageInputType.PIXEL_VALUES, null, "1,3,224,224", null).resolve(LLAVA15, "/m"));
        assertTrue(e.getMessage().contains("1,3,224,224") && e.getMessage().contains("336"), e.getMessage());
        e = assertThrows(ConfigException.class,
                () -> vlm(ImageInputType.IMAGE_FEATURES, null, "1,576,1024", null).resolve(LLAVA15, "/m"));
        assertTrue(e.getMessage().contains("1,576,1024") && e.getMessage().contains("4096"), e.getMessage());
    }

    @Test
    void imageFeaturesShapeUsesFeatureSizeAndHiddenSize() {
        VlmConfig.Resolved r = vlm(ImageInputType.IMAGE_FEATURES, null, "1,576,4096", 576).resolve(LLAVA15, "/m");
        assertEquals(List.of(1, 576, 4096), r.imageInputShape());
        assertEquals(List.of(1, 576, 4096),
                vlm(ImageInputType.IMAGE_FEATURES, null, null, null).resolve(LLAVA15, "/m").imageInputShape());
    }

    @Test
    void malformedFlagsFailWithoutACheckpoint() {
        assertThrows(ConfigException.class, () -> VlmConfig.parseShape("1,3,x,336"));
        assertThrows(ConfigException.class, () -> vlm(ImageInputType.PIXEL_VALUES, null, "3,336,336", null));
        assertThrows(ConfigException.class, () -> vlm(ImageInputType.PIXEL_VALUES, null, "0,3,336,336", null));
        assertThrows(ConfigException.class, () -> vlm(ImageInputType.IMAGE_FEATURES, null, "1,576,4096", 500));
        assertThrows(ConfigException.class, () -> vlm(ImageInputType.PIXEL_VALUES, -1, null, null));
        assertThrows(ConfigException.class,
                () -> new VlmConfig(ImageInputType.PIXEL_VALUES, null, null, null, "/p", null, true));
    }

    @Test
    void processorOverrideAndDisable() {
        assertEquals("/proc", new VlmConfig(ImageInputType.PIXEL_VALUES, null, null, null, "/proc", "main", false)
                .resolve(LLAVA15, "/m").imageProcessor());
        assertNull(new VlmConfig(ImageInputType.PIXEL_VALUES, null, null, null, null, null, true)
                .resolve(LLAVA15, "/m").imageProcessor());
    }

    @Test
    void maxModelLenIsCheckedAgainstPositions() {
        ServerConfig base = ServerConfig.defaults("/m");
        assertEquals(4096, base.resolve(LLAVA15, "/m").maxModelLen());
        ServerConfig tooLong = new ServerConfig("/m", null, "127.0.0.1", 0, null, Dtype.AUTO, Device.AUTO, 8192, 0,
                LoadFormat.AUTO, VlmConfig.defaults(), base.imageFetchTimeout(), 1 << 20, 1 << 20);
        var e = assertThrows(ConfigException.class, () -> tooLong.resolve(LLAVA15, "/m"));
        assertTrue(e.getMessage().contains("8192") && e.getMessage().contains("4096"), e.getMessage());
    }

    @Test
    void llavaNextTakesAnyStaticShapeButNoFixedFeatureSize() {
        CheckpointFacts anyres = new CheckpointFacts() {
            public int imageTokenId() { return 32000; }
            public int visionImageSize() { return 336; }
            public int visionNumChannels() { return 3; }
            public int numImageTokens() { return 576; }
            public int textHiddenSize() { return 4096; }
            public int maxPositionEmbeddings() { return 4096; }
            public boolean anyres() { return true; }
        };
        assertEquals(java.util.List.of(2, 3, 480, 640), vlm(ImageInputType.PIXEL_VALUES, null, "2,3,480,640", null)
                .resolve(anyres, "/m").imageInputShape(), "NeXT: H,W is a resize target");
        assertThrows(ConfigException.class, () -> vlm(ImageInputType.PIXEL_VALUES, null, "2,3,480,640", null)
                .resolve(LLAVA15, "/m"), "LLaVA-1.5: H,W must be the checkpoint's");
        assertThrows(ConfigException.class, () -> vlm(ImageInputType.PIXEL_VALUES, null, "1,1,480,640", null)
                .resolve(anyres, "/m"), "channels still checked");
        assertThrows(ConfigException.class, () -> vlm(ImageInputType.PIXEL_VALUES, null, null, 576)
                .resolve(anyres, "/m"), "NeXT token counts vary per image");
    }
}
