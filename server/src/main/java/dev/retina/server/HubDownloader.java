package dev.retina.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.server.config.ConfigException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Pattern;

/**
 * Fetches a Hugging Face model id ({@code org/name}) into the Hub cache as {@code huggingface_hub} lays it out
 * ({@code HF_HOME/hub/models--org--name/snapshots/SHA/}, {@code refs/REVISION}), so Python tools and Retina share
 * downloads. Only what serving needs is fetched: configs, tokenizer and template files, and safetensors weights.
 * A file already in the snapshot with the size the Hub lists is not fetched again; each download goes to a
 * {@code .incomplete} file renamed when whole. Progress: one updating line on an interactive terminal, otherwise a
 * log line every few seconds. Called on the CLI thread before the server starts; blocking is fine there.
 */
public final class HubDownloader {
    private static final Logger log = LoggerFactory.getLogger(HubDownloader.class);
    private static final Pattern REPO_ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*");
    private static final Pattern WANTED = Pattern.compile("(config|generation_config|tokenizer|tokenizer_config|"
            + "special_tokens_map|chat_template|preprocessor_config|processor_config)\\.json|chat_template\\.jinja|"
            + "model\\.safetensors\\.index\\.json|[^/]*\\.safetensors");
    private static final long PROGRESS_EVERY_NANOS = 3_000_000_000L;

    private final String endpoint;      // e.g. https://huggingface.co (HF_ENDPOINT)
    private final Path hubCache;        // HF_HOME/hub
    private final String token;         // HF_TOKEN, or null
    private final boolean offline;      // HF_HUB_OFFLINE=1: the cache only
    private final PrintStream terminal; // an interactive terminal for the progress line, or null
    private final HttpClient http = HttpClient.newBuilder().followRedirects(HttpClient.Redirect.NORMAL)
            .connectTimeout(Duration.ofSeconds(20)).build();
    private final ObjectMapper json = new ObjectMapper();

    public HubDownloader(String endpoint, Path hfHome, String token, boolean offline, PrintStream terminal) {
        this.endpoint = endpoint.endsWith("/") ? endpoint.substring(0, endpoint.length() - 1) : endpoint;
        this.hubCache = hfHome.resolve("hub");
        this.token = token == null || token.isBlank() ? null : token.strip();
        this.offline = offline;
        this.terminal = terminal;
    }

    /** Whether {@code model} names a Hub repository rather than a directory that exists. */
    public static boolean isRepoId(String model) {
        return REPO_ID.matcher(model).matches() && !Files.isDirectory(Path.of(model));
    }

    /**
     * The snapshot directory of {@code repoId} at {@code revision}, downloaded where missing.
     *
     * @throws ConfigException with what to do when the Hub refuses (401/403: set HF_TOKEN; 404: no such model) or
     *                         the cache has no copy while offline
     */
    public Path fetch(String repoId, String revision) throws IOException, InterruptedException {
        Path repoDir = hubCache.resolve("models--" + repoId.replace("/", "--"));
        if (offline) {
            Path ref = repoDir.resolve("refs").resolve(revision);
            String sha = Files.isRegularFile(ref) ? Files.readString(ref).strip() : revision;
            Path snapshot = repoDir.resolve("snapshots").resolve(sha);
            if (!Files.isRegularFile(snapshot.resolve("config.json")))
                throw new ConfigException("HF_HUB_OFFLINE is set and " + repoId + "@" + revision + " is not in the cache "
                        + hubCache);
            log.info("using cached {} ({})", repoId, snapshot);
            return snapshot;
        }
        JsonNode info = json.readTree(get(endpoint + "/api/models/" + repoId + "/revision/"
                + URLEncoder.encode(revision, StandardCharsets.UTF_8) + "?blobs=true", repoId));
        String sha = info.path("sha").asText(revision);
        Path snapshot = repoDir.resolve("snapshots").resolve(sha);
        List<JsonNode> files = new ArrayList<>();
        long total = 0;
        for (JsonNode sibling : info.path("siblings")) {
            String name = sibling.path("rfilename").asText();
            if (!WANTED.matcher(name).matches()) continue;
            files.add(sibling);
            total += sibling.path("size").asLong(0);
        }
        if (files.stream().noneMatch(f -> f.path("rfilename").asText().equals("config.json")))
            throw new ConfigException(repoId + " has no config.json at revision " + revision + ": not a transformers "
                    + "checkpoint");
        log.info("fetching {}@{} ({} files, {}) into {}", repoId, sha, files.size(), size(total), snapshot);
        Progress progress = new Progress(total);
        for (JsonNode f : files) {
            String name = f.path("rfilename").asText();
            Path target = snapshot.resolve(name);
            long size = f.path("size").asLong(-1);
            if (Files.isRegularFile(target) && (size < 0 || Files.size(target) == size)) {
                progress.skip(name, Files.size(target));
                continue;
            }
            download(endpoint + "/" + repoId + "/resolve/" + sha + "/" + name, target, repoId, name, progress);
        }
        Files.createDirectories(repoDir.resolve("refs"));
        Files.writeString(repoDir.resolve("refs").resolve(revision), sha);
        progress.finish();
        return snapshot;
    }

