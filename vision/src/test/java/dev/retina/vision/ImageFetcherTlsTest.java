package dev.retina.vision;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpsConfigurator;
import com.sun.net.httpserver.HttpsParameters;
import com.sun.net.httpserver.HttpsServer;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.CertificateException;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SNIMatcher;
import javax.net.ssl.SNIServerName;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocketFactory;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * https fetches against live TLS servers on 127.0.0.1 with self-signed certificates made at test time by the JDK's
 * {@code keytool}: one for {@code localhost} (SAN dns:localhost, ip:127.0.0.1), one for {@code other.test}. The
 * client trusts both, so a refusal can only come from hostname verification, never from trust.
 */
class ImageFetcherTlsTest {
    private static final byte[] PNG = TestImages.encode(new BufferedImage(4, 4, BufferedImage.TYPE_3BYTE_BGR), "png");
    private static final char[] PASSWORD = "changeit".toCharArray();
    private static final InetAddress LOOPBACK = InetAddress.getLoopbackAddress();

    @TempDir
    static Path dir;
    private static HttpsServer localhostServer;
    private static HttpsServer otherServer;
    private static ExecutorService executor;
    private static SSLSocketFactory clientTls;
    private static final List<String> sniSeen = new CopyOnWriteArrayList<>();
    private static final AtomicInteger requests = new AtomicInteger();
    private final AtomicInteger connections = new AtomicInteger();

    /** localhost and other.test resolve to 127.0.0.1 (IPv4: the servers listen there only). */
    private final HostResolver resolver = host -> switch (host) {
        case "localhost", "other.test" -> new InetAddress[] {InetAddress.getByAddress(host, new byte[] {127, 0, 0, 1})};
        default -> HostResolver.SYSTEM.resolve(host); // IP literals parse without DNS
    };

    private final SocketConnector countingConnector = (address, port, timeoutMillis) -> {
        connections.incrementAndGet();
        return SocketConnector.DIRECT.connect(address, port, timeoutMillis);
    };

