package dev.retina.server.http;

import io.netty.handler.codec.http.HttpMethod;

/** An exact path and method served by an endpoint. */
public record Route(HttpMethod method, String path, Endpoint endpoint) {
}
