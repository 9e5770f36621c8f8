package dev.retina.server;

import dev.retina.server.bench.Stats;
import dev.retina.server.config.ConfigException;
import dev.retina.server.config.Device;
import dev.retina.server.config.EngineArgs;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

class BenchCommandTest {
    @Test
    void percentilesInterpolateLikeNumpy() {
        double[] v = {5, 1, 4, 2, 3};
        assertEquals(3.0, Stats.percentile(v, 50), 1e-12);
        assertEquals(4.96, Stats.percentile(v, 99), 1e-12); // np.percentile([1..5], 99)
        assertEquals(1.0, Stats.percentile(v, 0), 1e-12);
        assertEquals(3.0, Stats.mean(v), 1e-12);
    }

    @Test
    void offlineRunsOnLargeGpusDefaultToVllmsLlmClassBatchedTokens() {
        assertEquals(8192, EngineArgs.offlineMaxNumBatchedTokens(0)); // CPU
        assertEquals(8192, EngineArgs.offlineMaxNumBatchedTokens(40L << 30)); // e.g. an A100-40GB
        assertEquals(16384, EngineArgs.offlineMaxNumBatchedTokens(80L << 30)); // H100
        assertEquals(16384, EngineArgs.offlineMaxNumBatchedTokens(141L << 30)); // H200
        assertEquals(0, BenchCommand.gpuBytes(Device.CPU));
        BenchCommand bench = new BenchCommand();
        new CommandLine(bench).setCaseInsensitiveEnumValuesAllowed(true).parseArgs("--device", "cpu");
        assertEquals(16384, bench.engine.engineArgs(16384).maxNumBatchedTokens());
        new CommandLine(bench = new BenchCommand()).setCaseInsensitiveEnumValuesAllowed(true).parseArgs("--max-num-batched-tokens", "4096");
        assertEquals(4096, bench.engine.engineArgs(16384).maxNumBatchedTokens(), "an explicit flag wins");
    }

    @Test
    void checksumFollowsEveryTokenAndTheRequestOrder() {
        java.util.function.Function<int[][], java.util.List<dev.retina.server.offline.RequestResult>> results = ids -> {
            java.util.List<dev.retina.server.offline.RequestResult> out = new java.util.ArrayList<>();
            for (int i = 0; i < ids.length; i++)
                out.add(new dev.retina.server.offline.RequestResult("r" + i, new int[] {1},
                        java.util.List.of(new dev.retina.server.offline.CompletionOutput(0, "", ids[i],
                                dev.retina.engine.FinishReason.LENGTH, null)),
                        new dev.retina.server.offline.RequestMetrics(0, 1, 2)));
            return out;
        };
        long base = BenchCommand.tokenChecksum(results.apply(new int[][] {{3, 4}, {5}}));
        assertEquals(base, BenchCommand.tokenChecksum(results.apply(new int[][] {{3, 4}, {5}})));
        assertTrue(base != BenchCommand.tokenChecksum(results.apply(new int[][] {{3, 4}, {6}})), "one token differs");
        assertTrue(base != BenchCommand.tokenChecksum(results.apply(new int[][] {{5}, {3, 4}})), "another order");
    }

    @Test
    void twoGreedyRunsPrintTheSameOutputChecksum() {
        Path model = Path.of(System.getProperty("retina.fixtures", "src/test/resources/fixtures"))
                .resolve("models/llava15-336-mha");
        assumeTrue(Files.isRegularFile(model.resolve("config.json")), "fixtures not present");
        String[] sums = new String[2];
        for (int run = 0; run < 2; run++) {
            BenchCommand bench = new BenchCommand();
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            bench.out = new PrintStream(bytes, true, StandardCharsets.UTF_8);
            int rc = new CommandLine(bench).setCaseInsensitiveEnumValuesAllowed(true).execute("--model",
                    model.toString(), "--device", "cpu", "--num-requests", "2", "--output-len", "3", "--num-warmup",
                    "0", "--max-num-seqs", "2", "--num-gpu-blocks-override", "256", "--temperature", "0");
            String table = bytes.toString(StandardCharsets.UTF_8);
            assertEquals(0, rc, table);
            assertTrue(table.contains("output 3 tokens, temperature 0 (greedy),"), table);
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("output tokens checksum: ([0-9a-f]{16})")
                    .matcher(table);
            assertTrue(m.find(), table);
            sums[run] = m.group(1);
        }
        assertEquals(sums[0], sums[1], "the same prompts, greedy, on the CPU: the same tokens");
    }

    @Test
    void temperatureMustNotBeNegative() {
        BenchCommand bench = new BenchCommand();
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        bench.out = new PrintStream(bytes, true, StandardCharsets.UTF_8);
        java.io.PrintStream err = System.err;
        ByteArrayOutputStream errBytes = new ByteArrayOutputStream();
        System.setErr(new PrintStream(errBytes, true, StandardCharsets.UTF_8));
        try {
            int rc = new CommandLine(bench).setCaseInsensitiveEnumValuesAllowed(true)
                    .execute("--device", "cpu", "--temperature", "-0.5");
            assertEquals(2, rc);
        } finally {
            System.setErr(err);
        }
        assertTrue(errBytes.toString(StandardCharsets.UTF_8).contains("--temperature must be >= 0, got -0.5"),
                errBytes.toString(StandardCharsets.UTF_8));
        assertEquals("", bytes.toString(StandardCharsets.UTF_8), "nothing loaded or printed");
    }