    private String get(String url, String repoId) throws IOException, InterruptedException {
        HttpResponse<String> r = http.send(request(url).build(), HttpResponse.BodyHandlers.ofString());
        check(r.statusCode(), repoId, url);
        return r.body();
    }

    private HttpRequest.Builder request(String url) {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(url)).header("User-Agent", "retina/0.1");
        if (token != null) b.header("Authorization", "Bearer " + token);
        return b;
    }

    private void check(int status, String repoId, String url) {
        if (status == 200) return;
        if (status == 401 || status == 403)
            throw new ConfigException("the Hub refused " + repoId + " (HTTP " + status + "): it is gated or private; "
                    + (token == null ? "set HF_TOKEN to a token that may read it" : "HF_TOKEN may not read it"));
        if (status == 404) throw new ConfigException("no model " + repoId + " on " + endpoint + " (HTTP 404 for " + url + ")");
        throw new ConfigException("the Hub answered HTTP " + status + " for " + url);
    }

    private void download(String url, Path target, String repoId, String name, Progress progress)
            throws IOException, InterruptedException {
        Files.createDirectories(target.getParent());
        Path partial = target.resolveSibling(target.getFileName() + ".incomplete");
        HttpResponse<InputStream> r = http.send(request(url).build(), HttpResponse.BodyHandlers.ofInputStream());
        try (InputStream in = r.body()) {
            check(r.statusCode(), repoId, url);
            try (OutputStream out = Files.newOutputStream(partial)) {
                byte[] buffer = new byte[1 << 16];
                for (int n; (n = in.read(buffer)) > 0; ) {
                    out.write(buffer, 0, n);
                    progress.add(name, n);
                }
            }
        }
        Files.move(partial, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    static String size(long bytes) {
        if (bytes >= 1L << 30) return String.format(Locale.ROOT, "%.2f GB", bytes / 1e9);
        if (bytes >= 1L << 20) return String.format(Locale.ROOT, "%.1f MB", bytes / 1e6);
        return String.format(Locale.ROOT, "%.1f kB", bytes / 1e3);
    }

    /** Bytes so far against the total, as a terminal line or periodic log lines. */
    private final class Progress {
        private final long total;
        private final long start = System.nanoTime();
        private long done;
        private long lastReport = start;

        Progress(long total) {
            this.total = total;
        }

        void skip(String name, long bytes) {
            done += bytes;
            log.info("{} is already in the cache", name);
        }

        void add(String name, int bytes) {
            done += bytes;
            long now = System.nanoTime();
            if (terminal != null && now - lastReport >= 200_000_000L) {
                lastReport = now;
                terminal.print("\r" + line(name, now) + "   ");
                terminal.flush();
            } else if (terminal == null && now - lastReport >= PROGRESS_EVERY_NANOS) {
                lastReport = now;
                log.info("downloading {}", line(name, now));
            }
        }

        private String line(String name, long now) {
            double seconds = Math.max(1e-9, (now - start) / 1e9);
            return String.format(Locale.ROOT, "%s: %s of %s (%.0f%%), %.1f MB/s", name, size(done), size(total),
                    total > 0 ? 100.0 * done / total : 0.0, done / 1e6 / seconds);
        }

        void finish() {
            if (terminal != null) terminal.println();
            log.info("fetched {} in {} s", size(done), String.format(Locale.ROOT, "%.1f", (System.nanoTime() - start) / 1e9));
        }
    }
}