    @BeforeAll
    static void start() throws Exception {
        Path localhostKeys = keytool("localhost", "CN=localhost", "SAN=dns:localhost,ip:127.0.0.1");
        Path otherKeys = keytool("other", "CN=other.test", "SAN=dns:other.test");
        executor = Executors.newCachedThreadPool();
        localhostServer = server(localhostKeys);
        otherServer = server(otherKeys);

        KeyStore trusted = KeyStore.getInstance("PKCS12");
        trusted.load(null, null);
        trusted.setCertificateEntry("localhost", load(localhostKeys).getCertificate("localhost"));
        trusted.setCertificateEntry("other", load(otherKeys).getCertificate("other"));
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trusted);
        SSLContext client = SSLContext.getInstance("TLS");
        client.init(null, tmf.getTrustManagers(), null);
        clientTls = client.getSocketFactory();
    }

    @AfterAll
    static void stop() {
        if (localhostServer != null) localhostServer.stop(0);
        if (otherServer != null) otherServer.stop(0);
        if (executor != null) executor.shutdownNow();
    }

    /** A PKCS12 key store holding one self-signed EC key pair under {@code alias}. */
    private static Path keytool(String alias, String dname, String san) throws Exception {
        Path java = Path.of(ProcessHandle.current().info().command().orElseThrow());
        Path keytool = java.resolveSibling("keytool");
        Path store = dir.resolve(alias + ".p12");
        Process p = new ProcessBuilder(keytool.toString(), "-genkeypair", "-alias", alias, "-keyalg", "EC",
                "-groupname", "secp256r1", "-dname", dname, "-ext", san, "-validity", "2", "-storetype", "PKCS12",
                "-keystore", store.toString(), "-storepass", new String(PASSWORD), "-keypass", new String(PASSWORD))
                .redirectErrorStream(true).start();
        String output;
        try (InputStream in = p.getInputStream()) {
            output = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "keytool finished");
        assertEquals(0, p.exitValue(), "keytool: " + output);
        assertTrue(Files.size(store) > 0);
        return store;
    }

    private static KeyStore load(Path store) throws Exception {
        KeyStore ks = KeyStore.getInstance("PKCS12");
        try (InputStream in = Files.newInputStream(store)) {
            ks.load(in, PASSWORD);
        }
        return ks;
    }

    private static HttpsServer server(Path keys) throws Exception {
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(load(keys), PASSWORD);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(kmf.getKeyManagers(), null, null);
        HttpsServer server = HttpsServer.create(new InetSocketAddress(LOOPBACK, 0), 0);
        server.setHttpsConfigurator(new HttpsConfigurator(context) {
            @Override
            public void configure(HttpsParameters params) {
                SSLParameters ssl = context.getDefaultSSLParameters();
                ssl.setSNIMatchers(List.of(new SNIMatcher(0) { // records the SNI name the client sent
                    @Override
                    public boolean matches(SNIServerName name) {
                        sniSeen.add(((SNIHostName) name).getAsciiName());
                        return true;
                    }
                }));
                params.setSSLParameters(ssl);
            }
        });
        server.createContext("/img.png", ex -> {
            requests.incrementAndGet();
            ex.getResponseHeaders().add("Content-Type", "image/png");
            ex.sendResponseHeaders(200, PNG.length);
            try (OutputStream out = ex.getResponseBody()) {
                out.write(PNG);
            }
        });
        server.setExecutor(executor);
        server.start();
        return server;
    }

    private ImageFetcher fetcher(FetchPolicy policy) {
        return new ImageFetcher(policy, null, resolver, countingConnector, clientTls, null);
    }

    private static FetchPolicy privateAllowed() {
        return FetchPolicy.defaults().withAllowPrivateMediaUrls(true);
    }

    private static String url(String host, HttpsServer server) {
        return "https://" + host + ":" + server.getAddress().getPort() + "/img.png";
    }

    @Test
    void httpsToLocalhostFetchesWithSniWhenPrivateUrlsAreAllowed() throws Exception {
        sniSeen.clear();
        try (ImageFetcher f = fetcher(privateAllowed())) {
            assertArrayEquals(PNG, f.fetch(url("localhost", localhostServer)));
            assertEquals(List.of("localhost"), sniSeen, "SNI carries the URL's host");
            // An IP literal matches the certificate's IP SAN; no SNI is sent for it (RFC 6066 forbids literals).
            sniSeen.clear();
            assertArrayEquals(PNG, f.fetch(url("127.0.0.1", localhostServer)));
            assertEquals(List.of(), sniSeen);
        }
    }

    @Test
    void aCertificateForAnotherNameIsRefusedWithAUserSafeMessage() throws Exception {
        try (ImageFetcher f = fetcher(privateAllowed())) {
            int before = requests.get();
            ImageException e = assertThrows(ImageException.class, () -> f.fetch(url("localhost", otherServer)));
            assertEquals(ImageException.Reason.FETCH_FAILED, e.reason());
            assertEquals("the TLS connection to the image host failed (certificate or protocol)", e.getMessage());
            assertFalse(e.getMessage().contains("127.0.0.1") || e.getMessage().contains("other.test"));
            assertEquals(before, requests.get(), "no request was sent over the unverified connection");
            // The cause (for logs only) is the hostname check, not trust: the same server verifies under its name.
            Throwable cause = e.getCause();
            while (cause != null && !(cause instanceof CertificateException)) cause = cause.getCause();
            assertTrue(cause != null && cause.getMessage().contains("localhost"), String.valueOf(e.getCause()));
            assertArrayEquals(PNG, f.fetch(url("other.test", otherServer)));
        }
    }

    @Test
    void theDefaultPolicyRefusesLoopbackBeforeConnectingOrHandshaking() {
        try (ImageFetcher f = fetcher(FetchPolicy.defaults())) {
            for (String host : List.of("localhost", "127.0.0.1", "other.test")) {
                int before = requests.get();
                ImageException e = assertThrows(ImageException.class, () -> f.fetch(url(host, localhostServer)), host);
                assertEquals(ImageException.Reason.FORBIDDEN, e.reason(), host);
                if (!host.equals("127.0.0.1")) // the resolved address stays in the logs
                    assertFalse(e.getMessage().contains("127.0.0.1"), e.getMessage());
                assertEquals(before, requests.get(), host);
            }
            assertEquals(0, connections.get(), "no TCP connection, so no TLS handshake");
        }
    }
}