    @Test
    void requestRateIsInfOrPositive() {
        assertEquals(Double.POSITIVE_INFINITY, BenchCommand.parseRate("inf"));
        assertEquals(2.5, BenchCommand.parseRate("2.5"));
        assertThrows(ConfigException.class, () -> BenchCommand.parseRate("0"));
        assertThrows(ConfigException.class, () -> BenchCommand.parseRate("fast"));
    }

    @Test
    void benchOnTheFixturePrintsEveryMetricAndCountsExactOutputTokens() {
        Path model = Path.of(System.getProperty("retina.fixtures", "src/test/resources/fixtures"))
                .resolve("models/llava15-336-mha");
        assumeTrue(Files.isRegularFile(model.resolve("config.json")), "fixtures not present");
        BenchCommand bench = new BenchCommand();
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        bench.out = new PrintStream(bytes, true, StandardCharsets.UTF_8);
        int rc = new CommandLine(bench).setCaseInsensitiveEnumValuesAllowed(true).execute("--model", model.toString(),
                "--device", "cpu", "--num-requests", "4", "--output-len", "3", "--num-warmup", "1",
                "--max-num-seqs", "4", "--num-gpu-blocks-override", "256");
        String table = bytes.toString(StandardCharsets.UTF_8);
        assertEquals(0, rc, table);
        assertTrue(table.contains("prompt 591 tokens (576 image tokens), output 3 tokens, temperature 1.0,"), table);
        assertTrue(table.contains("max-num-batched-tokens 8192;"), "the CPU keeps the serving default:\n" + table);
        for (String metric : new String[]{"requests/s", "output tokens/s", "mean TTFT (ms)", "P50 TTFT (ms)",
                "P99 TTFT (ms)", "mean TPOT (ms)", "P50 TPOT (ms)", "P99 TPOT (ms)", "total time (s)"})
            assertTrue(table.contains("| " + metric), metric + " missing:\n" + table);
        assertTrue(table.matches("(?s).*\\| requests +\\| +4 \\|.*"), table);
        assertTrue(table.matches("(?s).*output tokens checksum: [0-9a-f]{16} .*"), table);
        // every request's prompt goes through at least one step with prompt tokens, and its 3 tokens take 3 steps
        // (one token per step; whether later ones are decode-only depends on when the other prompts arrived)
        java.util.regex.Matcher steps = java.util.regex.Pattern.compile(
                "engine steps: (\\d+) with prompt tokens \\(.*\\), (\\d+) decode-only").matcher(table);
        assertTrue(steps.find(), table);
        assertTrue(Integer.parseInt(steps.group(1)) >= 1, table);
        assertTrue(Integer.parseInt(steps.group(1)) + Integer.parseInt(steps.group(2)) >= 3, table);
        // the last request's 2nd and 3rd tokens come from decode-only steps, whose host phases are printed
        assertTrue(Integer.parseInt(steps.group(2)) >= 2, table);
        assertTrue(table.matches("(?s).*decode-only step phases, host µs per step .*: schedule [0-9.]+, inputs [0-9.]+,"
                + " forward [0-9.]+, sample [0-9.]+, update [0-9.]+, outputs [0-9.]+\\n.*"), table);
    }

    @Test
    void sequentialModeSendsOneRequestAtATimeSoTtftHoldsNoQueueing() {
        Path model = Path.of(System.getProperty("retina.fixtures", "src/test/resources/fixtures"))
                .resolve("models/llava15-336-mha");
        assumeTrue(Files.isRegularFile(model.resolve("config.json")), "fixtures not present");
        BenchCommand bench = new BenchCommand();
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        bench.out = new PrintStream(bytes, true, StandardCharsets.UTF_8);
        int rc = new CommandLine(bench).setCaseInsensitiveEnumValuesAllowed(true).execute("--model", model.toString(),
                "--device", "cpu", "--num-requests", "3", "--output-len", "4", "--num-warmup", "1", "--sequential",
                "--max-num-seqs", "4", "--num-gpu-blocks-override", "256");
        String table = bytes.toString(StandardCharsets.UTF_8);
        assertEquals(0, rc, table);
        assertTrue(table.contains("rate sequential"), table);
        double totalMs = metric(table, "total time (s)") * 1e3;
        // One at a time, the requests' lifetimes (TTFT, then 3 more tokens) do not overlap, so together they fit in
        // the run: 3 x (mean TTFT + 3 x mean TPOT) <= total (+5 ms: the total is printed in hundredths of a second).
        // All at once they overlap and the sum exceeds the run (each TTFT then includes the others' prefill).
        double lifetimesMs = 3 * (metric(table, "mean TTFT (ms)") + 3 * metric(table, "mean TPOT (ms)"));
        assertTrue(lifetimesMs <= totalMs + 5, lifetimesMs + " ms of request lifetimes in a " + totalMs + " ms run\n" + table);
        assertTrue(metric(table, "P50 TTFT (ms)") > 0, table);
    }

    private static double metric(String table, String name) {
        for (String line : table.split("\n"))
            if (line.startsWith("| " + name)) return Double.parseDouble(line.split("\\|")[2].trim());
        throw new AssertionError(name + " missing:\n" + table);
    }

    @Test
    void aPromptTooShortForTheImageIsRefused() {
        BenchCommand bench = new BenchCommand();
        bench.out = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
        int rc = new CommandLine(bench).setCaseInsensitiveEnumValuesAllowed(true).execute("--device", "cpu",
                "--prompt-len", "40", "--num-requests", "1", "--num-gpu-blocks-override", "256");
        assertEquals(2, rc);
    }
}
