package dev.retina.server;

import dev.retina.server.config.ServerConfig;
import dev.retina.server.config.ServingOptions;
import org.junit.jupiter.api.Test;

import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLHandshakeException;
import javax.net.ssl.TrustManagerFactory;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * --ssl-keyfile/--ssl-certfile: the server speaks HTTPS with the given PEM pair (a self-signed localhost certificate
 * made once with openssl, in src/test/resources/tls), and a client that trusts it gets answers; one that does not
 * fails the handshake.
 */
class TlsServerTest {
    @Test
    void servesHttpsWithThePemPair() throws Exception {
        Path dir = Path.of(TlsServerTest.class.getResource("/tls/cert.pem").toURI()).getParent();
        ServingOptions options = ServingOptions.defaults().withTls(dir.resolve("key.pem"), dir.resolve("cert.pem"))
                .withApiKeys(List.of("k"));
        try (RetinaServer server = RetinaServer.start(ServerConfig.defaults("tiny"), options,
                c -> new BackendLoader.LoadedModel(FakeChatBackend.fixed(), "/m", 4096))) {
            KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
            trust.load(null, null);
            try (InputStream in = Files.newInputStream(dir.resolve("cert.pem"))) {
                trust.setCertificateEntry("retina", CertificateFactory.getInstance("X.509").generateCertificate(in));
            }
            TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            tmf.init(trust);
            SSLContext ssl = SSLContext.getInstance("TLS");
            ssl.init(null, tmf.getTrustManagers(), null);
            HttpClient client = HttpClient.newBuilder().sslContext(ssl).build();
            URI models = URI.create("https://localhost:" + server.port() + "/v1/models");
            HttpResponse<String> r = client.send(HttpRequest.newBuilder(models).header("Authorization", "Bearer k").build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, r.statusCode());
            assertTrue(r.body().contains("\"id\":\"tiny\""), r.body());
            assertThrows(SSLHandshakeException.class, () -> HttpClient.newHttpClient()
                    .send(HttpRequest.newBuilder(models).build(), HttpResponse.BodyHandlers.ofString()));
        }
    }
}
