package dev.retina.examples;

import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.http.StreamResponse;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionContentPart;
import com.openai.models.chat.completions.ChatCompletionContentPartImage;
import com.openai.models.chat.completions.ChatCompletionContentPartText;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.chat.completions.ChatCompletionStreamOptions;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Base64;
import java.util.List;
import java.util.Locale;

/**
 * A running {@code retina serve} through the official OpenAI Java SDK: one image question answered whole, then
 * streamed.
 *
 * <pre>
 * java -jar server/target/retina.jar serve --port 8000 &amp;
 * java -cp examples/target/retina-examples-0.1.0-SNAPSHOT.jar:examples/target/lib/* \
 *     dev.retina.examples.OnlineExample http://localhost:8000/v1 [MODEL] [IMAGE_URL_OR_FILE]
 * </pre>
 *
 * MODEL defaults to the first one the server lists; the image to a data URL of a drawn test image. The API key is
 * whatever {@code OPENAI_API_KEY} holds (Retina ignores it unless started with an API key).
 */
public final class OnlineExample {
    private OnlineExample() {
    }

    public static void main(String[] args) throws Exception {
        String baseUrl = args.length > 0 ? args[0] : "http://localhost:8000/v1";
        String apiKey = System.getenv().getOrDefault("OPENAI_API_KEY", "EMPTY");
        OpenAIClient client = OpenAIOkHttpClient.builder().baseUrl(baseUrl).apiKey(apiKey)
                .timeout(Duration.ofMinutes(5)).build();
        String model = args.length > 1 ? args[1] : client.models().list().data().getFirst().id();
        String imageUrl = args.length > 2 ? imageUrl(args[2]) : pngDataUrl();

        ChatCompletionCreateParams params = ChatCompletionCreateParams.builder()
                .model(model)
                .addUserMessageOfArrayOfContentParts(List.of(
                        ChatCompletionContentPart.ofImageUrl(ChatCompletionContentPartImage.builder()
                                .imageUrl(ChatCompletionContentPartImage.ImageUrl.builder().url(imageUrl).build())
                                .build()),
                        ChatCompletionContentPart.ofText(ChatCompletionContentPartText.builder()
                                .text("Is the circle left or right of the square?").build())))
                .temperature(0.0)
                .maxCompletionTokens(32)
                .build();

        ChatCompletion whole = client.chat().completions().create(params);
        System.out.println("model: " + whole.model());
        System.out.println("answer: " + whole.choices().getFirst().message().content().orElse(""));
        whole.usage().ifPresent(u -> System.out.printf(Locale.ROOT, "usage: %d prompt + %d completion tokens%n",
                u.promptTokens(), u.completionTokens()));

        System.out.print("streamed: ");
        ChatCompletionCreateParams streamed = params.toBuilder()
                .streamOptions(ChatCompletionStreamOptions.builder().includeUsage(true).build()).build();
        try (StreamResponse<ChatCompletionChunk> stream = client.chat().completions().createStreaming(streamed)) {
            stream.stream().forEach(chunk -> {
                for (ChatCompletionChunk.Choice choice : chunk.choices()) {
                    choice.delta().content().ifPresent(System.out::print);
                    choice.finishReason().ifPresent(r -> System.out.print("  [" + r + "]"));
                }
                chunk.usage().ifPresent(u -> System.out.printf(Locale.ROOT, "%nusage: %d completion tokens%n",
                        u.completionTokens()));
            });
        }
        System.out.println();
    }

    /** An http(s) or data URL as given; a file path becomes a data URL. */
    static String imageUrl(String arg) throws Exception {
        if (arg.startsWith("http://") || arg.startsWith("https://") || arg.startsWith("data:")) return arg;
        Path file = Path.of(arg);
        String type = Files.probeContentType(file);
        return "data:" + (type == null ? "image/png" : type) + ";base64,"
                + Base64.getEncoder().encodeToString(Files.readAllBytes(file));
    }

    /** A PNG of the offline example's first scene (a red circle left of a blue square), as a data URL. */
    static String pngDataUrl() throws Exception {
        var rgb = OfflineExample.scene(new int[][] {{18, 32, 9, 0}, {46, 32, 8, 1}});
        var image = new java.awt.image.BufferedImage(rgb.width(), rgb.height(), java.awt.image.BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < rgb.height(); y++)
            for (int x = 0; x < rgb.width(); x++)
                image.setRGB(x, y, rgb.get(x, y, 0) << 16 | rgb.get(x, y, 1) << 8 | rgb.get(x, y, 2));
        var bytes = new java.io.ByteArrayOutputStream();
        javax.imageio.ImageIO.write(image, "png", bytes);
        return "data:image/png;base64," + Base64.getEncoder().encodeToString(bytes.toByteArray());
    }
}
