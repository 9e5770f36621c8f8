package dev.retina.server.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.retina.server.config.ConfigException;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintStream;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.Stream;

/**
 * {@code retina bench serve}: vLLM's benchmark_serving for vision chat, against any OpenAI-compatible server.
 * Streams chat requests with {@code data:} URL images at one or more request rates and prints, per rate, requests/s,
 * output and total tokens/s and mean/median/P99 TTFT, TPOT, ITL and end-to-end latency; a sweep adds a summary table
 * and, with {@code --plot}, a PNG of latency against achieved request rate. No pass or fail.
 */
@Command(name = "serve", mixinStandardHelpOptions = true, showDefaultValues = true,
        description = "Benchmark a running OpenAI-compatible server over HTTP (streamed chat with images).")
public final class BenchServeCommand implements Callable<Integer> {
    @Option(names = "--base-url", defaultValue = "http://127.0.0.1:8000", description = "The server's base URL.")
    String baseUrl;

    @Option(names = "--endpoint", defaultValue = "/v1/chat/completions", description = "The chat completions path.")
    String endpoint;

    @Option(names = "--model", description = "Model name sent in requests (default: the first of GET /v1/models).")
    String model;

    @Option(names = "--api-key", description = "Bearer key (default: the OPENAI_API_KEY environment variable).")
    String apiKey;

    @Option(names = {"--num-prompts", "--num-requests"}, defaultValue = "200", description = "Requests per rate.")
    int numPrompts;

    @Option(names = "--request-rate", defaultValue = "inf", split = ",",
            description = "Requests/s with Poisson arrivals, 'inf' for all at once; a comma list runs a sweep.")
    List<String> requestRates;

    @Option(names = "--max-concurrency", defaultValue = "0", description = "Requests in flight at most (0: no limit).")
    int maxConcurrency;

    @Option(names = "--input-len", defaultValue = "30", description = "Words of text per prompt (besides images).")
    int inputLen;

    @Option(names = "--output-len", defaultValue = "128", description = "max_tokens per request.")
    int outputLen;

    @Option(names = "--ignore-eos", defaultValue = "true", negatable = true, fallbackValue = "true",
            description = "Send ignore_eos so every request yields --output-len tokens (vLLM's extension).")
    boolean ignoreEos;

    @Option(names = "--temperature", defaultValue = "0", description = "Sampling temperature.")
    double temperature;

    @Option(names = "--num-images", defaultValue = "1", description = "Images per request, as data: URLs.")
    int numImages;

    @Option(names = "--image-size", defaultValue = "336", description = "Side of the generated random-mosaic images.")
    int imageSize;

    @Option(names = "--image-dir", description = "Send these JPEG/PNG/WebP files in turn instead of generated images.")
    Path imageDir;

    @Option(names = "--seed", defaultValue = "0", description = "Seed of prompts, images and arrival times.")
    long seed;

    @Option(names = "--timeout", defaultValue = "600", description = "Seconds a request may wait for its headers.")
    int timeoutSeconds;

    @Option(names = "--save-result", description = "Write every rate's metrics and per-request numbers as JSON here.")
    Path saveResult;

    @Option(names = "--plot", description = "Write a PNG of latency against achieved request rate here.")
    Path plot;

    @Option(names = "--plot-from", description = "Send nothing: print the sweep table (and --plot) from a "
            + "--save-result file.")
    Path plotFrom;

    /** Where the tables go; replaced in tests. */
    PrintStream out = System.out;

