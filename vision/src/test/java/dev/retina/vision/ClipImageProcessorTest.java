package dev.retina.vision;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

class ClipImageProcessorTest {
    private static ClipImageProcessor processor(int shortestEdge, int crop) {
        return new ClipImageProcessor(ClipProcessorConfig.fromJson(
                "{\"size\": {\"shortest_edge\": " + shortestEdge + "}, \"crop_size\": {\"height\": " + crop
                        + ", \"width\": " + crop + "}}"), ImageProcessorBackend.PIL);
    }

    /** HF's rescale (float64 multiply, cast to float32) then normalize (float32), for one level. */
    private static float hf(int level, int channel) {
        float x = (float) (level * 0.00392156862745098);
        return (x - (float) ClipProcessorConfig.OPENAI_CLIP_MEAN[channel])
                / (float) ClipProcessorConfig.OPENAI_CLIP_STD[channel];
    }

    @Test
    void shortestEdgeSizeTruncatesLikePythonInt() {
        assertArrayEquals(new int[] {336, 504}, ClipImageProcessor.shortestEdgeSize(400, 600, 336));
        assertArrayEquals(new int[] {336, 505}, ClipImageProcessor.shortestEdgeSize(300, 451, 336)); // 505.12
        assertArrayEquals(new int[] {6720, 336}, ClipImageProcessor.shortestEdgeSize(300, 15, 336)); // 1:20
        assertArrayEquals(new int[] {30, 600}, ClipImageProcessor.shortestEdgeSize(20, 400, 30));
        assertArrayEquals(new int[] {224, 224}, ClipImageProcessor.shortestEdgeSize(1, 1, 224));
    }

    @Test
    void constantImageNormalisesPerChannel() {
        ClipImageProcessor p = processor(30, 30);
        float[] out = p.preprocess(RgbImage.filled(80, 50, 200, 30, 90));
        assertEquals(3 * 30 * 30, out.length);
        int plane = 900;
        for (int i = 0; i < plane; i++) {
            assertEquals(hf(200, 0), out[i]);
            assertEquals(hf(30, 1), out[plane + i]);
            assertEquals(hf(90, 2), out[2 * plane + i]);
        }
    }

    @Test
    void centerCropTakesTheMiddleAndPadsWithZeros() {
        // No resize: crop 2x2 out of the 5x4 gradient starts at top = (4-2)//2 = 1, left = (5-2)//2 = 1.
        ClipImageProcessor crop = new ClipImageProcessor(ClipProcessorConfig.fromJson(
                "{\"do_resize\": false, \"crop_size\": {\"height\": 2, \"width\": 2}, \"do_normalize\": false,"
                        + " \"do_rescale\": false}"), ImageProcessorBackend.PIL);
        float[] out = crop.preprocess(TestImages.gradient(5, 4));
        assertArrayEquals(new float[] {40, 80, 40, 80, 40, 40, 80, 80, 7, 7, 7, 7}, out);
        // Crop larger than the image: HF pads with zeros, the image sits at top_pad = ceil((3-1)/2) = 1.
        ClipImageProcessor pad = new ClipImageProcessor(ClipProcessorConfig.fromJson(
                "{\"do_resize\": false, \"crop_size\": {\"height\": 3, \"width\": 4}, \"do_normalize\": false,"
                        + " \"do_rescale\": false}"), ImageProcessorBackend.PIL);
        float[] padded = pad.preprocess(RgbImage.filled(1, 1, 9, 9, 9));
        float[] expectedPlane = {0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0}; // left_pad = ceil(3/2) = 2
        for (int c = 0; c < 3; c++)
            assertArrayEquals(expectedPlane, java.util.Arrays.copyOfRange(padded, 12 * c, 12 * c + 12));
    }

    // ------------------------------------------------------------------------------------------------ goldens

    private static Path fixtures() {
        String dir = System.getProperty("retina.fixtures");
        return dir == null ? null : Path.of(dir);
    }

    /**
     * Every image of every case, decoded by ImageDecoder and preprocessed with the case's own
     * preprocessor_config.json, against transformers' CLIPImageProcessor output (golden/pixels_CASE.npz).
     */
    @Test
    void matchesTransformersGoldens() throws Exception {
        Path fixtures = fixtures();
        Assumptions.assumeTrue(fixtures != null && Files.isDirectory(fixtures.resolve("golden")),
                "fixtures not present");
        List<Path> npzs;
        try (Stream<Path> s = Files.list(fixtures.resolve("golden"))) {
            npzs = s.filter(p -> p.getFileName().toString().matches("pixels_.*\\.npz")).sorted().toList();
        }
        assertFalse(npzs.isEmpty(), "no golden/pixels_*.npz");
        List<String> report = new ArrayList<>();
        double worst = 0;
        int numCompared = 0;
        for (Path npz : npzs) {
            String name = npz.getFileName().toString();
            String caseName = name.substring("pixels_".length(), name.length() - ".npz".length());
            // LLaVA-NeXT cases hold tiles from LlavaNextImageProcessor: LlavaNextImageProcessorTest checks them.
            if (Files.readString(fixtures.resolve("models").resolve(caseName).resolve("preprocessor_config.json"))
                    .contains("image_grid_pinpoints")) continue;
            ClipImageProcessor processor = new ClipImageProcessor(
                    ClipProcessorConfig.load(fixtures.resolve("models").resolve(caseName)), ImageProcessorBackend.PIL);
            for (Map.Entry<String, Npz.Array> golden : Npz.read(npz).entrySet()) {
                String image = golden.getKey();
                Path file = fixtures.resolve("images").resolve(image.endsWith("_jpeg") ? image + ".jpg" : image + ".png");
                float[] mine = processor.preprocess(ImageDecoder.decode(Files.readAllBytes(file)));
                float[] theirs = golden.getValue().data();
                assertArrayEquals(new int[] {3, processor.outputHeight(), processor.outputWidth()},
                        golden.getValue().shape(), caseName + "/" + image);
                double max = 0;
                int numDiffering = 0;
                for (int i = 0; i < mine.length; i++) {
                    double d = Math.abs(mine[i] - theirs[i]);
                    if (d > 0) numDiffering++;
                    max = Math.max(max, d);
                }
                report.add(String.format("%s/%s: max |diff| %.3g, %d of %d values differ", caseName, image, max,
                        numDiffering, mine.length));
                worst = Math.max(worst, max);
                numCompared++;
            }
        }
        report.forEach(System.out::println);
        System.out.println("compared " + numCompared + " images, worst max |diff| " + worst);
        assertTrue(numCompared > 0);
        for (String line : report) assertTrue(!line.contains("max |diff| ") || parseMax(line) <= 1e-5, line);
    }

    private static double parseMax(String line) {
        String s = line.substring(line.indexOf("max |diff| ") + 11);
        return Double.parseDouble(s.substring(0, s.indexOf(',')));
    }
}
