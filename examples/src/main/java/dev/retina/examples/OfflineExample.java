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
 * Without arguments it runs the bundled demo model (tiny, random weights: the text is noise) on two drawn images.
 */
public final class OfflineExample {
    private OfflineExample() {
    }

    public static void main(String[] args) throws Exception {
        String model = args.length > 0 ? args[0] : "demo";
        List<ImageData> images = new ArrayList<>();
        for (int i = 1; i < args.length; i++) images.add(ImagePixelData.of(Path.of(args[i])));
        if (images.isEmpty()) {
            images.add(ImagePixelData.of(skyOverGrass(640, 480)));
            images.add(ImagePixelData.of(checkerboard(300, 400, 50)));
        }
        // LLaVA-1.5's prompt format; one <image> per image (the seed's form, <image> repeated 576 times, works too).
        String question = "USER: <image>\nWhat is shown in this image? ASSISTANT:";
        SamplingParams greedy = SamplingParams.greedy(24);
        SamplingParams sampled = new SamplingParams(2, 0.8f, 0.95f, -1, 0f, 42L, 0f, 0f, 1f, 24, 0, List.of(), false, null);
        List<Prompt> prompts = new ArrayList<>();
        for (ImageData image : images) {
            prompts.add(Prompt.of(question, greedy, image));
            prompts.add(Prompt.of("USER: <image>\nDescribe the colours. ASSISTANT:", sampled, image));
        }
        try (LLM llm = LLM.builder(model).device(Device.AUTO).build()) {
            long start = System.nanoTime();
            List<RequestResult> results = llm.generate(prompts);
            double seconds = (System.nanoTime() - start) / 1e9;
            for (int i = 0; i < results.size(); i++) {
                RequestResult r = results.get(i);
                System.out.printf("prompt %d (%d tokens, image %d):%n", i, r.promptTokenIds().length, i / 2);
                for (CompletionOutput out : r.outputs())
                    System.out.printf("  choice %d [%s] %s%n    ids %s%n", out.index(), out.finishReason().openAiName(),
                            quote(out.text()), Arrays.toString(out.tokenIds()));
            }
            System.out.printf("%d prompts in %.2f s on %s %s%n", prompts.size(), seconds, llm.deviceName(),
                    llm.dtypeName());
        }
    }

    private static String quote(String text) {
        return text == null ? "(no tokenizer)" : "\"" + text.replace("\n", "\\n") + "\"";
    }

    /** Blue sky fading to white over a green strip. */
    static RgbImage skyOverGrass(int width, int height) {
        byte[] rgb = new byte[3 * width * height];
        for (int y = 0; y < height; y++) {
            for (int x = 0; x < width; x++) {
                int i = 3 * (y * width + x);
                boolean grass = y > height * 2 / 3;
                int t = 255 * y / height;
                rgb[i] = (byte) (grass ? 40 : 90 + t * 2 / 3);
                rgb[i + 1] = (byte) (grass ? 150 + (x % 7) * 5 : 150 + t / 3);
                rgb[i + 2] = (byte) (grass ? 40 : 235);
            }
        }
        return new RgbImage(width, height, rgb);
    }

    /** A black and orange checkerboard. */
    static RgbImage checkerboard(int width, int height, int square) {
        byte[] rgb = new byte[3 * width * height];
        for (int y = 0; y < height; y++) {
            for (int x = 0; x < width; x++) {
                int i = 3 * (y * width + x);
                boolean on = ((x / square) + (y / square)) % 2 == 0;
                rgb[i] = (byte) (on ? 250 : 10);
                rgb[i + 1] = (byte) (on ? 140 : 10);
                rgb[i + 2] = (byte) (on ? 0 : 10);
            }
        }
        return new RgbImage(width, height, rgb);
    }
}
