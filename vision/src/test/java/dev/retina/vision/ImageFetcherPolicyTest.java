package dev.retina.vision;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.UnknownHostException;
import java.time.Duration;
import java.util.Base64;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The fetch policy against a loopback server: private targets refused by default, every redirect hop re-checked,
 * the checked address pinned, limits, cache. A fake public name ({@code images.example.test}) resolves (through an
 * injected {@link HostResolver}) to a public-looking address; an injected {@link SocketConnector} then carries
 * connections to that address to the loopback server, recording each address it was asked for.
 */
class ImageFetcherPolicyTest {
    private static final byte[] PNG = TestImages.encode(new BufferedImage(4, 4, BufferedImage.TYPE_3BYTE_BGR), "png");
    private static final String FAKE_HOST = "images.example.test";
    private static final InetAddress FAKE_PUBLIC = address(93, 184, 216, 34);

    private HttpServer server;
    private ExecutorService executor;
    private final List<InetAddress> connectedTo = new CopyOnWriteArrayList<>();
    private final AtomicInteger resolutions = new AtomicInteger();
    private final AtomicInteger requests = new AtomicInteger();
    private final List<String> ifNoneMatch = new CopyOnWriteArrayList<>();

    private static InetAddress address(int a, int b, int c, int d) {
        try {
            return InetAddress.getByAddress(new byte[] {(byte) a, (byte) b, (byte) c, (byte) d});
        } catch (UnknownHostException e) {
            throw new AssertionError(e);
        }
    }

    private final HostResolver resolver = host -> {
        resolutions.incrementAndGet();
        if (host.equals(FAKE_HOST)) return new InetAddress[] {FAKE_PUBLIC};
        if (host.equals("mixed.example.test")) return new InetAddress[] {FAKE_PUBLIC, address(10, 0, 0, 7)};
        return HostResolver.SYSTEM.resolve(host);
    };

    private final SocketConnector connector = (address, port, timeoutMillis) -> {
        connectedTo.add(address);
        InetAddress target = address.equals(FAKE_PUBLIC) ? InetAddress.getLoopbackAddress() : address;
        return SocketConnector.DIRECT.connect(target, port, timeoutMillis);
    };

    @BeforeEach
    void start() throws IOException {
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        server.createContext("/img.png", ex -> send(ex, 200, "image/png", PNG));
        server.createContext("/page.html", ex -> send(ex, 200, "text/html; charset=utf-8", "<html>".getBytes()));
        server.createContext("/to-loopback", ex -> redirect(ex, "http://127.0.0.1:" + port() + "/img.png"));
        server.createContext("/to-metadata", ex -> redirect(ex, "http://169.254.169.254/latest/meta-data/"));
        server.createContext("/to-metadata-name", ex -> redirect(ex, "http://metadata.google.internal/x"));
        server.createContext("/to-fake", ex -> redirect(ex, "http://" + FAKE_HOST + ":" + port() + "/img.png"));
        server.createContext("/huge", ex -> { // 30 MB, chunked: only the streaming cap can stop it
            ex.getResponseHeaders().add("Content-Type", "image/png");
            ex.sendResponseHeaders(200, 0);
            try (OutputStream out = ex.getResponseBody()) {
                byte[] mb = new byte[1 << 20];
                for (int i = 0; i < 30; i++) out.write(mb);
            } catch (IOException ignored) {
                // we hung up at the cap
            }
        });
        server.createContext("/huge-declared", ex -> {
            ex.getResponseHeaders().add("Content-Type", "image/png");
            ex.sendResponseHeaders(200, 30L << 20);
            try (OutputStream out = ex.getResponseBody()) { // 1 KB, then stall: the declared length must refuse
                out.write(new byte[1024]);
                out.flush();
                Thread.sleep(5000);
            } catch (IOException | InterruptedException ignored) {
                // we hung up
            }
        });
        server.createContext("/drip", ex -> { // one byte per second
            ex.sendResponseHeaders(200, 0);
            try (OutputStream out = ex.getResponseBody()) {
                for (int i = 0; i < 30; i++) {
                    out.write(1);
                    out.flush();
                    Thread.sleep(1000);
                }
            } catch (IOException | InterruptedException ignored) {
                // we hung up at the deadline
            }
        });
        server.createContext("/etag", ex -> {
            requests.incrementAndGet();
            String inm = ex.getRequestHeaders().getFirst("If-None-Match");
            ifNoneMatch.add(String.valueOf(inm));
            ex.getResponseHeaders().add("ETag", "\"v1\"");
            ex.getResponseHeaders().add("Cache-Control", "max-age=0");
            if ("\"v1\"".equals(inm)) {
                ex.sendResponseHeaders(304, -1);
                ex.close();
            } else {
                send(ex, 200, "image/png", PNG);
            }
        });
        server.createContext("/fresh", ex -> {
            requests.incrementAndGet();
            ex.getResponseHeaders().add("Cache-Control", "public, max-age=600");
            send(ex, 200, "image/png", PNG);
        });
        executor = Executors.newCachedThreadPool();
        server.setExecutor(executor);
        server.start();
    }

