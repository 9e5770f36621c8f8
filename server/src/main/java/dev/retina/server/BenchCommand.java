package dev.retina.server;

import ai.djl.util.cuda.CudaUtils;
import dev.retina.engine.EngineStats;
import dev.retina.engine.StepPhases;
import dev.retina.engine.SamplingParams;
import dev.retina.server.bench.BenchServeCommand;
import dev.retina.server.bench.Stats;
import dev.retina.server.config.ConfigException;
import dev.retina.server.config.Device;
import dev.retina.server.config.EngineArgs;
import dev.retina.server.config.ServerConfig;
import dev.retina.server.config.VlmConfig;
import dev.retina.server.offline.CompletionOutput;
import dev.retina.server.offline.ImagePixelData;
import dev.retina.server.offline.LLM;
import dev.retina.server.offline.Prompt;
import dev.retina.server.offline.RequestResult;
import dev.retina.vision.RgbImage;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.PrintStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.locks.LockSupport;

/**
 * {@code retina bench}: runs synthetic requests through the batching engine offline ({@link LLM}) and prints a
 * table of throughput and latency (vLLM's benchmark_throughput/benchmark_serving numbers). No pass or fail.
 *
 * <p>Prompts are random token ids (no tokenizer needed), each optionally starting with one image of random pixels;
 * every request samples (temperature 1 by default, as vLLM's offline benchmark; seeded) exactly {@code --output-len}
 * tokens with EOS ignored. {@code --temperature 0} samples greedily, as Hugging Face's {@code generate} does by default.
 */
@Command(name = "bench", mixinStandardHelpOptions = true, showDefaultValues = true,
        subcommands = BenchServeCommand.class,
        description = "Benchmark the engine offline on synthetic requests; prints requests/s, tokens/s, TTFT, TPOT. "
                + "'bench serve' benchmarks a running server over HTTP instead.")
public final class BenchCommand implements Callable<Integer> {
    @Option(names = {"--num-prompts", "--num-requests"}, defaultValue = "64", description = "Requests to time.")
    int numRequests;

    @Option(names = "--prompt-len", description = "Prompt tokens per request, image tokens included (default: one image's tokens + 15 with --num-images 1, else 64).")
    Integer promptLen;

    @Option(names = "--output-len", defaultValue = "32", description = "Output tokens per request (EOS ignored).")
    int outputLen;

    @Option(names = "--num-images", defaultValue = "1", description = "Images per request: 0 or 1 (random pixels).")
    int numImages;

    @Option(names = "--request-rate", defaultValue = "inf",
            description = "Requests per second, Poisson arrivals; 'inf' submits all at once.")
    String requestRate;

    @Option(names = "--sequential", description = "Send each request only after the previous one finished "
            + "(single-stream latency: TTFT without queueing); overrides --request-rate.")
    boolean sequential;

    @Option(names = "--temperature", defaultValue = "1", description = "Sampling temperature of every request "
            + "(1: vLLM's offline benchmark; 0: greedy, as transformers' generate by default).")
    float temperature;

    @Option(names = "--num-warmup", defaultValue = "2", description = "Untimed requests run first (JIT, allocator).")
    int numWarmup;

    @Mixin
    ModelOptions modelOptions = new ModelOptions();

    @Mixin
    EngineOptions engine = new EngineOptions();

    /** Total memory of the GPU a run on {@code device} would use; 0 for the CPU or where no GPU is visible. */
    static long gpuBytes(Device device) {
        if (device == Device.CPU || CudaUtils.getGpuCount() == 0) return 0;
        return CudaUtils.getGpuMemory(ai.djl.Device.gpu()).getMax();
    }

    /** Where the table goes; replaced in tests. */
    PrintStream out = System.out;

