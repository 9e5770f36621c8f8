package dev.retina.vision;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The torchvision backend against transformers 5.17 / torch 2.11 / torchvision 0.26 (tools/torchvision_goldens.py):
 * the uint8 antialiased bicubic resize byte for byte, and CLIPImageProcessor / LlavaNextImageProcessor pixel_values
 * bit for bit (full arrays for 30-pixel configs, SHA-256 of the float32 bytes for 224 and 336), both backends.
 */
class TorchvisionParityTest {
    static final Path GOLDENS = Path.of("src/test/resources/torchvision");
    static final Path IMAGES = Path.of(System.getProperty("retina.fixtures", "../src/test/resources/fixtures"))
            .resolve("images");

    static RgbImage image(String name) throws Exception {
        Path file = IMAGES.resolve(name.endsWith("_jpeg") ? name + ".jpg" : name + ".png");
        return ImageDecoder.decode(Files.readAllBytes(file));
    }

    @Test
    void resizeMatchesTorchvisionByteForByte() throws Exception {
        Map<String, Npz.Array> golden = Npz.read(GOLDENS.resolve("torchvision_resize.npz"));
        List<String> bad = new ArrayList<>();
        for (Map.Entry<String, Npz.Array> e : golden.entrySet()) {
            String[] parts = e.getKey().split("__");
            String[] hw = parts[1].split("x");
            int h = Integer.parseInt(hw[0]), w = Integer.parseInt(hw[1]);
            RgbImage out = BicubicResize.torchvision(image(parts[0]), w, h);
            float[] theirs = e.getValue().data(); // (3, h, w)
            int differing = 0, maxDiff = 0;
            for (int c = 0; c < 3; c++)
                for (int i = 0; i < h * w; i++) {
                    int d = Math.abs((out.rgb()[i * 3 + c] & 0xFF) - (int) theirs[c * h * w + i]);
                    if (d != 0) differing++;
                    maxDiff = Math.max(maxDiff, d);
                }
            if (differing > 0) bad.add(e.getKey() + ": " + differing + " bytes differ, max " + maxDiff);
        }
        assertEquals(80, golden.size());
        assertTrue(bad.isEmpty(), String.join("\n", bad));
    }

    @Test
    void processorsMatchBothBackendsBitForBit() throws Exception {
        JsonNode meta = new ObjectMapper().readTree(GOLDENS.resolve("torchvision_pixels.json").toFile());
        Map<String, Npz.Array> arrays = Npz.read(GOLDENS.resolve("torchvision_pixels.npz"));
        List<String> bad = new ArrayList<>();
        int compared = 0;
        for (var config : meta.get("hashes").properties()) {
            String cname = config.getKey();
            int size = Integer.parseInt(cname.replaceAll("\\D", ""));
            boolean next = cname.startsWith("next");
            for (var img : config.getValue().properties()) {
                if (img.getKey().equals("classes")) continue;
                for (ImageProcessorBackend backend : ImageProcessorBackend.values()) {
                    JsonNode want = img.getValue().get(backend.cliName());
                    float[] mine = next ? nextProcessor(size, backend).preprocess(image(img.getKey())).pixelValues()
                            : clipProcessor(size, backend).preprocess(image(img.getKey()));
                    String key = cname + "__" + backend.cliName() + "__" + img.getKey();
                    int numel = 1;
                    for (JsonNode d : want.get("shape")) numel *= d.asInt();
                    assertEquals(numel, mine.length, key + " shape " + want.get("shape"));
                    if (arrays.containsKey(key)) {
                        float[] theirs = arrays.get(key).data();
                        double max = 0;
                        for (int i = 0; i < mine.length; i++) max = Math.max(max, Math.abs(mine[i] - theirs[i]));
                        if (max > 0) bad.add(key + ": max |diff| " + max);
                    }
                    if (!sha256(mine).equals(want.get("sha256").asText())) bad.add(key + ": sha256 differs");
                    compared++;
                }
            }
        }
        System.out.println("torchvision parity: compared " + compared + " image/config/backend triples, "
                + bad.size() + " differ");
        assertEquals(100, compared);
        assertTrue(bad.isEmpty(), String.join("\n", bad));
    }

    static final List<int[]> PINS_30 = List.of(new int[] {30, 60}, new int[] {60, 30}, new int[] {60, 60},
            new int[] {90, 30}, new int[] {30, 90});
    static final List<int[]> PINS_336 = List.of(new int[] {336, 672}, new int[] {672, 336}, new int[] {672, 672},
            new int[] {1008, 336}, new int[] {336, 1008});

    static String configJson(int size) {
        return "{\"size\": {\"shortest_edge\": " + size + "}, \"crop_size\": {\"height\": " + size + ", \"width\": "
                + size + "}, \"do_resize\": true, \"do_center_crop\": true, \"do_rescale\": true, \"do_normalize\": "
                + "true, \"do_convert_rgb\": true, \"resample\": 3, \"rescale_factor\": 0.00392156862745098, "
                + "\"image_mean\": [0.48145466, 0.4578275, 0.40821073], "
                + "\"image_std\": [0.26862954, 0.26130258, 0.27577711]";
    }

    static ClipImageProcessor clipProcessor(int size, ImageProcessorBackend backend) {
        return new ClipImageProcessor(ClipProcessorConfig.fromJson(configJson(size) + "}"), backend);
    }

    static LlavaNextImageProcessor nextProcessor(int size, ImageProcessorBackend backend) {
        StringBuilder pins = new StringBuilder("[");
        for (int[] p : size == 30 ? PINS_30 : PINS_336)
            pins.append(pins.length() > 1 ? ", " : "").append("[").append(p[0]).append(", ").append(p[1]).append("]");
        String json = configJson(size) + ", \"do_pad\": true, \"image_grid_pinpoints\": " + pins + "]}";
        return new LlavaNextImageProcessor(LlavaNextProcessorConfig.fromJson(json), backend);
    }

    static String sha256(float[] values) throws Exception {
        ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(values);
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b.array()));
    }

    @Test
    void backendFollowsTheProcessorClassTransformersWouldLoad() {
        assertEquals(ImageProcessorBackend.TORCHVISION, ImageProcessorBackend.forProcessorType("CLIPImageProcessor"));
        assertEquals(ImageProcessorBackend.TORCHVISION, ImageProcessorBackend.forProcessorType("CLIPImageProcessorFast"));
        assertEquals(ImageProcessorBackend.TORCHVISION, ImageProcessorBackend.forProcessorType(null));
        assertEquals(ImageProcessorBackend.PIL, ImageProcessorBackend.forProcessorType("LlavaNextImageProcessorPil"));
        assertArrayEquals(new ImageProcessorBackend[] {ImageProcessorBackend.PIL, ImageProcessorBackend.TORCHVISION},
                new ImageProcessorBackend[] {ImageProcessorBackend.parse("PIL"), ImageProcessorBackend.parse("torchvision")});
    }
}
