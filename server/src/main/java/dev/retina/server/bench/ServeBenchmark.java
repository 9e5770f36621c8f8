package dev.retina.server.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Iterator;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.Semaphore;
import java.util.concurrent.locks.LockSupport;
import java.util.stream.Stream;

/**
 * The client side of {@code retina bench serve}: sends streamed chat requests with images as {@code data:} URLs to
 * any OpenAI-compatible server at Poisson arrival times (or all at once), and measures what each client sees: TTFT
 * (to the first chunk carrying text), inter-token latency between text chunks, TPOT and end-to-end latency; token
 * counts come from the usage chunk ({@code stream_options.include_usage}). The same seed gives the same requests for
 * every rate of a sweep. Uses the JDK's HTTP client, one virtual thread per request.
 */
public final class ServeBenchmark {
    /** What to send. {@code inputLen} is in words of a fixed list (each one token or a few, model-dependent). */
    public record Options(URI baseUrl, String endpoint, String model, String apiKey, int numPrompts, int inputLen,
                          int outputLen, int numImages, int imageSize, List<Path> imageFiles, long seed,
                          int maxConcurrency, boolean ignoreEos, double temperature, Duration timeout) {
    }

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String[] WORDS = ("the of and to in is was it for on with as at by from this that be are or "
            + "an have not but had his they you which one were all we her she there would their will when who him "
            + "been has more if no out so said what up its about into than them can only other new some could time "
            + "these two may then do first any my now such like our over man me even most made after also did many "
            + "before must through back years where much your way well down should because each just those people "
            + "how too little state good very make world still own see men work long get here between both life "
            + "being under never day same another know while last might us great old year off come since against "
            + "go came right used take three house picture image colour shape light water river city street tree")
            .split(" ");

    private final Options options;
    private final HttpClient http;