    @Override
    public Integer call() throws Exception {
        double rate;
        try {
            rate = parseRate(requestRate);
            if (numImages < 0 || numImages > 1) throw new ConfigException("--num-images must be 0 or 1, got " + numImages);
            if (numRequests < 1) throw new ConfigException("--num-requests must be >= 1");
            if (outputLen < 1) throw new ConfigException("--output-len must be >= 1");
            if (numWarmup < 0) throw new ConfigException("--num-warmup must be >= 0");
            if (!(temperature >= 0)) throw new ConfigException("--temperature must be >= 0, got " + temperature);
        } catch (ConfigException e) {
            System.err.println("retina bench: " + e.getMessage());
            return 2;
        }
        ModelOptions m = modelOptions;
        ServerConfig config = new ServerConfig(m.model, null, "127.0.0.1", 0, null, m.dtype, m.device, m.maxModelLen,
                m.seed, m.loadFormat, VlmConfig.defaults(), Duration.ofSeconds(5), 20 << 20, 20L << 20,
                engine.engineArgs(EngineArgs.offlineMaxNumBatchedTokens(gpuBytes(m.device))));
        long loadStart = System.nanoTime();
        try (LLM llm = new LLM(config)) {
            double loadSeconds = (System.nanoTime() - loadStart) / 1e9;
            int numImageTokens = llm.numImageTokens();
            int len = promptLen != null ? promptLen : numImages > 0 ? numImageTokens + 15 : 64;
            if (len < numImages * numImageTokens + 1 || len + outputLen > llm.maxModelLen())
                throw new ConfigException("--prompt-len " + len + " must hold " + numImages * numImageTokens
                        + " image tokens plus one text token, and with --output-len " + outputLen + " fit the model's "
                        + llm.maxModelLen() + " tokens");
            SplittableRandom rnd = new SplittableRandom(modelOptions.seed);
            List<Prompt> prompts = new ArrayList<>();
            for (int i = 0; i < numWarmup + numRequests; i++) prompts.add(prompt(llm, rnd, len, i));

            out.printf(Locale.ROOT, "retina bench: model %s (%s), %s %s, %d KV blocks of %d%n", modelOptions.model,
                    modelOptions.loadFormat.name().toLowerCase(Locale.ROOT), llm.deviceName(), llm.dtypeName(), llm.numKvBlocks(),
                    config.engine().blockSize());
            out.printf(Locale.ROOT, "  %d requests, prompt %d tokens (%d image tokens), output %d tokens, temperature %s,"
                            + " rate %s, max-num-seqs %d, max-num-batched-tokens %d; model load %.1f s%n", numRequests,
                    len, numImages * numImageTokens, outputLen, temperature == 0 ? "0 (greedy)" : Float.toString(temperature),
                    sequential ? "sequential" : requestRate, config.engine().maxNumSeqs(),
                    config.engine().maxNumBatchedTokens(), loadSeconds);
            if (numWarmup > 0) llm.generate(prompts.subList(0, numWarmup));
            EngineStats before = llm.engineStats();
            long preemptionsBefore = before.numPreemptions();

            long start = System.nanoTime();
            List<CompletableFuture<RequestResult>> futures = new ArrayList<>();
            long nextArrival = start;
            for (int i = 0; i < numRequests; i++) {
                if (sequential) {
                    if (!futures.isEmpty()) futures.getLast().join();
                } else if (rate != Double.POSITIVE_INFINITY) {
                    // Poisson process: exponential gaps with mean 1/rate.
                    nextArrival += (long) (-Math.log(1 - rnd.nextDouble()) / rate * 1e9);
                    long wait = nextArrival - System.nanoTime();
                    if (wait > 0) LockSupport.parkNanos(wait);
                }
                futures.add(llm.submit(prompts.get(numWarmup + i)));
            }
            List<RequestResult> results = new ArrayList<>();
            for (CompletableFuture<RequestResult> f : futures) results.add(f.join());
            double seconds = (System.nanoTime() - start) / 1e9;
            EngineStats stats = llm.engineStats();
            printTable(out, results, seconds, len, stats.numPreemptions() - preemptionsBefore);
            out.printf(Locale.ROOT, "output tokens checksum: %016x (requests in order; seeded sampling, so two runs with"
                    + " the same flags and model give the same value)%n", tokenChecksum(results));
            long prompt = stats.numPromptSteps() - before.numPromptSteps();
            long decode = stats.numDecodeSteps() - before.numDecodeSteps();
            double promptS = (stats.promptStepNanos() - before.promptStepNanos()) / 1e9;
            double decodeS = (stats.decodeStepNanos() - before.decodeStepNanos()) / 1e9;
            out.printf(Locale.ROOT, "engine steps: %d with prompt tokens (%.2f s, %.1f ms each), %d decode-only "
                            + "(%.2f s, %.1f ms each); %.2f s outside steps%n", prompt, promptS,
                    prompt == 0 ? 0 : promptS * 1e3 / prompt, decode, decodeS, decode == 0 ? 0 : decodeS * 1e3 / decode,
                    seconds - promptS - decodeS);
            StepPhases phases = stats.decodePhases().minus(before.decodePhases());
            if (phases.steps() > 0)
                out.printf(Locale.ROOT, "decode-only step phases, host µs per step (the sample phase waits for the"
                        + " device): %s%n", phases.perStepMicros());
        } catch (ConfigException e) {
            System.err.println("retina bench: " + e.getMessage());
            return 2;
        }
        return 0;
    }

