package dev.retina.server;

import com.sun.net.httpserver.HttpServer;
import dev.retina.server.config.ConfigException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The Hub download against a loopback stand-in for the Hugging Face API (the demo model's files served as repo
 * {@code retina/demo}): the snapshot layout huggingface_hub uses, the token sent, files already cached not fetched
 * again, the offline cache, and the errors a user gets for gated and missing models.
 */
class HubDownloaderTest {
    static final Path DEMO = Path.of(System.getProperty("retina.root", "..")).resolve("models/retina-demo");
    HttpServer hub;
    final List<String> requests = new CopyOnWriteArrayList<>();

    String start(String requiredToken) throws Exception {
        hub = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        hub.createContext("/", ex -> {
            String path = ex.getRequestURI().getPath();
            requests.add(path + " " + ex.getRequestHeaders().getFirst("Authorization"));
            byte[] body;
            int status = 200;
            String auth = ex.getRequestHeaders().getFirst("Authorization");
            if (requiredToken != null && !("Bearer " + requiredToken).equals(auth)) {
                status = 401;
                body = "{\"error\": \"gated\"}".getBytes();
            } else if (path.equals("/api/models/retina/demo/revision/main")) {
                StringBuilder siblings = new StringBuilder();
                try (var files = Files.list(DEMO)) {
                    for (Path f : files.sorted().toList())
                        siblings.append(siblings.isEmpty() ? "" : ",").append("{\"rfilename\": \"")
                                .append(f.getFileName()).append("\", \"size\": ").append(Files.size(f)).append("}");
                }
                body = ("{\"id\": \"retina/demo\", \"sha\": \"0123abcd\", \"siblings\": [" + siblings + "]}").getBytes();
            } else if (path.startsWith("/retina/demo/resolve/0123abcd/")) {
                Path f = DEMO.resolve(path.substring("/retina/demo/resolve/0123abcd/".length()));
                body = Files.readAllBytes(f);
            } else {
                status = 404;
                body = "{}".getBytes();
            }
            ex.sendResponseHeaders(status, body.length);
            try (OutputStream out = ex.getResponseBody()) {
                out.write(body);
            }
        });
        hub.start();
        return "http://127.0.0.1:" + hub.getAddress().getPort();
    }

    @AfterEach
    void stop() {
        if (hub != null) hub.stop(0);
    }

    @Test
    void fetchesTheServingFilesIntoTheHubCacheLayout(@TempDir Path home) throws Exception {
        String endpoint = start("hf_secret");
        Path snapshot = new HubDownloader(endpoint, home, "hf_secret", false, null).fetch("retina/demo", "main");
        assertEquals(home.resolve("hub/models--retina--demo/snapshots/0123abcd"), snapshot);
        assertEquals("0123abcd", Files.readString(home.resolve("hub/models--retina--demo/refs/main")));
        for (String f : List.of("config.json", "model.safetensors", "tokenizer.json", "processor_config.json"))
            assertEquals(Files.size(DEMO.resolve(f)), Files.size(snapshot.resolve(f)), f);
        assertFalse(Files.exists(snapshot.resolve("TRAINING.log")), "only what serving needs");
        assertTrue(requests.stream().allMatch(r -> r.endsWith("Bearer hf_secret")), requests.toString());

        requests.clear();
        new HubDownloader(endpoint, home, "hf_secret", false, null).fetch("retina/demo", "main");
        assertEquals(1, requests.size(), "cached files are not fetched again: " + requests);
        assertEquals(snapshot, new HubDownloader("http://127.0.0.1:1", home, null, true, null).fetch("retina/demo", "main"),
                "offline: the cache");
    }

    @Test
    void gatedMissingAndOfflineFailuresSayWhatToDo(@TempDir Path home) throws Exception {
        String endpoint = start("hf_secret");
        ConfigException gated = assertThrows(ConfigException.class,
                () -> new HubDownloader(endpoint, home, null, false, null).fetch("retina/demo", "main"));
        assertTrue(gated.getMessage().contains("set HF_TOKEN"), gated.getMessage());
        ConfigException missing = assertThrows(ConfigException.class,
                () -> new HubDownloader(endpoint, home, "hf_secret", false, null).fetch("retina/nothing", "main"));
        assertTrue(missing.getMessage().contains("no model retina/nothing"), missing.getMessage());
        ConfigException offline = assertThrows(ConfigException.class,
                () -> new HubDownloader(endpoint, home, null, true, null).fetch("retina/demo", "main"));
        assertTrue(offline.getMessage().contains("HF_HUB_OFFLINE"), offline.getMessage());
    }

    @Test
    void onlyOrgSlashNameThatIsNoDirectoryIsARepoId() {
        assertTrue(HubDownloader.isRepoId("llava-hf/llava-1.5-7b-hf"));
        assertFalse(HubDownloader.isRepoId("demo"));
        assertFalse(HubDownloader.isRepoId("/models/llava"));
    }
}
