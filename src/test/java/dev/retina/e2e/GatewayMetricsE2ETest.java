package dev.retina.e2e;

import dev.retina.server.RetinaServer;
import dev.retina.server.backend.LlavaBackendLoader;
import dev.retina.server.config.ServerConfig;
import org.junit.jupiter.api.Test;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The endpoint picker of docker/inference-gateway.yaml reads Retina's queue depth, running requests and KV usage by
 * name from each pod's /metrics: every metric its flags name is one a running Retina exports, as a plain gauge
 * (no labels), with KV usage as a fraction in [0, 1] as the extension expects.
 */
class GatewayMetricsE2ETest {
    @Test
    void theEndpointPickersMetricNamesAreOnesRetinaExports() throws Exception {
        String manifest = Files.readString(Path.of(System.getProperty("retina.root", "..")).resolve("docker/inference-gateway.yaml"));
        Matcher m = Pattern.compile("--(total-queued-requests|total-running-requests|kv-cache-usage-percentage)-metric=(\\S+)")
                .matcher(manifest);
        List<String> names = new ArrayList<>();
        while (m.find()) names.add(m.group(2));
        assertEquals(3, names.size(), "the EPP gets all three signals: " + names);
        try (RetinaServer server = RetinaServer.start(ServerConfig.defaults(ServerConfig.DEMO_MODEL), new LlavaBackendLoader())) {
            String metrics = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
                    URI.create("http://127.0.0.1:" + server.port() + "/metrics")).build(),
                    HttpResponse.BodyHandlers.ofString()).body();
            for (String name : names) {
                Matcher line = Pattern.compile("(?m)^" + Pattern.quote(name) + " (\\S+)$").matcher(metrics);
                assertTrue(line.find(), name + " is not an unlabelled metric of /metrics");
                assertTrue(metrics.contains("# TYPE " + name + " gauge"), name + " is not a gauge");
                double v = Double.parseDouble(line.group(1));
                if (name.contains("kv_cache")) assertTrue(v >= 0 && v <= 1, name + " = " + v + " is not a fraction");
            }
        }
    }
}
