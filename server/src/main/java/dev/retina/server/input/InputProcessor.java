package dev.retina.server.input;

import dev.retina.engine.EngineRequest;
import dev.retina.engine.ImageInput;
import dev.retina.engine.SamplingParams;
import dev.retina.server.protocol.ApiException;
import dev.retina.server.protocol.ChatCompletionRequest;
import dev.retina.server.protocol.ChatCompletionResponse;
import dev.retina.server.protocol.ChatMessage;
import dev.retina.server.protocol.ContentPart;
import dev.retina.server.protocol.ImageUrlPart;
import dev.retina.server.protocol.MessageContent;
import dev.retina.server.protocol.TextPart;
import dev.retina.server.protocol.ToolArguments;
import dev.retina.templates.ChatTemplate;
import dev.retina.templates.ChatTemplateException;
import dev.retina.templates.ContentFormat;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;

/**
 * Turns a validated chat request into an {@link EngineRequest}, off the event loop on a bounded executor: fetches
 * and preprocesses each image, converts the messages to the chat template's content format, renders the template,
 * tokenizes, expands each image placeholder to the model's image-token count, and builds the sampling settings.
 *
 * <p>Content formats follow vLLM: an OPENAI-format template gets each message's content as a list of
 * {@code {"type":"image"}} and {@code {"type":"text","text":…}} items in request order; a STRING-format template gets
 * one string per message: each image's placeholder on its own line, then the text parts, joined by newlines.
 */
public final class InputProcessor {
    private static final Logger log = LoggerFactory.getLogger(InputProcessor.class);
    /** OpenAI's default when temperature is absent. */

    private final ChatTemplate template;
    private final PromptTokenizer tokenizer;
    private final ImageLoader imageLoader; // null: images refused (--disable-image-processor)
    private final PromptLimits limits;
    private final String imagePlaceholder;
    private final Executor executor;
    private final Executor imageExecutor;

    /**
     * Loads a request's images one after another on the thread that prepares it.
     *
     * @param imageLoader null when the image processor is disabled; image parts are then refused with 400
     * @param executor    bounded; where fetching, preprocessing, rendering and tokenizing run
     */
    public InputProcessor(ChatTemplate template, PromptTokenizer tokenizer, ImageLoader imageLoader,
                          PromptLimits limits, Executor executor) {
        this(template, tokenizer, imageLoader, limits, executor, Runnable::run);
    }

    /**
     * @param imageExecutor where each image is fetched, decoded and preprocessed, in parallel across the images of a
     *                      request and across requests ({@link ImageLoadPool}); it must not be {@code executor}
     *                      when that is bounded, or a full pool would wait on itself
     */
    public InputProcessor(ChatTemplate template, PromptTokenizer tokenizer, ImageLoader imageLoader,
                          PromptLimits limits, Executor executor, Executor imageExecutor) {
        this.template = Objects.requireNonNull(template);
        this.tokenizer = Objects.requireNonNull(tokenizer);
        this.imageLoader = imageLoader;
        this.limits = limits;
        this.executor = executor;
        this.imageExecutor = Objects.requireNonNull(imageExecutor);
        this.imagePlaceholder = tokenizer.decode(new int[]{limits.imageTokenId()}, false);
    }

    public CompletableFuture<PreparedRequest> process(ChatCompletionRequest req, String requestId) {
        return CompletableFuture.supplyAsync(() -> prepare(req, requestId), executor);
    }

    /** The blocking body of {@link #process}; runs on the caller's thread. */
    public PreparedRequest prepare(ChatCompletionRequest req, String requestId) {
        dev.retina.server.structured.StructuredRequest structured = dev.retina.server.structured.StructuredRequest.of(req);
        if (structured.toolMode() == dev.retina.server.structured.StructuredRequest.ToolMode.AUTO
                && !template.source().contains("tools"))
            // vLLM-like: auto tool choice needs a template that shows the model the tools.
            throw ApiException.badRequest("tool_choice 'auto' (the default with tools) needs a chat template that "
                    + "renders tools, and this model's does not; pass tool_choice 'required', 'none' or a named "
                    + "function, or start the server with --chat-template naming a tools-aware template", "tool_choice");
        List<ImageInput> images = loadImages(req.messages());
        String rendered = render(req.messages(), true, structured.templateTools(req.tools()));
        int[] promptTokenIds = encodeWithImages(rendered, images);
        int promptLen = promptTokenIds.length;
        if (promptLen >= limits.maxModelLen())
            throw ApiException.contextLengthExceeded("This model's maximum context length is " + limits.maxModelLen()
                    + " tokens, but the messages take " + promptLen + " tokens (images included)", "messages");
        Integer requested = req.requestedMaxTokens();
        int maxTokens = requested != null ? requested : limits.maxModelLen() - promptLen;
        if (promptLen + maxTokens > limits.maxModelLen())
            throw ApiException.contextLengthExceeded("This model's maximum context length is " + limits.maxModelLen()
                    + " tokens. However, you requested " + (promptLen + maxTokens) + " tokens (" + promptLen
                    + " in the messages, " + maxTokens + " in the completion)",
                    req.maxCompletionTokens() != null ? "max_completion_tokens" : "max_tokens");
        SamplingParams params = samplingParams(req, maxTokens);
        EngineRequest engineRequest = new EngineRequest(requestId, promptTokenIds, images, params,
                tokenizer.eosTokenIds());
        return new PreparedRequest(engineRequest, req.stop() == null ? List.of() : req.stop(),
                !Boolean.FALSE.equals(req.skipSpecialTokens()));
    }

