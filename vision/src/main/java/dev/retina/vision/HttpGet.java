package dev.retina.vision;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;

/**
 * One HTTP/1.1 GET over an already connected (and, for https, handshaken) socket: request, status line, headers, and a
 * Content-Length, chunked or read-to-close body; no keep-alive, no compression. {@link ImageFetcher} uses it instead
 * of {@code java.net.http.HttpClient} because it must connect to the exact address it checked (HttpClient resolves
 * the name itself and forbids setting {@code Host}). Every socket read gets the time left to one deadline, so a
 * server dripping a byte a second still ends at the deadline; the body is capped while streaming. Stateless; the
 * socket is the caller's to close.
 */
final class HttpGet {
    static final int MAX_LINE_BYTES = 8 * 1024;
    static final int MAX_HEADER_BYTES = 64 * 1024;
    static final int MAX_HEADERS = 100;

    /** The deadline passed while connecting or reading. */
    static final class DeadlineExceeded extends IOException {
        DeadlineExceeded() {
            super("deadline exceeded");
        }
    }

    /** The body grew (or was declared) past the cap. */
    static final class BodyTooLarge extends IOException {
        BodyTooLarge() {
            super("body too large");
        }
    }

    /** The server broke HTTP/1.1 framing. */
    static final class Malformed extends IOException {
        Malformed(String what) {
            super(what);
        }
    }

    /**
     * @param headers lower-cased names to values in arrival order
     * @param body    null unless the status is 2xx
     */
    record Response(int status, Map<String, List<String>> headers, byte[] body) {
        Optional<String> header(String name) {
            List<String> values = headers.get(name);
            return values == null || values.isEmpty() ? Optional.empty() : Optional.of(values.getFirst());
        }
    }

    private HttpGet() {
    }

    /**
     * Sends {@code GET target} with {@code Host: hostHeader} and reads the answer; the body only for 2xx statuses.
     *
     * @param target     origin-form request target ({@code /path?query}), printable ASCII only
     * @param extra      additional request headers (e.g. If-None-Match), values printable ASCII only
     * @param deadline   {@link System#nanoTime()} by which everything must have been read
     */
    static Response exchange(Socket socket, String hostHeader, String target, Map<String, String> extra,
                             long deadline, long maxBodyBytes) throws IOException {
        StringBuilder request = new StringBuilder(256)
                .append("GET ").append(printable(target)).append(" HTTP/1.1\r\n")
                .append("Host: ").append(printable(hostHeader)).append("\r\n")
                .append("User-Agent: Retina\r\nAccept: image/*\r\nAccept-Encoding: identity\r\nConnection: close\r\n");
        for (Map.Entry<String, String> h : extra.entrySet())
            request.append(printable(h.getKey())).append(": ").append(printable(h.getValue())).append("\r\n");
        request.append("\r\n");
        setTimeout(socket, deadline);
        OutputStream out = socket.getOutputStream();
        try {
            out.write(request.toString().getBytes(StandardCharsets.US_ASCII));
            out.flush();
        } catch (SocketTimeoutException e) {
            throw new DeadlineExceeded();
        }
        InputStream in = new BufferedInputStream(new DeadlineInputStream(socket, deadline), 16 * 1024);

        int[] headerBudget = {MAX_HEADER_BYTES};
        String statusLine = readLine(in, headerBudget);
        int status = parseStatus(statusLine);
        while (status >= 100 && status < 200) { // interim answers (100 Continue) precede the real one
            skipHeaders(in, headerBudget);
            status = parseStatus(readLine(in, headerBudget));
        }
        Map<String, List<String>> headers = readHeaders(in, headerBudget);
        if (status < 200 || status >= 300) return new Response(status, headers, null);

        List<String> te = headers.get("transfer-encoding");
        if (te != null) {
            String last = te.getLast().toLowerCase(Locale.ROOT).strip();
            if (!last.endsWith("chunked")) throw new Malformed("unsupported transfer-encoding");
            if (!last.equals("chunked")) throw new Malformed("unsupported transfer-encoding");
            return new Response(status, headers, readChunked(in, maxBodyBytes, headerBudget));
        }
        List<String> cl = headers.get("content-length");
        if (cl != null) {
            long length = -1;
            for (String v : cl) {
                long n;
                try {
                    n = Long.parseLong(v.strip());
                } catch (NumberFormatException e) {
                    throw new Malformed("bad content-length");
                }
                if (n < 0 || (length >= 0 && n != length)) throw new Malformed("bad content-length");
                length = n;
            }
            if (length > maxBodyBytes) throw new BodyTooLarge(); // refused before reading a byte of it
            byte[] body = in.readNBytes((int) length);
            if (body.length < length) throw new Malformed("connection closed before the body was complete");
            return new Response(status, headers, body);
        }
        return new Response(status, headers, readCapped(in, maxBodyBytes)); // delimited by connection close
    }

