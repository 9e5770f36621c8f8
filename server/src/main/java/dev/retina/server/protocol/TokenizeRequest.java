package dev.retina.server.protocol;

import java.util.List;

/**
 * The body of {@code POST /tokenize}, as vLLM takes it: either {@code prompt} (text; {@code add_special_tokens}
 * default true) or {@code messages} (chat; {@code add_generation_prompt} default true).
 */
public record TokenizeRequest(String model, String prompt, List<ChatMessage> messages, Boolean addGenerationPrompt,
                              Boolean addSpecialTokens) {
}