    public ServeBenchmark(Options options) {
        this.options = options;
        this.http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(10)).build();
    }

    /** The served model's id: {@code options.model} if given, else the first of {@code GET /v1/models}. */
    public String resolveModel() throws IOException, InterruptedException {
        if (options.model() != null) return options.model();
        HttpRequest.Builder b = HttpRequest.newBuilder(options.baseUrl().resolve("/v1/models"))
                .timeout(Duration.ofSeconds(10));
        if (options.apiKey() != null) b.header("Authorization", "Bearer " + options.apiKey());
        HttpResponse<String> r = http.send(b.build(), HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() != 200)
            throw new IOException("GET /v1/models answered " + r.statusCode() + ": " + r.body());
        return JSON.readTree(r.body()).path("data").path(0).path("id").asText();
    }

    /** Runs all prompts at {@code rate} requests/s (Poisson; infinity = all at once) and waits for every answer. */
    public RateResult run(String model, double rate) throws InterruptedException {
        SplittableRandom arrivals = new SplittableRandom(options.seed() ^ 0x5DEECE66DL);
        Semaphore slots = options.maxConcurrency() > 0 ? new Semaphore(options.maxConcurrency()) : null;
        List<Future<RequestRecord>> futures = new ArrayList<>();
        long start = System.nanoTime();
        try (ExecutorService clients = Executors.newVirtualThreadPerTaskExecutor()) {
            long next = start;
            for (int i = 0; i < options.numPrompts(); i++) {
                if (rate != Double.POSITIVE_INFINITY) {
                    next += (long) (-Math.log(1 - arrivals.nextDouble()) / rate * 1e9);
                    long wait = next - System.nanoTime();
                    if (wait > 0) LockSupport.parkNanos(wait);
                }
                if (slots != null) slots.acquire();
                int index = i;
                futures.add(clients.submit(() -> {
                    try {
                        return send(requestBody(model, index));
                    } finally {
                        if (slots != null) slots.release();
                    }
                }));
            }
            List<RequestRecord> records = new ArrayList<>();
            for (Future<RequestRecord> f : futures) {
                try {
                    records.add(f.get());
                } catch (ExecutionException e) {
                    records.add(RequestRecord.failed(String.valueOf(e.getCause()), Double.NaN));
                }
            }
            double seconds = (System.nanoTime() - start) / 1e9;
            return RateResult.of(rate, options.maxConcurrency(), seconds, records);
        }
    }

    /** The chat request for prompt {@code index}: seeded words and {@code numImages} distinct seeded images. */
    byte[] requestBody(String model, int index) {
        SplittableRandom rnd = new SplittableRandom(options.seed() * 1_000_003L + index);
        StringBuilder text = new StringBuilder();
        for (int w = 0; w < options.inputLen(); w++) {
            if (w > 0) text.append(' ');
            text.append(WORDS[rnd.nextInt(WORDS.length)]);
        }
        ObjectNode body = JSON.createObjectNode();
        body.put("model", model);
        body.put("max_tokens", options.outputLen());
        body.put("temperature", options.temperature());
        if (options.ignoreEos()) body.put("ignore_eos", true);
        body.put("stream", true);
        body.putObject("stream_options").put("include_usage", true);
        ArrayNode content = body.putArray("messages").addObject().put("role", "user").putArray("content");
        for (int k = 0; k < options.numImages(); k++)
            content.addObject().put("type", "image_url").putObject("image_url")
                    .put("url", dataUrl(rnd, index * options.numImages() + k));
        content.addObject().put("type", "text").put("text", text.toString());
        try {
            return JSON.writeValueAsBytes(body);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** A file of {@code --image-dir} in turn, else a random mosaic (distinct per request, so no cache hits). */
    private String dataUrl(SplittableRandom rnd, int n) {
        try {
            if (!options.imageFiles().isEmpty()) {
                Path file = options.imageFiles().get(n % options.imageFiles().size());
                String name = file.getFileName().toString().toLowerCase(java.util.Locale.ROOT);
                String type = name.endsWith(".png") ? "image/png" : name.endsWith(".webp") ? "image/webp" : "image/jpeg";
                return "data:" + type + ";base64," + Base64.getEncoder().encodeToString(Files.readAllBytes(file));
            }
            int side = options.imageSize();
            BufferedImage img = new BufferedImage(side, side, BufferedImage.TYPE_INT_RGB);
            int cell = Math.max(1, side / 12);
            for (int y = 0; y < side; y += cell)
                for (int x = 0; x < side; x += cell) {
                    int rgb = rnd.nextInt(1 << 24);
                    for (int yy = y; yy < Math.min(side, y + cell); yy++)
                        for (int xx = x; xx < Math.min(side, x + cell); xx++) img.setRGB(xx, yy, rgb);
                }
            ByteArrayOutputStream png = new ByteArrayOutputStream();
            ImageIO.write(img, "png", png);
            return "data:image/png;base64," + Base64.getEncoder().encodeToString(png.toByteArray());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private RequestRecord send(byte[] body) {
        HttpRequest.Builder b = HttpRequest.newBuilder(options.baseUrl().resolve(options.endpoint()))
                .timeout(options.timeout()).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofByteArray(body));
        if (options.apiKey() != null) b.header("Authorization", "Bearer " + options.apiKey());
        long t0 = System.nanoTime();
        try {
            HttpResponse<Stream<String>> response = http.send(b.build(), HttpResponse.BodyHandlers.ofLines());
            try (Stream<String> lines = response.body()) {
                if (response.statusCode() != 200) {
                    String text = String.join("\n", lines.limit(20).toList());
                    return RequestRecord.failed("HTTP " + response.statusCode() + ": " + text, seconds(t0));
                }
                double ttft = Double.NaN;
                double last = Double.NaN;
                List<Double> gaps = new ArrayList<>();
                int chunks = 0;
                int promptTokens = 0;
                int completionTokens = -1;
                boolean done = false;
                for (Iterator<String> it = lines.iterator(); it.hasNext(); ) {
                    String line = it.next();
                    if (!line.startsWith("data:")) continue;
                    String data = line.substring(5).trim();
                    if (data.equals("[DONE]")) {
                        done = true;
                        break;
                    }
                    double now = seconds(t0);
                    JsonNode chunk = JSON.readTree(data);
                    if (chunk.has("error"))
                        return RequestRecord.failed("error event: " + chunk.path("error").path("message").asText(), now);
                    JsonNode usage = chunk.path("usage");
                    if (usage.isObject()) {
                        promptTokens = usage.path("prompt_tokens").asInt();
                        completionTokens = usage.path("completion_tokens").asInt();
                    }
                    JsonNode delta = chunk.path("choices").path(0).path("delta");
                    String piece = delta.path("content").asText("") + delta.path("reasoning_content").asText("");
                    if (piece.isEmpty()) continue;
                    chunks++;
                    if (Double.isNaN(ttft)) ttft = now;
                    else gaps.add(now - last);
                    last = now;
                }
                double latency = seconds(t0);
                if (!done) return RequestRecord.failed("stream ended without [DONE]", latency);
                return new RequestRecord(true, null, ttft, latency, gaps.stream().mapToDouble(Double::doubleValue).toArray(),
                        promptTokens, completionTokens >= 0 ? completionTokens : chunks);
            }
        } catch (IOException e) {
            return RequestRecord.failed(e.getClass().getSimpleName() + ": " + e.getMessage(), seconds(t0));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return RequestRecord.failed("interrupted", seconds(t0));
        }
    }

    private static double seconds(long t0) {
        return (System.nanoTime() - t0) / 1e9;
    }
}
