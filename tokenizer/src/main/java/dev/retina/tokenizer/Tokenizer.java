package dev.retina.tokenizer;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * A checkpoint's Hugging Face tokenizer: tokenizer.json through DJL's binding of the Rust {@code tokenizers}
 * library (exact HF encoding and decoding), plus what transformers keeps beside it (special tokens, add_bos_token,
 * generation_config's eos ids). Thread-safe: the native tokenizer is immutable after loading.
 */
public final class Tokenizer implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern BYTE_TOKEN = Pattern.compile("<0x[0-9A-Fa-f]{2}>");

    private final HuggingFaceTokenizer hf;
    private final Map<String, Integer> tokenToId;
    private final String[] idToToken; // index = id; null where the vocabulary has a gap
    private final int vocabSize;
    private final boolean[] byteFallback; // index = id; true for "<0xNN>" pieces of a byte_fallback model
    private final SpecialTokens specialTokens;
    private final List<Integer> eosTokenIds;

    private Tokenizer(HuggingFaceTokenizer hf, Map<String, Integer> tokenToId, boolean byteFallbackModel,
                      JsonNode tokenizerConfig, JsonNode specialTokensMap, JsonNode generationConfig,
                      Set<Integer> specialTokenIds) {
        this.hf = hf;
        this.tokenToId = Map.copyOf(tokenToId);
        int maxId = tokenToId.values().stream().mapToInt(Integer::intValue).max().orElse(-1);
        this.idToToken = new String[maxId + 1];
        tokenToId.forEach((token, id) -> idToToken[id] = token);
        this.vocabSize = tokenToId.size();
        this.byteFallback = new boolean[maxId + 1];
        if (byteFallbackModel) {
            tokenToId.forEach((token, id) -> byteFallback[id] = BYTE_TOKEN.matcher(token).matches());
        }
        String bos = specialToken("bos_token", tokenizerConfig, specialTokensMap, generationConfig);
        String eos = specialToken("eos_token", tokenizerConfig, specialTokensMap, generationConfig);
        String pad = specialToken("pad_token", tokenizerConfig, specialTokensMap, generationConfig);
        String unk = specialToken("unk_token", tokenizerConfig, specialTokensMap, generationConfig);
        int bosId = idOf(bos);
        // transformers 5 adds BOS exactly when tokenizer.json's post-processor does; add_bos_token in
        // tokenizer_config.json is ignored whatever tokenizer_class says (measured: docs/FACTS.md, "Tokenizer").
        boolean addBosToken = postProcessorAddsBos(bosId);
        this.specialTokens = new SpecialTokens(bosId < 0 ? null : bos, bosId, idOf(eos) < 0 ? null : eos, idOf(eos),
                idOf(pad) < 0 ? null : pad, idOf(pad), idOf(unk) < 0 ? null : unk, idOf(unk), addBosToken,
                specialTokenIds);
        this.eosTokenIds = eosIds(generationConfig, specialTokens.eosTokenId());
    }

    /**
     * Loads {@code modelDir/tokenizer.json} and, when present, tokenizer_config.json, special_tokens_map.json and
     * generation_config.json (transformers 4.x and 5.x spellings).
     */
    public static Tokenizer load(Path modelDir) throws IOException {
        Path file = modelDir.resolve("tokenizer.json");
        JsonNode tokenizerJson = JSON.readTree(file.toFile());
        // DJL's defaults truncate at 512 tokens and add special tokens: both off, the chat template decides.
        HuggingFaceTokenizer hf = HuggingFaceTokenizer.builder()
                .optTokenizerPath(file)
                .optTruncation(false)
                .optPadding(false)
                .optAddSpecialTokens(false)
                .build();
        try {
            JsonNode tokenizerConfig = readOptional(modelDir.resolve("tokenizer_config.json"));
            Map<String, Integer> vocab = vocabulary(tokenizerJson.path("model"));
            Set<Integer> specialIds = new HashSet<>();
            for (JsonNode added : tokenizerJson.path("added_tokens")) {
                vocab.put(added.path("content").asText(), added.path("id").asInt());
                if (added.path("special").asBoolean(false)) {
                    specialIds.add(added.path("id").asInt());
                }
            }
            // transformers 4.x also lists added tokens in tokenizer_config.json; tokenizer.json is authoritative.
            for (Iterator<Map.Entry<String, JsonNode>> it = tokenizerConfig.path("added_tokens_decoder").fields();
                 it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                vocab.putIfAbsent(e.getValue().path("content").asText(), Integer.parseInt(e.getKey()));
            }
            return new Tokenizer(hf, vocab, tokenizerJson.path("model").path("byte_fallback").asBoolean(false),
                    tokenizerConfig, readOptional(modelDir.resolve("special_tokens_map.json")),
                    readOptional(modelDir.resolve("generation_config.json")), specialIds);
        } catch (IOException | RuntimeException e) {
            hf.close();
            throw e;
        }
    }

    private static JsonNode readOptional(Path path) throws IOException {
        return Files.isRegularFile(path) ? JSON.readTree(path.toFile()) : JSON.createObjectNode();
    }

    /** BPE, WordPiece and WordLevel store {token: id}; Unigram stores [[piece, score], ...] with id = index. */
    private static Map<String, Integer> vocabulary(JsonNode model) {
        Map<String, Integer> vocab = new HashMap<>();
        JsonNode v = model.path("vocab");
        if (v.isObject()) {
            v.fields().forEachRemaining(e -> vocab.put(e.getKey(), e.getValue().asInt()));
        } else if (v.isArray()) {
            for (int i = 0; i < v.size(); i++) {
                vocab.put(v.get(i).get(0).asText(), i);
            }
        }
        return vocab;
    }

    /**
     * A special token's string: tokenizer_config.json, else special_tokens_map.json (either a plain string or an
     * AddedToken object {"content": ...}), else the token of generation_config's {@code <name>_id}.
     */
    private String specialToken(String name, JsonNode tokenizerConfig, JsonNode specialTokensMap,
                                JsonNode generationConfig) {
        for (JsonNode source : List.of(tokenizerConfig, specialTokensMap)) {
            JsonNode node = source.get(name);
            if (node != null && node.isTextual()) {
                return node.asText();
            }
            if (node != null && node.isObject() && node.hasNonNull("content")) {
                return node.get("content").asText();
            }
        }
        JsonNode id = generationConfig.get(name + "_id");
        if (id != null && id.isInt()) {
            return idToToken(id.asInt());
        }
        return null;
    }

    private int idOf(String token) {
        return token == null ? -1 : tokenToId.getOrDefault(token, -1);
    }

    /** Without add_bos_token in the config, BOS is added exactly when tokenizer.json's post-processor adds it. */
    private boolean postProcessorAddsBos(int bosId) {
        if (bosId < 0) {
            return false;
        }
        long[] ids = hf.encode("", true, false).getIds();
        return ids.length > 0 && ids[0] == bosId;
    }

    private static List<Integer> eosIds(JsonNode generationConfig, int tokenizerEos) {
        JsonNode eos = generationConfig.get("eos_token_id");
        List<Integer> ids = new ArrayList<>();
        if (eos != null && eos.isInt()) {
            ids.add(eos.asInt());
        } else if (eos != null && eos.isArray()) {
            eos.forEach(e -> ids.add(e.asInt()));
        }
        if (ids.isEmpty() && tokenizerEos >= 0) {
            ids.add(tokenizerEos);
        }
        return List.copyOf(ids);
    }

    /** Token ids of {@code text}, no special tokens added (special-token strings inside the text still match). */
    public int[] encode(String text) {
        return toInts(hf.encode(text, false, false).getIds());
    }

    /**
     * Token ids of {@code text} with the special tokens of tokenizer.json's post-processor (transformers'
     * {@code tokenizer(text)}): what {@code /v1/completions}, {@code /tokenize} with a prompt and the offline API's
     * text prompts send, even when the text already starts with the BOS string (HF and vLLM then give two).
     */
    public int[] encodeWithSpecialTokens(String text) {
        return toInts(hf.encode(text, true, false).getIds());
    }

    /**
     * Token ids of a rendered chat prompt, as transformers' {@code processor.apply_chat_template(...,
     * tokenize=True)} gives them: special tokens by tokenizer.json's post-processor, unless the rendered text already
     * starts with the BOS string (the template put it there), in which case none are added.
     */
    public int[] encodePrompt(String renderedPrompt) {
        SpecialTokens s = specialTokens;
        boolean templateHasBos = s.bosToken() != null && renderedPrompt.startsWith(s.bosToken());
        return toInts(hf.encode(renderedPrompt, !templateHasBos, false).getIds());
    }

    public String decode(int[] ids, boolean skipSpecialTokens) {
        long[] longIds = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            longIds[i] = ids[i];
        }
        return hf.decode(longIds, skipSpecialTokens);
    }

    /** A streaming decoder for one sequence of generated ids. */
    public IncrementalDetokenizer newDetokenizer(boolean skipSpecialTokens) {
        return new IncrementalDetokenizer(this, skipSpecialTokens);
    }

    public SpecialTokens specialTokens() {
        return specialTokens;
    }

    /** Ids that end generation: generation_config.json's eos_token_id (an int or a list), else the tokenizer's EOS. */
    public List<Integer> eosTokenIds() {
        return eosTokenIds;
    }

    public OptionalInt tokenToId(String token) {
        Integer id = tokenToId.get(token);
        return id == null ? OptionalInt.empty() : OptionalInt.of(id);
    }

    /** The vocabulary piece of {@code id} (e.g. "▁cat", "<0xE7>"), or null when no token has that id. */
    public String idToToken(int id) {
        return id >= 0 && id < idToToken.length ? idToToken[id] : null;
    }

    /** Number of tokens including added ones (transformers' {@code len(tokenizer)}). */
    public int vocabSize() {
        return vocabSize;
    }

    /** True for the "&lt;0xNN&gt;" pieces of a byte-fallback model, whose text depends on the bytes that follow. */
    boolean isByteFallback(int id) {
        return id >= 0 && id < byteFallback.length && byteFallback[id];
    }

    private static int[] toInts(long[] ids) {
        int[] out = new int[ids.length];
        for (int i = 0; i < ids.length; i++) {
            out[i] = Math.toIntExact(ids[i]);
        }
        return out;
    }

    @Override
    public void close() {
        hf.close();
    }
}
