package dev.retina.server.http;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.netty.channel.Channel;
import io.netty.channel.ChannelInitializer;
import io.netty.handler.codec.http.HttpServerCodec;

import java.util.List;
import java.util.concurrent.Executor;

/** The per-connection pipeline: HTTP/1.1 codec, keep-alive, body aggregation with a size limit, the router. */
public final class ApiChannelInitializer extends ChannelInitializer<Channel> {
    private final int maxRequestBytes;
    private final List<Route> routes;
    private final Executor requestExecutor;
    private final ObjectMapper mapper;

    public ApiChannelInitializer(int maxRequestBytes, List<Route> routes, Executor requestExecutor, ObjectMapper mapper) {
        this.maxRequestBytes = maxRequestBytes;
        this.routes = List.copyOf(routes);
        this.requestExecutor = requestExecutor;
        this.mapper = mapper;
    }

    @Override
    protected void initChannel(Channel ch) {
        ch.pipeline().addLast("codec", new HttpServerCodec());
        ch.pipeline().addLast("aggregator", new JsonErrorAggregator(maxRequestBytes, mapper));
        ch.pipeline().addLast("router", new ApiRouter(routes, requestExecutor, mapper));
    }
}
