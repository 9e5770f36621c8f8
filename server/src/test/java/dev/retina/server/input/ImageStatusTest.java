package dev.retina.server.input;

import com.sun.net.httpserver.HttpServer;
import dev.retina.engine.model.LlavaConfig;
import dev.retina.server.config.MediaConfig;
import dev.retina.server.config.ServerConfig;
import dev.retina.server.protocol.ApiException;
import dev.retina.vision.ImageProcessorBackend;
import dev.retina.vision.ClipImageProcessor;
import dev.retina.vision.ClipProcessorConfig;
import dev.retina.vision.FetchPolicy;
import dev.retina.vision.ImageDecoder;
import dev.retina.vision.ImageFetcher;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The HTTP status and message a client gets for each image-fetch outcome, through the pipeline {@code retina serve}
 * builds from its flags (LLaVA-1.5 fixture preprocessor; no model weights needed).
 */
class ImageStatusTest {
    static final String CASE = "llava15-336-mha";
    static final String PARAM = "messages[0].content[1].image_url";
    static HttpServer http;
    static String base;
    static byte[] png;

    @TempDir
    static Path tmp;

    @BeforeAll
    static void serve() throws Exception {
        assumeTrue(Files.isDirectory(FixtureServing.FIXTURES.resolve("models").resolve(CASE)), "fixtures not present");
        png = Files.readAllBytes(FixtureServing.FIXTURES.resolve("images").resolve("coffee.png"));
        http = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        http.createContext("/ok.png", ex -> {
            ex.getResponseHeaders().add("Content-Type", "image/png");
            ex.sendResponseHeaders(200, png.length);
            try (OutputStream out = ex.getResponseBody()) {
                out.write(png);
            }
        });
        http.createContext("/missing.png", ex -> {
            ex.sendResponseHeaders(404, -1);
            ex.close();
        });
        http.createContext("/text", ex -> {
            byte[] b = "hello, not an image".getBytes();
            ex.sendResponseHeaders(200, b.length);
            try (OutputStream out = ex.getResponseBody()) {
                out.write(b);
            }
        });
        http.createContext("/to-private", ex -> {
            ex.getResponseHeaders().add("Location", "http://127.0.0.1:" + http.getAddress().getPort() + "/ok.png");
            ex.sendResponseHeaders(302, -1);
            ex.close();
        });
        http.start();
        base = "http://127.0.0.1:" + http.getAddress().getPort();
    }

    @AfterAll
    static void stop() {
        if (http != null) http.stop(0);
    }

    static ImagePipeline pipeline(MediaConfig media, long maxImageBytes) throws Exception {
        Path dir = FixtureServing.FIXTURES.resolve("models").resolve(CASE);
        ServerConfig c = ServerConfig.defaults(dir.toString());
        c = new ServerConfig(c.model(), null, c.host(), 0, null, c.dtype(), c.device(), null, 0, c.loadFormat(), c.vlm(),
                Duration.ofSeconds(2), c.maxRequestBytes(), maxImageBytes, media);
        LlavaConfig llava = LlavaConfig.load(dir);
        return ImagePipeline.create(c, c.resolve(FixtureServing.facts(llava), dir.toString()), llava);
    }

    static ApiException refused(ImagePipeline p, String url) {
        return assertThrows(ApiException.class, () -> p.loader().load(url, ImageDetail.AUTO, PARAM));
    }

    static void assertRefused(ApiException e, int status, String code) {
        assertEquals(status, e.status(), e.getMessage());
        assertEquals(PARAM, e.toBody().error().param());
        assertEquals(code, e.toBody().error().code());
        assertTrue(e.getMessage().startsWith(PARAM + ": "), "the message names the part: " + e.getMessage());
    }

    @Test
    void loopbackIsRefusedByDefaultAndAllowedWithTheFlag() throws Exception {
        try (ImagePipeline p = pipeline(MediaConfig.defaults(), 20 << 20)) {
            assertRefused(refused(p, base + "/ok.png"), 400, "image_forbidden");
        }
        try (ImagePipeline p = pipeline(MediaConfig.defaults().withAllowPrivateMediaUrls(true), 20 << 20)) {
            assertEquals(576, p.loader().load(base + "/ok.png", ImageDetail.AUTO, PARAM).numImageTokens());
            assertRefused(refused(p, base + "/missing.png"), 422, "image_http_status");
            assertRefused(refused(p, base + "/text"), 422, "image_not_an_image");
        }
    }

