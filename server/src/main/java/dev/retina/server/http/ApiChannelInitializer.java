package dev.retina.server.http;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.server.config.ServingOptions;
import io.netty.channel.Channel;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelPipeline;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.cors.CorsHandler;
import io.netty.handler.ssl.SslContext;

import java.util.List;
import java.util.concurrent.Executor;

/**
 * The per-connection pipeline, in order: TLS (with --ssl-*), HTTP/1.1 codec, request id, access log, CORS (answers
 * preflights before auth), body aggregation with a size limit (413), API-key auth (401), Content-Type check (415),
 * admission (429/503), request timeout (504), the router.
 */
public final class ApiChannelInitializer extends ChannelInitializer<Channel> {
    private final int maxRequestBytes;
    private final List<Route> routes;
    private final Executor requestExecutor;
    private final ObjectMapper mapper;
    private final ServingOptions options;
    private final AdmissionControl admission;
    private final SslContext ssl;

    public ApiChannelInitializer(int maxRequestBytes, List<Route> routes, Executor requestExecutor, ObjectMapper mapper) {
        this(maxRequestBytes, routes, requestExecutor, mapper, ServingOptions.defaults(), new AdmissionControl(0), null);
    }

    /** @param ssl null for plain HTTP */
    public ApiChannelInitializer(int maxRequestBytes, List<Route> routes, Executor requestExecutor, ObjectMapper mapper,
                                 ServingOptions options, AdmissionControl admission, SslContext ssl) {
        this.maxRequestBytes = maxRequestBytes;
        this.routes = List.copyOf(routes);
        this.requestExecutor = requestExecutor;
        this.mapper = mapper;
        this.options = options;
        this.admission = admission;
        this.ssl = ssl;
    }

    @Override
    protected void initChannel(Channel ch) {
        ChannelPipeline p = ch.pipeline();
        if (ssl != null) p.addLast("ssl", ssl.newHandler(ch.alloc()));
        p.addLast("codec", new HttpServerCodec());
        p.addLast("slowClients", new SlowClientHandler(options.requestReadTimeout(), options.idleTimeout()));
        p.addLast("requestId", new RequestIdHandler(options.requestIdHeaders()));
        if (options.logRequests()) p.addLast("accessLog", new AccessLogHandler());
        p.addLast("cors", new CorsHandler(CorsPolicy.of(options)));
        p.addLast("aggregator", new JsonErrorAggregator(maxRequestBytes, mapper));
        p.addLast("pipelining", new HttpPipeliningHandler());
        if (!options.apiKeys().isEmpty()) p.addLast("auth", new ApiKeyAuthHandler(options.apiKeys(), mapper));
        p.addLast("contentType", new JsonContentTypeHandler(mapper));
        p.addLast("admission", new AdmissionHandler(admission, mapper));
        if (options.requestTimeout() != null)
            p.addLast("timeout", new RequestTimeoutHandler(options.requestTimeout(), mapper));
        p.addLast("router", new ApiRouter(routes, requestExecutor, mapper));
    }
}