    private static String printable(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x20 || c > 0x7e) throw new IllegalArgumentException("not printable ASCII");
        }
        return s;
    }

    private static void setTimeout(Socket socket, long deadline) throws IOException {
        long remaining = deadline - System.nanoTime();
        if (remaining <= 0) throw new DeadlineExceeded();
        socket.setSoTimeout((int) Math.max(1, Math.min(Integer.MAX_VALUE, (remaining + 999_999) / 1_000_000)));
    }

    private static int parseStatus(String line) throws Malformed {
        // "HTTP/1.1 200 OK" (reason optional)
        if (!line.startsWith("HTTP/1.") || line.length() < 12 || line.charAt(8) != ' ')
            throw new Malformed("bad status line");
        String code = line.substring(9, 12);
        if (line.length() > 12 && line.charAt(12) != ' ') throw new Malformed("bad status line");
        for (int i = 0; i < 3; i++) if (!Character.isDigit(code.charAt(i))) throw new Malformed("bad status line");
        return Integer.parseInt(code);
    }

    private static Map<String, List<String>> readHeaders(InputStream in, int[] budget) throws IOException {
        Map<String, List<String>> headers = new LinkedHashMap<>();
        int count = 0;
        for (String line = readLine(in, budget); !line.isEmpty(); line = readLine(in, budget)) {
            if (++count > MAX_HEADERS) throw new Malformed("too many headers");
            int colon = line.indexOf(':');
            if (colon <= 0 || line.charAt(0) == ' ' || line.charAt(0) == '\t') throw new Malformed("bad header");
            String name = line.substring(0, colon).toLowerCase(Locale.ROOT);
            if (name.indexOf(' ') >= 0 || name.indexOf('\t') >= 0) throw new Malformed("bad header");
            headers.computeIfAbsent(name, k -> new ArrayList<>(1)).add(line.substring(colon + 1).strip());
        }
        return headers;
    }

    private static void skipHeaders(InputStream in, int[] budget) throws IOException {
        int count = 0;
        while (!readLine(in, budget).isEmpty()) if (++count > MAX_HEADERS) throw new Malformed("too many headers");
    }

    /** One CRLF- (or LF-) terminated line as ISO-8859-1, counting against {@code budget[0]}. */
    private static String readLine(InputStream in, int[] budget) throws IOException {
        StringBuilder line = new StringBuilder(64);
        while (true) {
            int b = in.read();
            if (b < 0) throw new Malformed("connection closed in the headers");
            if (--budget[0] < 0 || line.length() >= MAX_LINE_BYTES) throw new Malformed("headers too long");
            if (b == '\n') {
                int n = line.length();
                if (n > 0 && line.charAt(n - 1) == '\r') line.setLength(n - 1);
                return line.toString();
            }
            line.append((char) b);
        }
    }

    private static byte[] readCapped(InputStream in, long max) throws IOException {
        ByteArrayOutputStream body = new ByteArrayOutputStream(8192);
        byte[] buf = new byte[16 * 1024];
        for (int n; (n = in.read(buf)) > 0; ) {
            if (body.size() + (long) n > max) throw new BodyTooLarge();
            body.write(buf, 0, n);
        }
        return body.toByteArray();
    }

    private static byte[] readChunked(InputStream in, long max, int[] budget) throws IOException {
        ByteArrayOutputStream body = new ByteArrayOutputStream(8192);
        byte[] buf = new byte[16 * 1024];
        while (true) {
            int[] lineBudget = {MAX_LINE_BYTES};
            String line = readLine(in, lineBudget);
            int semi = line.indexOf(';');
            String hex = (semi >= 0 ? line.substring(0, semi) : line).strip();
            long size;
            try {
                if (hex.isEmpty() || hex.length() > 15 || hex.charAt(0) == '-' || hex.charAt(0) == '+')
                    throw new NumberFormatException();
                size = Long.parseLong(hex, 16);
            } catch (NumberFormatException e) {
                throw new Malformed("bad chunk size");
            }
            if (size == 0) {
                skipHeaders(in, budget); // trailers
                return body.toByteArray();
            }
            if (body.size() + size > max) throw new BodyTooLarge();
            for (long left = size; left > 0; ) {
                int n = in.read(buf, 0, (int) Math.min(buf.length, left));
                if (n < 0) throw new Malformed("connection closed in a chunk");
                body.write(buf, 0, n);
                left -= n;
            }
            if (!readLine(in, lineBudget).isEmpty()) throw new Malformed("bad chunk end");
        }
    }

    /** Gives every read of the socket only the time left to the deadline. */
    private static final class DeadlineInputStream extends InputStream {
        private final Socket socket;
        private final InputStream in;
        private final long deadline;

        DeadlineInputStream(Socket socket, long deadline) throws IOException {
            this.socket = socket;
            this.in = socket.getInputStream();
            this.deadline = deadline;
        }

        @Override
        public int read() throws IOException {
            byte[] one = new byte[1];
            int n = read(one, 0, 1);
            return n < 0 ? -1 : one[0] & 0xff;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            setTimeout(socket, deadline);
            try {
                return in.read(b, off, len);
            } catch (SocketTimeoutException e) {
                throw new DeadlineExceeded();
            }
        }
    }
}
