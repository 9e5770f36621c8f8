package dev.retina.server.http;

import io.netty.handler.codec.http.HttpMethod;

/** A request as endpoints see it: no Netty buffers (the body is copied off the channel before leaving the loop). */
public record ApiRequest(HttpMethod method, String path, byte[] body) {
}
