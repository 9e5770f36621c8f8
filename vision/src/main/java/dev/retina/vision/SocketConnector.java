package dev.retina.vision;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;

/**
 * Opens the TCP connection for one fetch hop to an address {@link ImageFetcher} has already checked. A seam so tests
 * can check a public-looking address while actually talking to a loopback server; implementations must be
 * thread-safe and must connect to {@code address} (the default does, without a proxy).
 */
@FunctionalInterface
public interface SocketConnector {
    SocketConnector DIRECT = (address, port, timeoutMillis) -> {
        Socket socket = new Socket(java.net.Proxy.NO_PROXY);
        try {
            socket.connect(new InetSocketAddress(address, port), timeoutMillis);
            return socket;
        } catch (IOException | RuntimeException e) {
            socket.close();
            throw e;
        }
    };

    Socket connect(InetAddress address, int port, int timeoutMillis) throws IOException;
}
