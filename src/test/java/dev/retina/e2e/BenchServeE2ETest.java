package dev.retina.e2e;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.server.Main;
import dev.retina.server.RetinaServer;
import dev.retina.server.backend.LlavaBackendLoader;
import dev.retina.server.config.ServerConfig;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code retina bench serve} against a running Retina (demo model) over real HTTP: a two-rate sweep whose every
 * request completes with exactly max_tokens tokens (ignore_eos), whose JSON holds the per-request numbers and whose
 * plot is a PNG; a request the server refuses is counted as failed with its status, not hidden.
 */
class BenchServeE2ETest {
    static RetinaServer server;

    @BeforeAll
    static void boot() throws Exception {
        server = RetinaServer.start(ServerConfig.defaults(ServerConfig.DEMO_MODEL), new LlavaBackendLoader());
    }

    @AfterAll
    static void stop() {
        if (server != null) server.close();
    }

    private static int run(StringBuilder output, String... args) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        PrintStream old = System.out;
        System.setOut(new PrintStream(bytes, true, StandardCharsets.UTF_8));
        try {
            return Main.commandLine().execute(args);
        } finally {
            System.setOut(old);
            output.append(bytes.toString(StandardCharsets.UTF_8));
        }
    }

    @Test
    void aSweepMeasuresEveryRequestAndWritesJsonAndAPlot(@TempDir Path dir) throws Exception {
        Path json = dir.resolve("result.json");
        Path png = dir.resolve("sweep.png");
        StringBuilder out = new StringBuilder();
        int rc = run(out, "bench", "serve", "--base-url", "http://127.0.0.1:" + server.port(), "--num-prompts", "6",
                "--request-rate", "4,inf", "--output-len", "8", "--input-len", "5", "--image-size", "64",
                "--save-result", json.toString(), "--plot", png.toString());
        String text = out.toString();
        assertEquals(0, rc, text);
        for (String row : new String[] {"request throughput (req/s)", "output token throughput (tok/s)",
                "mean TTFT (ms)", "median TPOT (ms)", "p99 ITL (ms)", "mean E2EL (ms)", "| rate (req/s) |"})
            assertTrue(text.contains(row), row + " missing:\n" + text);

        JsonNode result = new ObjectMapper().readTree(json.toFile());
        assertEquals("demo", result.path("model").asText());
        assertEquals(2, result.path("results").size());
        assertEquals("inf", result.path("results").path(1).path("request_rate").asText());
        for (JsonNode r : result.path("results")) {
            assertEquals(6, r.path("completed").asInt(), r.toString());
            assertEquals(0, r.path("failed").asInt(), r.toString());
            assertEquals(48, r.path("total_output_tokens").asInt(), "usage says 8 tokens each");
            for (JsonNode n : r.path("input_lens")) assertTrue(n.asInt() > 5, "image tokens + words: " + n);
            for (int i = 0; i < 6; i++)
                assertTrue(r.path("ttfts").path(i).asDouble() < r.path("e2els").path(i).asDouble(), r.toString());
            assertTrue(r.path("mean_ttft_ms").asDouble() > 0);
            assertTrue(r.path("mean_itl_ms").asDouble() > 0);
            assertTrue(r.path("p99_e2el_ms").asDouble() >= r.path("median_e2el_ms").asDouble());
        }
        BufferedImage plot = ImageIO.read(png.toFile());
        assertNotNull(plot);
        assertEquals(1260, plot.getWidth());
        // something was drawn in the first panel besides the white background
        int colored = 0;
        for (int y = 60; y < 340; y++)
            for (int x = 70; x < 400; x++) {
                int rgb = plot.getRGB(x, y) & 0xFFFFFF;
                if (rgb == 0x1F77B4 || rgb == 0xD62728) colored++;
            }
        assertTrue(colored > 20, "series drawn: " + colored);

        // the same table and plot from the saved file, no requests sent
        Path again = dir.resolve("again.png");
        StringBuilder replot = new StringBuilder();
        assertEquals(0, run(replot, "bench", "serve", "--plot-from", json.toString(), "--plot", again.toString()));
        String sweep = text.substring(text.indexOf("| rate (req/s) |"), text.indexOf("saved "));
        assertEquals(sweep.strip(), replot.substring(0, replot.indexOf("plotted ")).strip());
        assertEquals(1260, ImageIO.read(again.toFile()).getWidth());
    }

    @Test
    void refusedRequestsAreCountedAsFailedWithTheirStatus() {
        StringBuilder out = new StringBuilder();
        int rc = run(out, "bench", "serve", "--base-url", "http://127.0.0.1:" + server.port(), "--num-prompts", "2",
                "--model", "no-such-model", "--output-len", "4", "--image-size", "32");
        String text = out.toString();
        assertEquals(1, rc, text);
        assertTrue(text.matches("(?s).*\\| failed requests +\\| +2 \\|.*"), text);
        assertTrue(text.contains("error: HTTP 404"), text);
    }
}