    private Prompt prompt(LLM llm, SplittableRandom rnd, int len, int index) {
        int[] ids = new int[len];
        int k = 0;
        int imageTokenId = llm.imageTokenId();
        if (numImages > 0) for (; k < llm.numImageTokens(); k++) ids[k] = imageTokenId;
        for (; k < len; k++) {
            int id;
            do id = rnd.nextInt(llm.vocabSize()); while (id == imageTokenId);
            ids[k] = id;
        }
        SamplingParams params = new SamplingParams(1, temperature, 1f, -1, 0f, modelOptions.seed + index, 0f, 0f, 1f, outputLen, 0,
                List.of(), true, null);
        if (numImages == 0) return Prompt.ofTokens(ids, params);
        int side = llm.imageSize();
        byte[] rgb = new byte[3 * side * side];
        rnd.nextBytes(rgb);
        return Prompt.ofTokens(ids, params, ImagePixelData.of(new RgbImage(side, side, rgb)));
    }

    /** A hash of every request's output token ids, in request order: compares two runs' outputs at a glance. */
    static long tokenChecksum(List<RequestResult> results) {
        long h = 1;
        for (RequestResult r : results)
            for (CompletionOutput o : r.outputs()) {
                h = 31 * h + o.index();
                for (int t : o.tokenIds()) h = 31 * h + t;
            }
        return h;
    }

    static void printTable(PrintStream out, List<RequestResult> results, double seconds, int promptLen,
                           long preemptions) {
        double[] ttft = new double[results.size()];
        double[] tpot = new double[results.size()];
        long outputTokens = 0;
        for (int i = 0; i < results.size(); i++) {
            RequestResult r = results.get(i);
            int n = r.outputs().getFirst().tokenIds().length;
            outputTokens += n;
            ttft[i] = r.metrics().ttftSeconds() * 1e3;
            tpot[i] = r.metrics().tpotSeconds(n) * 1e3;
        }
        String row = "| %-26s | %12s |%n";
        out.printf(Locale.ROOT, row, "metric", "value");
        out.printf(Locale.ROOT, "| %s | %s |%n", "-".repeat(26), "-".repeat(11) + ":");
        out.printf(Locale.ROOT, row, "requests", results.size());
        out.printf(Locale.ROOT, row, "total time (s)", fmt(seconds));
        out.printf(Locale.ROOT, row, "requests/s", fmt(results.size() / seconds));
        out.printf(Locale.ROOT, row, "output tokens/s", fmt(outputTokens / seconds));
        out.printf(Locale.ROOT, row, "total tokens/s (in+out)", fmt((outputTokens + (long) promptLen * results.size()) / seconds));
        out.printf(Locale.ROOT, row, "mean TTFT (ms)", fmt(Stats.mean(ttft)));
        out.printf(Locale.ROOT, row, "P50 TTFT (ms)", fmt(Stats.percentile(ttft, 50)));
        out.printf(Locale.ROOT, row, "P99 TTFT (ms)", fmt(Stats.percentile(ttft, 99)));
        out.printf(Locale.ROOT, row, "mean TPOT (ms)", fmt(Stats.mean(tpot)));
        out.printf(Locale.ROOT, row, "P50 TPOT (ms)", fmt(Stats.percentile(tpot, 50)));
        out.printf(Locale.ROOT, row, "P99 TPOT (ms)", fmt(Stats.percentile(tpot, 99)));
        out.printf(Locale.ROOT, row, "preemptions", preemptions);
    }

    private static String fmt(double v) {
        return String.format(Locale.ROOT, v >= 100 ? "%.1f" : "%.2f", v);
    }

    static double parseRate(String value) {
        if (value.equalsIgnoreCase("inf")) return Double.POSITIVE_INFINITY;
        try {
            double r = Double.parseDouble(value);
            if (r > 0) return r;
        } catch (NumberFormatException ignored) {
            // reported below
        }
        throw new ConfigException("--request-rate must be 'inf' or a positive number, got '" + value + "'");
    }
}
