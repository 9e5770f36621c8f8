package dev.retina.vision;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class LlavaNextImageProcessorTest {
    static final String CASE = "llava-next-tiny";

    private static Path fixtures() {
        String dir = System.getProperty("retina.fixtures");
        return dir == null ? null : Path.of(dir);
    }

    /** Every golden image: tiles bit for bit (within 1e-5 at worst) and image_sizes as HF's processor gives them. */
    @Test
    void tilesMatchTransformers() throws Exception {
        Path fx = fixtures();
        Assumptions.assumeTrue(fx != null && Files.isDirectory(fx.resolve("models").resolve(CASE)), "fixtures absent");
        LlavaNextImageProcessor processor = new LlavaNextImageProcessor(
                LlavaNextProcessorConfig.load(fx.resolve("models").resolve(CASE)), ImageProcessorBackend.PIL);
        JsonNode images = new ObjectMapper().readTree(fx.resolve("golden").resolve(CASE + ".json").toFile())
                .get("images");
        Map<String, Npz.Array> golden = Npz.read(fx.resolve("golden").resolve("pixels_" + CASE + ".npz"));
        assertEquals(images.size(), golden.size());
        double worst = 0;
        long numDiffering = 0;
        for (Map.Entry<String, Npz.Array> e : golden.entrySet()) {
            String image = e.getKey();
            JsonNode info = images.get(image);
            RgbImage decoded = ImageDecoder.decode(Files.readAllBytes(fx.resolve("images").resolve(image + ".png")));
            LlavaNextImageProcessor.Tiles tiles = processor.preprocess(decoded);
            assertArrayEquals(new int[] {info.get("image_size").get(0).asInt(), info.get("image_size").get(1).asInt()},
                    new int[] {tiles.imageHeight(), tiles.imageWidth()}, image + " image_sizes");
            int[] best = LlavaNextImageProcessor.selectBestResolution(tiles.imageHeight(), tiles.imageWidth(),
                    processor.config().imageGridPinpoints());
            assertArrayEquals(new int[] {info.get("best_resolution").get(0).asInt(),
                    info.get("best_resolution").get(1).asInt()}, best, image + " best resolution");
            assertArrayEquals(e.getValue().shape(), new int[] {tiles.numTiles(), 3, 30, 30}, image + " tiles shape");
            float[] theirs = e.getValue().data();
            double max = 0;
            for (int i = 0; i < theirs.length; i++) {
                double d = Math.abs(theirs[i] - tiles.pixelValues()[i]);
                if (d > 0) numDiffering++;
                max = Math.max(max, d);
            }
            System.out.printf("%s %s: %d tiles, best %dx%d, max |diff| %.3g%n", CASE, image, tiles.numTiles(), best[0],
                    best[1], max);
            worst = Math.max(worst, max);
        }
        System.out.println("llava-next tiles: worst max |diff| " + worst + ", differing values " + numDiffering);
        assertTrue(worst <= 1e-5, "worst " + worst);
    }

    @Test
    void selectsByEffectiveThenWastedResolution() {
        List<int[]> pins = List.of(new int[] {336, 672}, new int[] {672, 336}, new int[] {672, 672},
                new int[] {1008, 336}, new int[] {336, 1008});
        assertArrayEquals(new int[] {672, 672}, LlavaNextImageProcessor.selectBestResolution(1000, 1000, pins));
        assertArrayEquals(new int[] {336, 1008}, LlavaNextImageProcessor.selectBestResolution(100, 2000, pins));
        assertArrayEquals(new int[] {1008, 336}, LlavaNextImageProcessor.selectBestResolution(2000, 100, pins));
        // a tiny image fits everywhere whole: the least wasted area wins, the first of equals
        assertArrayEquals(new int[] {336, 672}, LlavaNextImageProcessor.selectBestResolution(1, 1, pins));
    }

    @Test
    void padsCenteredWithTheRemainderAfter() {
        RgbImage img = RgbImage.filled(3, 2, 255, 255, 255);
        RgbImage p = LlavaNextImageProcessor.padCentered(img, 5, 6);
        // top = (5 - 2) // 2 = 1, left = (6 - 3) // 2 = 1
        assertEquals(0, p.get(0, 0, 0));
        assertEquals(255, p.get(1, 1, 0));
        assertEquals(255, p.get(3, 2, 0));
        assertEquals(0, p.get(4, 2, 0));
        assertEquals(0, p.get(1, 3, 0));
        assertArrayEquals(new int[] {5, 90}, LlavaNextImageProcessor.patchOutputSize(20, 400, 30, 90));
    }

    @Test
    void configRejectsPinpointsOffTheTileGrid() {
        String cfg = "{\"size\":{\"shortest_edge\":30},\"crop_size\":{\"height\":30,\"width\":30},"
                + "\"image_grid_pinpoints\":[[30,45]]}";
        assertThrows(IllegalArgumentException.class, () -> LlavaNextProcessorConfig.fromJson(cfg));
        LlavaNextProcessorConfig ok = LlavaNextProcessorConfig.fromJson(cfg.replace("45", "60"));
        assertEquals(30, ok.tileSize());
        assertArrayEquals(new int[] {30, 60}, ok.imageGridPinpoints().get(0));
    }
}
