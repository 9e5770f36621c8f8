package dev.retina.server.bench;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * One rate of a serving benchmark: counts, throughputs and latency statistics over the requests that completed
 * (failed ones are counted and their first errors kept). Latencies in milliseconds.
 */
public record RateResult(double requestRate, int maxConcurrency, double durationSeconds, int completed, int failed,
                         long totalInputTokens, long totalOutputTokens, double requestThroughput,
                         double outputThroughput, double totalTokenThroughput, Map<String, Double> latencyMs,
                         List<String> errors, List<RequestRecord> records) {

    static RateResult of(double rate, int maxConcurrency, double seconds, List<RequestRecord> records) {
        List<RequestRecord> ok = records.stream().filter(RequestRecord::ok).toList();
        List<String> errors = new ArrayList<>();
        for (RequestRecord r : records) if (!r.ok() && errors.size() < 5) errors.add(r.error());
        long in = ok.stream().mapToLong(RequestRecord::promptTokens).sum();
        long out = ok.stream().mapToLong(RequestRecord::outputTokens).sum();
        Map<String, Double> lat = new LinkedHashMap<>();
        put(lat, "ttft", ok.stream().mapToDouble(r -> r.ttft() * 1e3).toArray());
        put(lat, "tpot", ok.stream().mapToDouble(r -> r.tpot() * 1e3).toArray());
        put(lat, "itl", ok.stream().flatMapToDouble(r -> java.util.Arrays.stream(r.itl())).map(x -> x * 1e3).toArray());
        put(lat, "e2el", ok.stream().mapToDouble(r -> r.latency() * 1e3).toArray());
        return new RateResult(rate, maxConcurrency, seconds, ok.size(), records.size() - ok.size(), in, out,
                ok.size() / seconds, out / seconds, (in + out) / seconds, lat, errors, records);
    }

    private static void put(Map<String, Double> m, String name, double[] v) {
        m.put("mean_" + name, Stats.mean(v));
        m.put("median_" + name, Stats.percentile(v, 50));
        m.put("p99_" + name, Stats.percentile(v, 99));
    }

    /** A result read back from {@link #toJson()}'s form: the aggregates only (per-request records are not kept). */
    static RateResult fromJson(com.fasterxml.jackson.databind.JsonNode r) {
        double rate = r.path("request_rate").isNumber() ? r.path("request_rate").asDouble() : Double.POSITIVE_INFINITY;
        Map<String, Double> lat = new LinkedHashMap<>();
        for (String metric : new String[] {"ttft", "tpot", "itl", "e2el"})
            for (String stat : new String[] {"mean", "median", "p99"}) {
                com.fasterxml.jackson.databind.JsonNode v = r.path(stat + "_" + metric + "_ms");
                lat.put(stat + "_" + metric, v.isNumber() ? v.asDouble() : Double.NaN);
            }
        List<String> errors = new ArrayList<>();
        r.path("errors").forEach(e -> errors.add(e.asText()));
        return new RateResult(rate, r.path("max_concurrency").asInt(0), r.path("duration").asDouble(),
                r.path("completed").asInt(), r.path("failed").asInt(), r.path("total_input_tokens").asLong(),
                r.path("total_output_tokens").asLong(), r.path("request_throughput").asDouble(),
                r.path("output_throughput").asDouble(), r.path("total_token_throughput").asDouble(), lat, errors,
                List.of());
    }

    public double latency(String key) {
        return latencyMs.getOrDefault(key, Double.NaN);
    }

    public String rateLabel() {
        return requestRate == Double.POSITIVE_INFINITY ? "inf" : fmt(requestRate);
    }

    /** The result as vLLM's {@code --save-result} spells it (records as per-request arrays). */
    public Map<String, Object> toJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("request_rate", requestRate == Double.POSITIVE_INFINITY ? "inf" : requestRate);
        m.put("max_concurrency", maxConcurrency > 0 ? maxConcurrency : null);
        m.put("duration", durationSeconds);
        m.put("completed", completed);
        m.put("failed", failed);
        m.put("total_input_tokens", totalInputTokens);
        m.put("total_output_tokens", totalOutputTokens);
        m.put("request_throughput", requestThroughput);
        m.put("output_throughput", outputThroughput);
        m.put("total_token_throughput", totalTokenThroughput);
        latencyMs.forEach((k, v) -> m.put(k + "_ms", Double.isNaN(v) ? null : v));
        m.put("errors", errors);
        m.put("ttfts", records.stream().map(r -> nullable(r.ttft())).toList());
        m.put("e2els", records.stream().map(r -> nullable(r.latency())).toList());
        m.put("input_lens", records.stream().map(RequestRecord::promptTokens).toList());
        m.put("output_lens", records.stream().map(RequestRecord::outputTokens).toList());
        return m;
    }

    private static Double nullable(double v) {
        return Double.isNaN(v) ? null : v;
    }

    /** vLLM's result block, as a two-column Markdown table. */
    public void print(PrintStream out) {
        String row = "| %-32s | %12s |%n";
        out.printf(Locale.ROOT, row, "request rate " + rateLabel()
                + (maxConcurrency > 0 ? ", max concurrency " + maxConcurrency : ""), "value");
        out.printf(Locale.ROOT, "| %s | %s |%n", "-".repeat(32), "-".repeat(11) + ":");
        out.printf(Locale.ROOT, row, "successful requests", completed);
        out.printf(Locale.ROOT, row, "failed requests", failed);
        out.printf(Locale.ROOT, row, "benchmark duration (s)", fmt(durationSeconds));
        out.printf(Locale.ROOT, row, "total input tokens", totalInputTokens);
        out.printf(Locale.ROOT, row, "total generated tokens", totalOutputTokens);
        out.printf(Locale.ROOT, row, "request throughput (req/s)", fmt(requestThroughput));
        out.printf(Locale.ROOT, row, "output token throughput (tok/s)", fmt(outputThroughput));
        out.printf(Locale.ROOT, row, "total token throughput (tok/s)", fmt(totalTokenThroughput));
        for (String metric : new String[] {"ttft", "tpot", "itl", "e2el"})
            for (String stat : new String[] {"mean", "median", "p99"})
                out.printf(Locale.ROOT, row, stat + " " + metric.toUpperCase(Locale.ROOT) + " (ms)",
                        fmt(latency(stat + "_" + metric)));
        for (String e : errors) out.println("  error: " + (e.length() > 300 ? e.substring(0, 300) + "…" : e));
    }

    /** One line per rate of a sweep. */
    public static void printSweep(PrintStream out, List<RateResult> results) {
        out.println("| rate (req/s) | done | failed | req/s | out tok/s | mean TTFT ms | P99 TTFT ms | mean TPOT ms "
                + "| P99 TPOT ms | mean ITL ms | mean E2E ms |");
        out.println("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        for (RateResult r : results)
            out.printf(Locale.ROOT, "| %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s |%n", r.rateLabel(),
                    r.completed, r.failed, fmt(r.requestThroughput), fmt(r.outputThroughput), fmt(r.latency("mean_ttft")),
                    fmt(r.latency("p99_ttft")), fmt(r.latency("mean_tpot")), fmt(r.latency("p99_tpot")),
                    fmt(r.latency("mean_itl")), fmt(r.latency("mean_e2el")));
    }

    static String fmt(double v) {
        if (Double.isNaN(v)) return "n/a";
        return String.format(Locale.ROOT, Math.abs(v) >= 100 ? "%.1f" : "%.2f", v);
    }
}
