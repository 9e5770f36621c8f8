package dev.retina.e2e;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;

/** A client that posts a streaming chat request over a raw socket, holds the stream a while, then hangs up. */
final class HangUpClient {
    private HangUpClient() {
    }

    /**
     * @param firstData wait for the first {@code data:} line before holding (else only for the status line)
     * @return the response's status line
     */
    static String streamThenHangUp(int port, byte[] payload, long holdMillis, boolean firstData)
            throws IOException, InterruptedException {
        try (Socket s = new Socket("127.0.0.1", port)) {
            OutputStream out = s.getOutputStream();
            out.write(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + "Content-Length: " + payload.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(payload);
            out.flush();
            BufferedReader in = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8));
            String status = in.readLine();
            if (firstData) for (String line; (line = in.readLine()) != null; ) if (line.startsWith("data:")) break;
            Thread.sleep(holdMillis); // then hang up mid-stream
            return status;
        }
    }
}
