package dev.retina.vision;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Base64;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ImageFetcherTest {
    private static final byte[] PNG = TestImages.encode(new BufferedImage(4, 4, BufferedImage.TYPE_3BYTE_BGR), "png");
    private HttpServer server;
    private ExecutorService executor;
    private ImageFetcher fetcher;
    private final AtomicBoolean dripStopped = new AtomicBoolean();

    @BeforeEach
    void start() throws IOException {
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        server.createContext("/img.png", ex -> send(ex, 200, PNG, true));
        server.createContext("/missing", ex -> send(ex, 404, "nope".getBytes(), true));
        server.createContext("/big", ex -> send(ex, 200, new byte[5000], true));
        server.createContext("/big-chunked", ex -> send(ex, 200, new byte[5000], false));
        server.createContext("/redirect", ex -> {
            ex.getResponseHeaders().add("Location", "/img.png");
            send(ex, 302, new byte[0], true);
        });
        server.createContext("/loop", ex -> {
            ex.getResponseHeaders().add("Location", "/loop");
            send(ex, 301, new byte[0], true);
        });
        server.createContext("/drip", ex -> {
            ex.sendResponseHeaders(200, 0); // chunked, then one byte every 100 ms, forever
            try (OutputStream out = ex.getResponseBody()) {
                for (int i = 0; i < 600; i++) {
                    out.write(1);
                    out.flush();
                    Thread.sleep(100);
                }
            } catch (IOException | InterruptedException e) {
                dripStopped.set(true); // the client hung up
            }
        });
        server.createContext("/slow-headers", ex -> {
            try {
                Thread.sleep(5000);
            } catch (InterruptedException ignored) {
                Thread.currentThread().interrupt();
            }
            send(ex, 200, PNG, true);
        });
        executor = Executors.newCachedThreadPool();
        server.setExecutor(executor);
        server.start();
        fetcher = new ImageFetcher(FetchPolicy.defaults().withTimeout(Duration.ofMillis(1000)).withMaxImageBytes(1000)
                .withAllowPrivateMediaUrls(true)); // the test server is on loopback
    }

    @AfterEach
    void stop() {
        fetcher.close();
        server.stop(0);
        executor.shutdownNow();
    }

    private static void send(HttpExchange ex, int status, byte[] body, boolean withLength) throws IOException {
        ex.sendResponseHeaders(status, withLength ? (body.length == 0 ? -1 : body.length) : 0);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(body);
        } catch (IOException ignored) {
            // client cut the body off (size cap): expected in those tests
        }
    }

    private String url(String path) {
        return "http://127.0.0.1:" + server.getAddress().getPort() + path;
    }

    private ImageException.Reason failure(String url) {
        return assertThrows(ImageException.class, () -> fetcher.fetch(url)).reason();
    }

    @Test
    void fetchesAnImage() throws Exception {
        assertArrayEquals(PNG, fetcher.fetch(url("/img.png")));
        assertEquals(4, ImageDecoder.decode(fetcher.fetch(url("/img.png"))).width());
    }

    @Test
    void non2xxReportsTheStatus() {
        ImageException e = assertThrows(ImageException.class, () -> fetcher.fetch(url("/missing")));
        assertEquals(ImageException.Reason.HTTP_STATUS, e.reason());
        assertTrue(e.getMessage().contains("404"), e.getMessage());
    }

    @Test
    void followsRedirectsButNotForever() throws Exception {
        assertArrayEquals(PNG, fetcher.fetch(url("/redirect")));
        ImageException e = assertThrows(ImageException.class, () -> fetcher.fetch(url("/loop")));
        assertEquals(ImageException.Reason.HTTP_STATUS, e.reason());
        assertTrue(e.getMessage().contains("redirected"), e.getMessage());
    }

    @Test
    void policyIsAskedForEveryHop() throws Exception {
        try (ImageFetcher strict = new ImageFetcher(fetcher.policy(), uri -> {
            if (uri.getPath().equals("/img.png"))
                throw new ImageException(ImageException.Reason.FORBIDDEN, "refused");
        }, null, null, null, null)) {
            assertEquals(ImageException.Reason.FORBIDDEN,
                    assertThrows(ImageException.class, () -> strict.fetch(url("/redirect"))).reason());
        }
    }

    @Test
    void slowDripEndsAtTheDeadline() {
        long start = System.nanoTime();
        assertEquals(ImageException.Reason.TIMEOUT, failure(url("/drip")));
        long elapsedMs = (System.nanoTime() - start) / 1_000_000;
        assertTrue(elapsedMs >= 900 && elapsedMs < 2000, "ended after " + elapsedMs + " ms");
        // The connection is closed too, so a dripping server cannot hold a socket of ours.
        long until = System.nanoTime() + 3_000_000_000L;
        while (!dripStopped.get() && System.nanoTime() < until) Thread.onSpinWait();
        assertTrue(dripStopped.get(), "the dripping connection was not closed");
    }

    @Test
    void slowHeadersEndAtTheDeadline() {
        long start = System.nanoTime();
        assertEquals(ImageException.Reason.TIMEOUT, failure(url("/slow-headers")));
        long elapsedMs = (System.nanoTime() - start) / 1_000_000;
        assertTrue(elapsedMs < 2000, "ended after " + elapsedMs + " ms");
    }

    @Test
    void oversizedBodyIsCutAtTheCap() {
        assertEquals(ImageException.Reason.TOO_LARGE, failure(url("/big")));          // by Content-Length
        assertEquals(ImageException.Reason.TOO_LARGE, failure(url("/big-chunked")));  // while streaming
    }

    @Test
    void unreachableHostFails() throws IOException {
        int closedPort;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            closedPort = s.getLocalPort();
        }
        ImageException e = assertThrows(ImageException.class,
                () -> fetcher.fetch("http://127.0.0.1:" + closedPort + "/x.png"));
        assertEquals(ImageException.Reason.FETCH_FAILED, e.reason());
        assertTrue(!e.getMessage().contains("127.0.0.1"), "no internal address in the message: " + e.getMessage());
    }

    @Test
    void dataUrls() throws Exception {
        String b64 = Base64.getEncoder().encodeToString(PNG);
        assertArrayEquals(PNG, fetcher.fetch("data:image/png;base64," + b64));
        assertArrayEquals(PNG, fetcher.fetch("DATA:image/png;BASE64," + b64));
        assertArrayEquals("hi!".getBytes(), fetcher.fetch("data:text/plain,hi%21"));
        assertEquals(ImageException.Reason.BAD_URL, failure("data:image/png;base64,***"));
        assertEquals(ImageException.Reason.BAD_URL, failure("data:image/png;base64"));
        String huge = Base64.getEncoder().encodeToString(new byte[2000]);
        assertEquals(ImageException.Reason.TOO_LARGE, failure("data:image/png;base64," + huge));
        // Fetching does not judge content: a data URL holding text is the decoder's to refuse.
        byte[] text = fetcher.fetch("data:image/png;base64," + Base64.getEncoder().encodeToString("hello".getBytes()));
        assertEquals(ImageException.Reason.NOT_AN_IMAGE,
                assertThrows(ImageException.class, () -> ImageDecoder.decode(text)).reason());
    }

    @Test
    void otherSchemesAreRefused() {
        assertEquals(ImageException.Reason.UNSUPPORTED_SCHEME, failure("ftp://example.com/a.png"));
        assertEquals(ImageException.Reason.UNSUPPORTED_SCHEME, failure("file:///etc/passwd"));
        assertEquals(ImageException.Reason.UNSUPPORTED_SCHEME, failure("/etc/passwd"));
        assertEquals(ImageException.Reason.BAD_URL, failure("not a url"));
        assertEquals(ImageException.Reason.BAD_URL, failure(""));
    }

    @Test
    void fileUrlsStayUnderTheAllowedRoot(@TempDir Path tmp) throws Exception {
        Path root = Files.createDirectories(tmp.resolve("root"));
        Files.write(root.resolve("a.png"), PNG);
        Files.write(tmp.resolve("secret.png"), PNG);
        Files.createSymbolicLink(root.resolve("link.png"), tmp.resolve("secret.png"));
        try (ImageFetcher local = new ImageFetcher(Duration.ofSeconds(1), 1000, root)) {
            assertArrayEquals(PNG, local.fetch(root.resolve("a.png").toUri().toString()));
            assertArrayEquals(PNG, local.fetch(root.resolve("a.png").toString())); // bare absolute path
            assertEquals(ImageException.Reason.FORBIDDEN, assertThrows(ImageException.class,
                    () -> local.fetch(tmp.resolve("secret.png").toString())).reason());
            assertEquals(ImageException.Reason.FORBIDDEN, assertThrows(ImageException.class,
                    () -> local.fetch(root + "/../secret.png")).reason());
            String escape = root.toUri() + "../secret.png";
            assertEquals(ImageException.Reason.FORBIDDEN,
                    assertThrows(ImageException.class, () -> local.fetch(escape)).reason());
            assertEquals(ImageException.Reason.FORBIDDEN, assertThrows(ImageException.class,
                    () -> local.fetch(root.resolve("link.png").toUri().toString())).reason());
            assertEquals(ImageException.Reason.FETCH_FAILED, assertThrows(ImageException.class,
                    () -> local.fetch(root.resolve("none.png").toUri().toString())).reason());
        }
    }
}