    /**
     * {@code POST /tokenize} with messages: the prompt ids exactly as a chat request would send them to the engine
     * (template rendered, each image loaded so its placeholder expands to that image's token count, which for
     * LLaVA-NeXT depends on its size), without the context-length check: the caller reports the count beside the
     * limit.
     */
    public int[] tokenizeMessages(List<ChatMessage> chat, boolean addGenerationPrompt) {
        List<ImageInput> images = loadImages(chat);
        return encodeWithImages(render(chat, addGenerationPrompt, null), images);
    }

    /** Renders the chat template; a template that raises is the client's 400. */
    private String render(List<ChatMessage> chat, boolean addGenerationPrompt, List<Object> tools) {
        List<Map<String, Object>> messages = toTemplateMessages(chat, template.contentFormat());

        Map<String, Object> extra = new HashMap<>();
        extra.put("bos_token", tokenizer.bosToken() == null ? "" : tokenizer.bosToken());
        extra.put("eos_token", tokenizer.eosToken() == null ? "" : tokenizer.eosToken());
        if (tools != null) extra.put("tools", tools); // HF's apply_chat_template(tools=...)
        try {
            return template.render(messages, addGenerationPrompt, extra);
        } catch (ChatTemplateException e) {
            // raise_exception() texts are written for users (e.g. "roles must alternate"); log the rest.
            log.debug("chat template refused a request", e);
            throw ApiException.badRequest("The chat template could not render these messages: "
                    + ApiException.truncate(e.getMessage()), "messages");
        }
    }

    /** One image part of the request, where it sits. */
    private record ImagePart(String url, ImageDetail detail, String param) {
    }

    /**
     * Every image of every message, in prompt order (so multi-turn chats keep each turn's images), loaded in parallel
     * on the image executor. The count is checked before anything is fetched; when several images fail, the first in
     * prompt order is reported.
     */
    private List<ImageInput> loadImages(List<ChatMessage> messages) {
        List<ImagePart> parts = new ArrayList<>();
        for (int i = 0; i < messages.size(); i++) {
            if (!(messages.get(i).content() instanceof MessageContent.Parts content)) continue;
            for (int j = 0; j < content.parts().size(); j++) {
                if (!(content.parts().get(j) instanceof ImageUrlPart img)) continue;
                String param = "messages[" + i + "].content[" + j + "].image_url";
                if (imageLoader == null)
                    throw ApiException.badRequest("This server was started with --disable-image-processor and "
                            + "cannot take images", param);
                if (parts.size() == limits.maxImagesPerPrompt())
                    throw ApiException.badRequest("At most " + limits.maxImagesPerPrompt() + " image(s) per request "
                            + "are allowed (--limit-mm-per-prompt image=" + limits.maxImagesPerPrompt() + ")", param);
                parts.add(new ImagePart(img.imageUrl().url(), ImageDetail.parse(img.imageUrl().detail(), param), param));
            }
        }
        if (parts.isEmpty()) return List.of();
        if (parts.size() == 1) return List.of(imageLoader.load(parts.get(0).url(), parts.get(0).detail(), parts.get(0).param()));
        List<CompletableFuture<ImageInput>> loads = new ArrayList<>();
        for (ImagePart p : parts)
            loads.add(CompletableFuture.supplyAsync(() -> imageLoader.load(p.url(), p.detail(), p.param()), imageExecutor));
        List<ImageInput> images = new ArrayList<>();
        for (CompletableFuture<ImageInput> load : loads) {
            try {
                images.add(load.join());
            } catch (java.util.concurrent.CompletionException e) {
                if (e.getCause() instanceof RuntimeException r) throw r;
                throw e;
            }
        }
        return images;
    }

