package dev.retina.examples;

import ai.djl.Device;
import ai.djl.ndarray.types.DataType;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.engine.model.LlavaGenerator;
import dev.retina.engine.model.LlavaModel;
import dev.retina.engine.model.LoadFormat;
import dev.retina.engine.model.ModelLoadConfig;
import dev.retina.vision.ImageProcessorBackend;
import dev.retina.vision.ClipImageProcessor;
import dev.retina.vision.ClipProcessorConfig;
import dev.retina.vision.ImageDecoder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * Compares Retina's LLaVA-1.5 forward pass on a chosen device and dtype with the Hugging Face goldens of the fixture
 * checkpoints, and prints a table (a measurement, not a test: float16 on GPU is expected to differ from HF's float64
 * by rounding, so greedy tokens may part ways at near-ties; the CPU float32 parity tests assert exact tokens).
 *
 * <pre>java -cp ... dev.retina.examples.DeviceParity src/test/resources/fixtures gpu float16</pre>
 */
public final class DeviceParity {
    private DeviceParity() {}

    public static void main(String[] args) throws Exception {
        Path fixtures = Path.of(args.length > 0 ? args[0] : "src/test/resources/fixtures");
        Device device = args.length > 1 && args[1].equals("gpu") ? Device.gpu() : Device.cpu();
        DataType dtype = args.length > 2 && args[2].equals("float16") ? DataType.FLOAT16 : DataType.FLOAT32;
        ObjectMapper json = new ObjectMapper();
        System.out.printf(Locale.ROOT, "%-26s %-10s %12s %12s %8s %12s %10s%n", "case", "image", "max|dlogit|",
                "max|logit|", "top1", "same tokens", "ms/token");
        for (String name : new String[] {"llava15-336-mha", "llava-224-gqa-full-tied", "llava-30-mqa-llama3rope"}) {
            Path modelDir = fixtures.resolve("models").resolve(name);
            JsonNode golden = json.readTree(fixtures.resolve("golden").resolve(name + ".json").toFile());
            ClipImageProcessor processor = new ClipImageProcessor(ClipProcessorConfig.load(modelDir), ImageProcessorBackend.PIL);
            try (LlavaModel model = LlavaModel.load(modelDir,
                    new ModelLoadConfig(device, dtype, LoadFormat.AUTO, 0L))) {
                LlavaGenerator generator = new LlavaGenerator(model);
                for (JsonNode prompt : golden.get("prompts")) {
                    String image = prompt.get("image").asText();
                    Path file = fixtures.resolve("images").resolve(image + (image.endsWith("_jpeg") ? ".jpg" : ".png"));
                    float[] pixels = processor.preprocess(ImageDecoder.decode(Files.readAllBytes(file)));
                    int[] ids = json.treeToValue(prompt.get("input_ids"), int[].class);
                    int[] expected = json.treeToValue(prompt.get("greedy_tokens"), int[].class);
                    double[] want = json.treeToValue(prompt.get("last_logits"), double[].class);
                    generator.greedy(ids, pixels, 1, 4, 0); // warm-up
                    long t0 = System.nanoTime();
                    LlavaGenerator.Result r = generator.greedy(ids, pixels, 1, expected.length, 0);
                    double msPerToken = (System.nanoTime() - t0) / 1e6 / expected.length;
                    double maxDiff = 0, maxAbs = 0;
                    int argmax = 0, wantArgmax = 0;
                    for (int i = 0; i < want.length; i++) {
                        maxDiff = Math.max(maxDiff, Math.abs(r.prefillLastLogits()[i] - want[i]));
                        maxAbs = Math.max(maxAbs, Math.abs(want[i]));
                        if (r.prefillLastLogits()[i] > r.prefillLastLogits()[argmax]) argmax = i;
                        if (want[i] > want[wantArgmax]) wantArgmax = i;
                    }
                    int same = 0;
                    while (same < expected.length && r.tokenIds()[same] == expected[same]) same++;
                    System.out.printf(Locale.ROOT, "%-26s %-10s %12.3e %12.3f %8s %9d/%-2d %10.2f%n", name, image,
                            maxDiff, maxAbs, argmax == wantArgmax ? "same" : "DIFF", same, expected.length,
                            msPerToken);
                }
            }
        }
        System.out.println("device " + device + ", dtype " + dtype);
    }
}