    @Override
    public Integer call() throws Exception {
        if (plotFrom != null) return replot();
        List<Double> rates = new ArrayList<>();
        List<Path> images = new ArrayList<>();
        try {
            for (String r : requestRates) rates.add(parseRate(r.trim()));
            if (numPrompts < 1) throw new ConfigException("--num-prompts must be >= 1");
            if (outputLen < 1) throw new ConfigException("--output-len must be >= 1");
            if (numImages < 0 || inputLen < 0) throw new ConfigException("--num-images and --input-len must be >= 0");
            if (maxConcurrency < 0) throw new ConfigException("--max-concurrency must be >= 0");
            if (imageDir != null) {
                try (Stream<Path> files = Files.list(imageDir)) {
                    files.filter(p -> p.getFileName().toString().toLowerCase(Locale.ROOT).matches(".*\\.(jpe?g|png|webp)"))
                            .sorted().forEach(images::add);
                }
                if (images.isEmpty()) throw new ConfigException("--image-dir " + imageDir + " holds no JPEG, PNG or WebP");
            }
        } catch (ConfigException | IOException e) {
            System.err.println("retina bench serve: " + e.getMessage());
            return 2;
        }
        String key = apiKey != null ? apiKey : System.getenv("OPENAI_API_KEY");
        URI base = URI.create(baseUrl.endsWith("/") ? baseUrl.substring(0, baseUrl.length() - 1) : baseUrl);
        ServeBenchmark bench = new ServeBenchmark(new ServeBenchmark.Options(base, endpoint, model, key, numPrompts,
                inputLen, outputLen, numImages, imageSize, images, seed, maxConcurrency, ignoreEos, temperature,
                Duration.ofSeconds(timeoutSeconds)));
        String served;
        try {
            served = bench.resolveModel();
        } catch (IOException e) {
            System.err.println("retina bench serve: cannot reach " + base + ": " + e.getMessage());
            return 1;
        }
        out.printf(Locale.ROOT, "retina bench serve: %s%s, model %s, %d prompts per rate, %d words + %d image(s) "
                        + "(%s), max_tokens %d%s%n", base, endpoint, served, numPrompts, inputLen, numImages,
                images.isEmpty() ? imageSize + "px random mosaics" : images.size() + " files of " + imageDir, outputLen,
                ignoreEos ? " (ignore_eos)" : "");
        List<RateResult> results = new ArrayList<>();
        for (double rate : rates) {
            RateResult r = bench.run(served, rate);
            results.add(r);
            out.println();
            r.print(out);
        }
        if (results.size() > 1) {
            out.println();
            RateResult.printSweep(out, results);
        }
        if (saveResult != null) {
            Map<String, Object> json = new LinkedHashMap<>();
            json.put("base_url", base.toString());
            json.put("model", served);
            json.put("num_prompts", numPrompts);
            json.put("input_words", inputLen);
            json.put("output_len", outputLen);
            json.put("num_images", numImages);
            json.put("seed", seed);
            json.put("results", results.stream().map(RateResult::toJson).toList());
            new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(saveResult.toFile(), json);
            out.println("saved " + saveResult);
        }
        if (plot != null) plot(plot, "retina bench serve: " + served + " at " + base + ", " + numPrompts
                + " prompts per rate, max_tokens " + outputLen, results);
        return results.stream().allMatch(r -> r.completed() > 0) ? 0 : 1;
    }

    /** Draws the sweep; a host without fonts (a bare GPU machine) gets a message, not a stack trace. */
    private void plot(Path file, String title, List<RateResult> results) {
        try {
            BenchPlot.write(file, title, results);
            out.println("plotted " + file);
        } catch (IOException | RuntimeException | Error e) {
            if (e instanceof VirtualMachineError vme) throw vme;
            System.err.println("retina bench serve: could not draw " + file + " (" + e.getMessage() + "); on a host "
                    + "without fonts install fontconfig and a font, or draw it elsewhere from --save-result's file: "
                    + "retina bench serve --plot-from RESULT.json --plot " + file);
        }
    }

    /** {@code --plot-from}: the sweep table and the plot from a saved result, no requests sent. */
    private int replot() throws IOException {
        com.fasterxml.jackson.databind.JsonNode json = new ObjectMapper().readTree(plotFrom.toFile());
        List<RateResult> results = new ArrayList<>();
        for (com.fasterxml.jackson.databind.JsonNode r : json.path("results")) results.add(RateResult.fromJson(r));
        RateResult.printSweep(out, results);
        if (plot != null) plot(plot, "retina bench serve: " + json.path("model").asText() + " at "
                + json.path("base_url").asText() + ", " + json.path("num_prompts").asInt() + " prompts per rate, "
                + "max_tokens " + json.path("output_len").asInt(), results);
        return 0;
    }

    static double parseRate(String value) {
        if (value.equalsIgnoreCase("inf")) return Double.POSITIVE_INFINITY;
        try {
            double r = Double.parseDouble(value);
            if (r > 0 && !Double.isInfinite(r)) return r;
        } catch (NumberFormatException ignored) {
            // reported below
        }
        throw new ConfigException("--request-rate must be 'inf' or positive numbers, got '" + value + "'");
    }
}