    @AfterEach
    void stop() {
        server.stop(0);
        executor.shutdownNow();
    }

    private int port() {
        return server.getAddress().getPort();
    }

    private static void send(HttpExchange ex, int status, String type, byte[] body) throws IOException {
        ex.getResponseHeaders().add("Content-Type", type);
        ex.sendResponseHeaders(status, body.length);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(body);
        }
    }

    private static void redirect(HttpExchange ex, String location) throws IOException {
        ex.getResponseHeaders().add("Location", location);
        ex.sendResponseHeaders(302, -1);
        ex.close();
    }

    private ImageFetcher fetcher(FetchPolicy policy) {
        return new ImageFetcher(policy, null, resolver, connector, null, new FetchCache(FetchCache.DEFAULT_MAX_BYTES));
    }

    private String fake(String path) {
        return "http://" + FAKE_HOST + ":" + port() + path;
    }

    private static ImageException failure(ImageFetcher f, String url) {
        ImageException e = assertThrows(ImageException.class, () -> f.fetch(url), url);
        assertFalse(e.getMessage().contains("127.0.0.1") || e.getMessage().contains("169.254")
                || e.getMessage().contains("Exception"), "user-safe message: " + e.getMessage());
        return e;
    }

    /** After any refusal the same fetcher still works. */
    private void assertNextFetchWorks(ImageFetcher f) throws ImageException {
        assertArrayEquals(PNG, f.fetch(fake("/img.png")));
    }

    @Test
    void loopbackIsRefusedByDefaultAndAllowedWhenPrivateUrlsAre() throws Exception {
        ImageFetcher strict = fetcher(FetchPolicy.defaults());
        for (String url : List.of("http://127.0.0.1:" + port() + "/img.png", "http://localhost:" + port() + "/img.png",
                "http://[::1]:" + port() + "/img.png", "http://0.0.0.0:" + port() + "/img.png",
                "http://mixed.example.test:" + port() + "/img.png", "http://metadata.google.internal/x",
                "http://169.254.169.254/latest/meta-data/", "http://[::ffff:127.0.0.1]:" + port() + "/img.png")) {
            assertEquals(ImageException.Reason.FORBIDDEN, failure(strict, url).reason(), url);
            assertNextFetchWorks(strict);
        }
        assertFalse(connectedTo.stream().anyMatch(a -> !a.equals(FAKE_PUBLIC)), "never connected to a refused host");
        ImageFetcher open = fetcher(FetchPolicy.defaults().withAllowPrivateMediaUrls(true));
        assertArrayEquals(PNG, open.fetch("http://127.0.0.1:" + port() + "/img.png"));
    }

    @Test
    void everyRedirectHopIsCheckedAgain() throws Exception {
        ImageFetcher strict = fetcher(FetchPolicy.defaults());
        for (String path : List.of("/to-loopback", "/to-metadata", "/to-metadata-name")) {
            assertEquals(ImageException.Reason.FORBIDDEN, failure(strict, fake(path)).reason(), path);
            assertNextFetchWorks(strict);
        }
        // A private start redirecting to a public host is fine when private URLs are allowed.
        ImageFetcher open = fetcher(FetchPolicy.defaults().withAllowPrivateMediaUrls(true));
        assertArrayEquals(PNG, open.fetch("http://127.0.0.1:" + port() + "/to-fake"));
        // maxRedirects 0: the first redirect is refused.
        assertEquals(ImageException.Reason.HTTP_STATUS,
                failure(fetcher(FetchPolicy.defaults().withMaxRedirects(0)), fake("/to-fake")).reason());
    }

    @Test
    void connectsToTheCheckedAddressAfterOneResolution() throws Exception {
        ImageFetcher strict = fetcher(FetchPolicy.defaults());
        connectedTo.clear();
        resolutions.set(0);
        assertArrayEquals(PNG, strict.fetch(fake("/img.png")));
        assertEquals(List.of(FAKE_PUBLIC), connectedTo); // the checked address, not a fresh lookup
        assertEquals(1, resolutions.get());
    }

    @Test
    void domainAllowListAdmitsTheDomainAndItsSubdomainsOnly() throws Exception {
        ImageFetcher listed = fetcher(FetchPolicy.defaults().withAllowedMediaDomains(Set.of("example.test")));
        assertArrayEquals(PNG, listed.fetch(fake("/img.png")));
        ImageFetcher other = fetcher(FetchPolicy.defaults().withAllowedMediaDomains(Set.of("cdn.example.org")));
        assertEquals(ImageException.Reason.FORBIDDEN, failure(other, fake("/img.png")).reason());
    }

    @Test
    void thirtyMegabytesAreCutAtTheTwentyMegabyteCap() throws Exception {
        ImageFetcher f = fetcher(FetchPolicy.defaults().withTimeout(Duration.ofSeconds(20)));
        long start = System.nanoTime();
        assertEquals(ImageException.Reason.TOO_LARGE, failure(f, fake("/huge")).reason());
        long declaredStart = System.nanoTime();
        assertEquals(ImageException.Reason.TOO_LARGE, failure(f, fake("/huge-declared")).reason());
        assertTrue(System.nanoTime() - declaredStart < 2_000_000_000L, "refused from Content-Length, no waiting");
        assertTrue(System.nanoTime() - start < 10_000_000_000L);
        assertNextFetchWorks(f);
    }

    @Test
    void aOneBytePerSecondDripEndsAtTheDeadline() throws Exception {
        ImageFetcher f = fetcher(FetchPolicy.defaults().withTimeout(Duration.ofMillis(2500)));
        long start = System.nanoTime();
        assertEquals(ImageException.Reason.TIMEOUT, failure(f, fake("/drip")).reason());
        long ms = (System.nanoTime() - start) / 1_000_000;
        assertTrue(ms >= 2400 && ms < 3500, "ended after " + ms + " ms");
        assertNextFetchWorks(f);
    }

    @Test
    void nonImageContentTypeIsRefused() throws Exception {
        ImageFetcher f = fetcher(FetchPolicy.defaults());
        assertEquals(ImageException.Reason.NOT_AN_IMAGE, failure(f, fake("/page.html")).reason());
        assertNextFetchWorks(f);
    }

    @Test
    void dataUrlSizeIsCheckedBeforeDecoding() throws Exception {
        ImageFetcher f = fetcher(FetchPolicy.defaults().withMaxImageBytes(1000));
        // Invalid base64 that is too long: TOO_LARGE (not BAD_URL) proves the length was judged first.
        assertEquals(ImageException.Reason.TOO_LARGE, failure(f, "data:image/png;base64," + "*".repeat(2000)).reason());
        String ok = "data:image/png;base64," + Base64.getEncoder().encodeToString(PNG);
        assertArrayEquals(PNG, f.fetch(ok));
    }

    @Test
    void etagIsRevalidatedAndMaxAgeServedFromCache() throws Exception {
        ImageFetcher f = fetcher(FetchPolicy.defaults());
        assertArrayEquals(PNG, f.fetch(fake("/etag")));
        assertArrayEquals(PNG, f.fetch(fake("/etag"))); // stale at once (max-age=0): revalidated, 304
        assertEquals(List.of("null", "\"v1\""), ifNoneMatch);
        requests.set(0);
        assertArrayEquals(PNG, f.fetch(fake("/fresh")));
        assertArrayEquals(PNG, f.fetch(fake("/fresh")));
        assertEquals(1, requests.get()); // the second came from the cache
    }

    @ParameterizedTest
    @CsvSource({"8.8.8.8,true", "93.184.216.34,true", "127.0.0.1,false", "10.1.2.3,false", "172.16.0.1,false",
            "172.32.0.1,true", "192.168.1.1,false", "169.254.169.254,false", "100.64.0.1,false", "100.128.0.1,true",
            "0.0.0.0,false", "255.255.255.255,false", "224.0.0.1,false", "198.18.0.1,false", "192.0.2.1,false",
            "::,false", "::1,false", "fc00::1,false", "fd12::1,false", "fe80::1,false", "ff02::1,false",
            "::ffff:127.0.0.1,false", "::ffff:8.8.8.8,true", "64:ff9b::a00:1,false", "64:ff9b::808:808,true",
            "2002:a00:1::,false", "2001:db8::1,false", "2606:4700::1111,true", "2001:4860:4860::8888,true"})
    void addressRules(String literal, boolean isPublic) throws Exception {
        assertEquals(isPublic, AddressRules.isPublic(InetAddress.getByName(literal)), literal);
    }

    @ParameterizedTest
    @CsvSource({"example.com,true", "cdn.example.com,true", "a.b.example.com,true", "badexample.com,false",
            "example.com.evil.org,false", "EXAMPLE.COM.,true", "1.2.3.4,false", "other.org,false"})
    void domainAllowList(String host, boolean allowed) {
        FetchPolicy p = FetchPolicy.defaults().withAllowedMediaDomains(Set.of("example.com"));
        assertEquals(allowed, p.domainAllowed(FetchPolicy.normalizeHost(host)), host);
    }
}
