package dev.retina.e2e;

import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.models.chat.completions.ChatCompletionContentPart;
import com.openai.models.chat.completions.ChatCompletionContentPartImage;
import com.openai.models.chat.completions.ChatCompletionContentPartText;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import dev.retina.server.RetinaServer;
import dev.retina.server.backend.LlavaBackendLoader;
import dev.retina.server.config.ServerConfig;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import javax.imageio.ImageIO;
import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.time.Duration;
import java.util.Base64;
import java.util.List;
import java.util.Locale;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A new user's first request: the server started with no model flag serves the bundled demo model, and a picture
 * drawn here (not by the training script) of a red circle left of a blue square, sent as a {@code data:} URL through
 * the OpenAI Java SDK, gets answers naming red, circle and left.
 */
class DemoModelE2ETest {
    static RetinaServer server;
    static OpenAIClient client;
    static String picture;

    @BeforeAll
    static void boot() throws Exception {
        ServerConfig config = ServerConfig.defaults(ServerConfig.DEMO_MODEL); // device auto: the CPU here
        server = RetinaServer.start(config, new LlavaBackendLoader());
        client = OpenAIOkHttpClient.builder().baseUrl("http://127.0.0.1:" + server.port() + "/v1").apiKey("unused")
                .maxRetries(0).timeout(Duration.ofSeconds(60)).build();
        BufferedImage image = new BufferedImage(64, 64, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = image.createGraphics();
        g.setColor(new Color(245, 245, 245));
        g.fillRect(0, 0, 64, 64);
        g.setColor(new Color(220, 30, 30));
        g.fillOval(10, 24, 17, 17);      // red circle, centre (18, 32)
        g.setColor(new Color(40, 70, 220));
        g.fillRect(38, 25, 15, 15);      // blue square, centre (45, 32)
        g.dispose();
        ByteArrayOutputStream png = new ByteArrayOutputStream();
        ImageIO.write(image, "png", png);
        picture = "data:image/png;base64," + Base64.getEncoder().encodeToString(png.toByteArray());
    }

    @AfterAll
    static void stop() {
        if (server != null) server.close();
    }

    static String ask(String question) {
        ChatCompletionCreateParams params = ChatCompletionCreateParams.builder()
                .model(ServerConfig.DEMO_MODEL)
                .addUserMessageOfArrayOfContentParts(List.of(
                        ChatCompletionContentPart.ofImageUrl(ChatCompletionContentPartImage.builder()
                                .imageUrl(ChatCompletionContentPartImage.ImageUrl.builder().url(picture).build())
                                .build()),
                        ChatCompletionContentPart.ofText(ChatCompletionContentPartText.builder().text(question).build())))
                .temperature(0.0)
                .maxCompletionTokens(24)
                .build();
        String answer = client.chat().completions().create(params).choices().getFirst().message().content().orElse("");
        System.out.println(question + " -> " + answer);
        return answer.toLowerCase(Locale.ROOT);
    }

    @Test
    void theDemoModelSeesARedCircleLeftOfABlueSquare() {
        assertTrue(ask("What color is the circle?").contains("red"));
        assertTrue(ask("What shape is the red object?").contains("circle"));
        assertTrue(ask("Is the circle left or right of the square?").contains("left"));
        assertTrue(ask("What color is the square?").contains("blue"));
        String description = ask("Describe the image.");
        assertTrue(description.contains("red circle") && description.contains("blue square"), description);
    }
}