    /** The request's messages in the shape the template reads (see the class comment). */
    List<Map<String, Object>> toTemplateMessages(List<ChatMessage> messages, ContentFormat format) {
        List<Map<String, Object>> out = new ArrayList<>();
        for (ChatMessage m : messages) {
            Map<String, Object> message = new LinkedHashMap<>();
            message.put("role", m.role());
            message.put("content", format == ContentFormat.OPENAI ? openAiContent(m.content()) : stringContent(m.content()));
            if (m.name() != null) message.put("name", m.name());
            if (m.toolCalls() != null) message.put("tool_calls", templateToolCalls(m.toolCalls()));
            if (m.toolCallId() != null) message.put("tool_call_id", m.toolCallId());
            out.add(message);
        }
        return out;
    }

    /**
     * An assistant message's calls as HF templates read them: {@code {"id", "type": "function", "function": {"name",
     * "arguments": <a mapping, not the JSON text>}}} (vLLM parses them the same way before rendering).
     */
    private static List<Map<String, Object>> templateToolCalls(List<ChatCompletionResponse.ToolCall> calls) {
        List<Map<String, Object>> out = new ArrayList<>();
        for (ChatCompletionResponse.ToolCall call : calls) {
            Map<String, Object> function = new LinkedHashMap<>();
            function.put("name", call.function().name());
            function.put("arguments", ToolArguments.parse(call.function().arguments()));
            Map<String, Object> c = new LinkedHashMap<>();
            if (call.id() != null) c.put("id", call.id());
            c.put("type", "function");
            c.put("function", function);
            out.add(c);
        }
        return out;
    }

    private static List<Map<String, Object>> openAiContent(MessageContent content) {
        List<Map<String, Object>> items = new ArrayList<>();
        switch (content) {
            case null -> {
            }
            case MessageContent.Text t -> items.add(Map.of("type", "text", "text", t.text()));
            case MessageContent.Parts p -> {
                for (ContentPart part : p.parts()) {
                    switch (part) {
                        case TextPart t -> items.add(Map.of("type", "text", "text", t.text()));
                        case ImageUrlPart i -> items.add(Map.of("type", "image"));
                    }
                }
            }
        }
        return items;
    }

    private String stringContent(MessageContent content) {
        return switch (content) {
            case null -> "";
            case MessageContent.Text t -> t.text();
            case MessageContent.Parts p -> {
                // vLLM's rule: every image's placeholder on its own line, before the text parts.
                List<String> lines = new ArrayList<>();
                for (ContentPart part : p.parts()) if (part instanceof ImageUrlPart) lines.add(imagePlaceholder);
                for (ContentPart part : p.parts()) if (part instanceof TextPart t) lines.add(t.text());
                yield String.join("\n", lines);
            }
        };
    }

    /**
     * The prompt ids as transformers' {@code LlavaProcessor} / {@code LlavaNextProcessor} make them: the k-th image
     * placeholder in the rendered text becomes {@code images.get(k).numImageTokens()} placeholders (LLaVA-NeXT images
     * differ), and the whole string is tokenized once ({@link PromptTokenizer#encodePrompt}). The placeholder count
     * must equal the number of images, and the ids must then hold exactly the expected number of image tokens.
     */
    int[] encodeWithImages(String rendered, List<ImageInput> images) {
        int placeholders = count(rendered, imagePlaceholder);
        if (placeholders != images.size())
            throw ApiException.badRequest("The prompt has " + placeholders + " image placeholder(s) ('"
                    + imagePlaceholder + "') but the request carries " + images.size() + " image(s)", "messages");
        int expected = 0;
        StringBuilder expanded = new StringBuilder(rendered.length() + 16 * images.size());
        int from = 0;
        for (ImageInput image : images) {
            int at = rendered.indexOf(imagePlaceholder, from);
            expanded.append(rendered, from, at);
            expanded.repeat(imagePlaceholder, image.numImageTokens());
            expected += image.numImageTokens();
            from = at + imagePlaceholder.length();
        }
        expanded.append(rendered, from, rendered.length());
        int[] ids = tokenizer.encodePrompt(expanded.toString());
        int found = 0;
        for (int id : ids) if (id == limits.imageTokenId()) found++;
        if (found != expected)
            throw ApiException.badRequest("The prompt tokenizes to " + found + " image token(s) (id "
                    + limits.imageTokenId() + ") where its " + images.size() + " image(s) take " + expected
                    + "; is '" + imagePlaceholder + "' written in the text?", "messages");
        return ids;
    }

    private static int count(String text, String piece) {
        int n = 0;
        for (int at = text.indexOf(piece); at >= 0; at = text.indexOf(piece, at + piece.length())) n++;
        return n;
    }

    static SamplingParams samplingParams(ChatCompletionRequest req, int maxTokens) {
        return req.toSamplingParams(1, maxTokens, null, null);
    }

}
