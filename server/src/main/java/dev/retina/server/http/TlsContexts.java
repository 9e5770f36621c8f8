package dev.retina.server.http;

import dev.retina.server.config.ConfigException;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;

import java.nio.file.Path;

/** Builds the server's TLS context from PEM files ({@code --ssl-certfile}, {@code --ssl-keyfile}: PKCS#8 key). */
public final class TlsContexts {
    private TlsContexts() {
    }

    public static SslContext server(Path certFile, Path keyFile) {
        try {
            return SslContextBuilder.forServer(certFile.toFile(), keyFile.toFile()).build();
        } catch (Exception e) {
            // The flags name the files; the JDK's text says what is wrong with them (no secret in it).
            throw new ConfigException("cannot use --ssl-certfile " + certFile + " / --ssl-keyfile " + keyFile + ": "
                    + e.getMessage());
        }
    }
}