    @Test
    void oversizedImageIs400() throws Exception {
        try (ImagePipeline p = pipeline(MediaConfig.defaults().withAllowPrivateMediaUrls(true), 1000)) {
            assertRefused(refused(p, base + "/ok.png"), 400, "image_too_large");
        }
    }

    @Test
    void redirectToAPrivateAddressIsRefused() throws Exception {
        // A public-looking host that really is the loopback test server; its redirect points at 127.0.0.1.
        FetchPolicy policy = FetchPolicy.defaults().withTimeout(Duration.ofSeconds(2));
        ImageFetcher fetcher = new ImageFetcher(policy, null, host -> host.equals("images.example")
                ? new InetAddress[] {InetAddress.getByAddress(host, new byte[] {93, (byte) 184, (byte) 216, 34})}
                : dev.retina.vision.HostResolver.SYSTEM.resolve(host),
                (address, port, timeoutMillis) -> {
                    Socket s = new Socket(java.net.Proxy.NO_PROXY);
                    s.connect(new InetSocketAddress("127.0.0.1", http.getAddress().getPort()), timeoutMillis);
                    return s;
                }, null, null);
        ClipImageLoader loader = new ClipImageLoader(fetcher, new ImageDecoder(ImageDecoder.DEFAULT_MAX_IMAGE_PIXELS),
                new ClipImageProcessor(ClipProcessorConfig.load(FixtureServing.FIXTURES.resolve("models").resolve(CASE)), ImageProcessorBackend.PIL),
                576);
        int port = http.getAddress().getPort();
        assertEquals(576, loader.load("http://images.example:" + port + "/ok.png", ImageDetail.AUTO, PARAM)
                .numImageTokens(), "the public-looking host itself is fetched");
        ApiException e = assertThrows(ApiException.class,
                () -> loader.load("http://images.example:" + port + "/to-private", ImageDetail.AUTO, PARAM));
        assertRefused(e, 400, "image_forbidden");
        assertFalse(e.getMessage().contains("93.184"), "no resolved address in the message: " + e.getMessage());
        fetcher.close();
    }

    @Test
    void fileUrlsOnlyUnderTheAllowedRoot() throws Exception {
        Path root = Files.createDirectories(tmp.resolve("media"));
        Files.write(root.resolve("in.png"), png);
        Files.write(tmp.resolve("out.png"), png);
        try (ImagePipeline p = pipeline(MediaConfig.defaults(), 20 << 20)) {
            assertRefused(refused(p, "file:" + root.resolve("in.png")), 400, "image_unsupported_scheme");
        }
        try (ImagePipeline p = pipeline(MediaConfig.defaults().withAllowedLocalMediaPath(root), 20 << 20)) {
            assertEquals(576, p.loader().load("file:" + root.resolve("in.png"), ImageDetail.AUTO, PARAM).numImageTokens());
            assertRefused(refused(p, "file:" + tmp.resolve("out.png")), 400, "image_forbidden");
            assertRefused(refused(p, "file:" + root.resolve("../out.png")), 400, "image_forbidden");
        }
    }

    @Test
    void theSamePictureFromTwoUrlsHasOneContentHash() throws Exception {
        Path root = Files.createDirectories(tmp.resolve("same"));
        Files.write(root.resolve("a.png"), png);
        try (ImagePipeline p = pipeline(MediaConfig.defaults().withAllowedLocalMediaPath(root), 20 << 20)) {
            String fromFile = p.loader().load("file:" + root.resolve("a.png"), ImageDetail.AUTO, PARAM).contentHash();
            String fromData = p.loader().load("data:image/png;base64," + java.util.Base64.getEncoder().encodeToString(png),
                    ImageDetail.AUTO, PARAM).contentHash();
            assertNotNull(fromFile);
            assertEquals(fromFile, fromData);
        }
    }

    @Test
    void everyReasonHasItsStatus() {
        for (var reason : dev.retina.vision.ImageException.Reason.values()) {
            int expected = switch (reason) {
                case TIMEOUT -> 504;
                case HTTP_STATUS, FETCH_FAILED, NOT_AN_IMAGE, UNDECODABLE -> 422;
                default -> 400;
            };
            assertEquals(expected, ImageErrors.status(reason), reason.name());
        }
    }
}
