package dev.retina.examples;

import dev.retina.engine.SamplingParams;
import dev.retina.server.config.Device;
import dev.retina.server.offline.CompletionOutput;
import dev.retina.server.offline.ImageData;
import dev.retina.server.offline.ImagePixelData;
import dev.retina.server.offline.LLM;
import dev.retina.server.offline.Prompt;
import dev.retina.server.offline.RequestResult;
import dev.retina.vision.RgbImage;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The offline API: several image prompts through the batching engine at once, results in input order.
 *
 * <pre>
 * java -cp examples/target/retina-examples-0.1.0-SNAPSHOT.jar:server/target/retina.jar:server/target/lib/* \
 *     dev.retina.examples.OfflineExample [MODEL_DIR|demo] [IMAGE ...]
 * </pre>
 *
 * Without arguments it asks the bundled demo model (models/retina-demo, trained on simple generated scenes) five
 * questions about each of two pictures drawn here, in one batch, plus one sampled answer with n=2.
 */
public final class OfflineExample {
    private OfflineExample() {
    }

    public static void main(String[] args) throws Exception {
        String model = args.length > 0 ? args[0] : "demo";
        List<ImageData> images = new ArrayList<>();
        for (int i = 1; i < args.length; i++) images.add(ImagePixelData.of(Path.of(args[i])));
        if (images.isEmpty()) {
            images.add(ImagePixelData.of(scene(new int[][] {{18, 32, 9, 0}, {46, 32, 8, 1}})));  // red circle, blue square
            images.add(ImagePixelData.of(scene(new int[][] {{16, 46, 7, 2}, {34, 16, 8, 0}, {50, 44, 7, 2}})));
        }
        // LLaVA-1.5's prompt format; one <image> per image (the seed's form, <image> repeated N times, works too).
        List<String> questions = List.of("What color is the circle?", "What shape is the red object?",
                "How many squares are there?", "Is the circle left or right of the square?", "Describe the image.");
        SamplingParams greedy = SamplingParams.greedy(24);
        SamplingParams sampled = new SamplingParams(2, 0.8f, 0.95f, -1, 0f, 42L, 0f, 0f, 1f, 24, 0, List.of(), false, null);
        List<Prompt> prompts = new ArrayList<>();
        for (ImageData image : images) {
            for (String q : questions) prompts.add(Prompt.of("USER: <image>\n" + q + " ASSISTANT:", greedy, image));
        }
        prompts.add(Prompt.of("USER: <image>\nDescribe the image. ASSISTANT:", sampled, images.getFirst()));
        // The seed's (vLLM 0.4's) form: the placeholder already repeated image_feature_size times (64 for the demo).
        prompts.add(Prompt.of("USER: " + "<image>".repeat(64) + "\nIs the circle left or right of the square? ASSISTANT:",
                greedy, images.getFirst()));
        try (LLM llm = LLM.builder(model).device(Device.AUTO).build()) {
            long start = System.nanoTime();
            List<RequestResult> results = llm.generate(prompts);
            double seconds = (System.nanoTime() - start) / 1e9;
            for (int i = 0; i < results.size(); i++) {
                RequestResult r = results.get(i);
                int numGreedy = images.size() * questions.size();
                String q = i < numGreedy ? questions.get(i % questions.size())
                        : i == numGreedy ? "Describe the image. (sampled, n=2)"
                        : "Is the circle left or right of the square? (<image> x 64, the seed's prompt form)";
                System.out.printf("image %d, %s (%d prompt tokens)%n", i < numGreedy ? i / questions.size() : 0,
                        q, r.promptTokenIds().length);
                for (CompletionOutput out : r.outputs())
                    System.out.printf("  choice %d [%s] %s%n", out.index(), out.finishReason().openAiName(),
                            quote(out.text()));
            }
            System.out.printf("%d prompts in %.2f s on %s %s%n", prompts.size(), seconds, llm.deviceName(),
                    llm.dtypeName());
        }
    }

    private static String quote(String text) {
        return text == null ? "(no tokenizer)" : "\"" + text.replace("\n", "\\n") + "\"";
    }

    /** The demo model's colours: red, blue, yellow, green. */
    static final int[][] COLORS = {{215, 35, 35}, {45, 75, 215}, {235, 205, 40}, {35, 165, 65}};

    /**
     * A 64x64 scene on a light background, like those the demo model was trained on: each shape is {cx, cy, r,
     * colour}; red and green shapes are drawn as circles, blue and yellow ones as squares (the training script draws
     * triangles and stars too).
     */
    static RgbImage scene(int[][] shapes) {
        int size = 64;
        byte[] rgb = new byte[3 * size * size];
        java.util.Arrays.fill(rgb, (byte) 245);
        for (int[] s : shapes) {
            boolean circle = s[3] == 0 || s[3] == 3;
            int[] c = COLORS[s[3]];
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++) {
                    int dx = x - s[0], dy = y - s[1];
                    boolean inside = circle ? dx * dx + dy * dy <= s[2] * s[2]
                            : Math.abs(dx) <= s[2] * 0.88 && Math.abs(dy) <= s[2] * 0.88;
                    if (!inside) continue;
                    int i = 3 * (y * size + x);
                    rgb[i] = (byte) c[0];
                    rgb[i + 1] = (byte) c[1];
                    rgb[i + 2] = (byte) c[2];
                }
        }
        return new RgbImage(size, size, rgb);
    }
}
