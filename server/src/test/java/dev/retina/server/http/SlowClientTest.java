package dev.retina.server.http;

import dev.retina.server.RetinaServer;
import dev.retina.server.config.ServerConfig;
import dev.retina.server.config.ServingOptions;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.InputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Slow clients over real sockets (limits shortened to 1 s read and 2 s idle): a request dribbled in byte by byte is
 * cut off, an idle keep-alive connection is closed, and a quick request on a fresh connection is still answered.
 */
class SlowClientTest {
    static RetinaServer server;

    @BeforeAll
    static void boot() throws Exception {
        ServingOptions d = ServingOptions.defaults();
        ServingOptions options = new ServingOptions(d.apiKeys(), d.allowedOrigins(), d.allowedMethods(),
                d.allowedHeaders(), d.maxNumWaiting(), d.requestTimeout(), false, false, null, null, "assistant",
                false, Duration.ofSeconds(1), Duration.ofSeconds(2));
        // No model is needed for these routes: a stand-in backend that never answers generations.
        server = RetinaServer.start(ServerConfig.defaults("demo"), options,
                config -> new dev.retina.server.BackendLoader.LoadedModel(
                        (request, listener) -> () -> { }, "none", 16));
    }

    @AfterAll
    static void stop() {
        if (server != null) server.close();
    }

    /** Reads until the server closes (-1) or the socket timeout; returns what arrived. */
    static String readAll(Socket s) throws Exception {
        s.setSoTimeout(10_000);
        InputStream in = s.getInputStream();
        return new String(in.readAllBytes(), StandardCharsets.ISO_8859_1);
    }

    @Test
    void aRequestDribbledInIsCutOff() throws Exception {
        try (Socket s = new Socket("127.0.0.1", server.port())) {
            long start = System.nanoTime();
            byte[] head = "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ".getBytes(StandardCharsets.ISO_8859_1);
            s.getOutputStream().write(head);
            boolean closed = false;
            for (int i = 0; i < 40 && !closed; i++) { // one byte every 100 ms: 4 s if allowed
                try {
                    s.getOutputStream().write('a');
                    s.getOutputStream().flush();
                } catch (java.io.IOException e) {
                    closed = true;
                }
                Thread.sleep(100);
            }
            String got = closed ? "" : readAll(s);
            double seconds = (System.nanoTime() - start) / 1e9;
            assertTrue(closed || !got.contains("HTTP/1.1 200"), got);
            assertTrue(seconds < 4, "cut off after " + seconds + " s");
        }
    }

    @Test
    void anIdleKeepAliveConnectionIsClosedAndAFreshRequestIsAnswered() throws Exception {
        try (Socket s = new Socket("127.0.0.1", server.port())) {
            s.getOutputStream().write("GET /version HTTP/1.1\r\nHost: x\r\n\r\n".getBytes(StandardCharsets.ISO_8859_1));
            long start = System.nanoTime();
            String got = readAll(s); // the answer, then the close when the 2 s idle limit passes
            double seconds = (System.nanoTime() - start) / 1e9;
            assertTrue(got.startsWith("HTTP/1.1 200"), got);
            assertTrue(seconds > 1.5 && seconds < 6, "closed after " + seconds + " s of idleness");
        }
        try (Socket s = new Socket("127.0.0.1", server.port())) {
            s.getOutputStream().write("GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                    .getBytes(StandardCharsets.ISO_8859_1));
            assertEquals("HTTP/1.1 200", readAll(s).substring(0, 12));
        }
    }
}
