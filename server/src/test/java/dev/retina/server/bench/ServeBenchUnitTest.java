package dev.retina.server.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.server.config.ConfigException;
import org.junit.jupiter.api.Test;

import java.net.URI;
import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ServeBenchUnitTest {
    @Test
    void statsSkipNaNAndInterpolateLikeNumpy() {
        double[] v = {5, Double.NaN, 1, 4, 2, 3};
        assertEquals(3.0, Stats.mean(v), 1e-12);
        assertEquals(3.0, Stats.percentile(v, 50), 1e-12);
        assertEquals(4.96, Stats.percentile(v, 99), 1e-12); // np.percentile([1..5], 99)
        assertTrue(Double.isNaN(Stats.mean(new double[0])));
    }

    @Test
    void rateResultAggregatesCompletedRequestsOnly() {
        RequestRecord a = new RequestRecord(true, null, 0.1, 0.5, new double[] {0.1, 0.1, 0.2}, 10, 5);
        RequestRecord b = new RequestRecord(true, null, 0.3, 0.7, new double[] {0.2}, 12, 3);
        RequestRecord bad = RequestRecord.failed("HTTP 429: busy", 0.01);
        RateResult r = RateResult.of(2.0, 0, 2.0, List.of(a, b, bad));
        assertEquals(2, r.completed());
        assertEquals(1, r.failed());
        assertEquals(22, r.totalInputTokens());
        assertEquals(8, r.totalOutputTokens());
        assertEquals(1.0, r.requestThroughput(), 1e-12);
        assertEquals(15.0, r.totalTokenThroughput(), 1e-12);
        assertEquals(200.0, r.latency("mean_ttft"), 1e-9);
        assertEquals((100.0 + 200.0) / 2, r.latency("mean_tpot"), 1e-9); // (0.4/4, 0.4/2) s
        assertEquals(150.0, r.latency("mean_itl"), 1e-9);
        assertEquals(List.of("HTTP 429: busy"), r.errors());
    }

    @Test
    void requestsAreTheSameForTheSameSeedAndDifferPerIndex() throws Exception {
        ServeBenchmark.Options o = new ServeBenchmark.Options(URI.create("http://127.0.0.1:1"), "/v1/chat/completions",
                "m", null, 3, 7, 16, 2, 48, List.of(), 42, 0, true, 0, Duration.ofSeconds(1));
        ServeBenchmark b = new ServeBenchmark(o);
        assertArrayEquals(b.requestBody("m", 1), new ServeBenchmark(o).requestBody("m", 1));
        JsonNode body = new ObjectMapper().readTree(b.requestBody("m", 1));
        JsonNode content = body.path("messages").path(0).path("content");
        assertEquals(3, content.size());
        assertTrue(content.path(0).path("image_url").path("url").asText().startsWith("data:image/png;base64,"));
        assertTrue(!content.path(0).path("image_url").path("url").asText()
                .equals(content.path(1).path("image_url").path("url").asText()), "images differ");
        assertEquals(7, content.path(2).path("text").asText().split(" ").length);
        assertTrue(body.path("stream").asBoolean() && body.path("stream_options").path("include_usage").asBoolean());
        assertTrue(body.path("ignore_eos").asBoolean());
        assertTrue(!new String(b.requestBody("m", 1)).equals(new String(b.requestBody("m", 2))));
    }

    @Test
    void ratesAndAxes() {
        assertEquals(Double.POSITIVE_INFINITY, BenchServeCommand.parseRate("inf"));
        assertEquals(16.0, BenchServeCommand.parseRate("16"));
        assertThrows(ConfigException.class, () -> BenchServeCommand.parseRate("-1"));
        assertEquals(2.5, BenchPlot.niceCeil(2.1), 1e-12);
        assertEquals(50.0, BenchPlot.niceCeil(41), 1e-12);
        assertEquals(1.0, BenchPlot.niceCeil(0), 1e-12);
    }
}
