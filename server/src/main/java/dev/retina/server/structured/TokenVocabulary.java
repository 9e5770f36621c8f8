package dev.retina.server.structured;

import dev.retina.tokenizer.Tokenizer;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Each token's bytes as it adds them to the output text, and a byte trie over them, for walking a grammar once per
 * step over the whole vocabulary with shared prefixes walked once. Special tokens (EOS, image, pad) are left out: the
 * engine adds EOS itself. Pieces: SentencePiece ({@code ▁} is a space, {@code <0xNN>} a raw byte), or GPT-2
 * byte-level BPE ({@code Ġ} and friends map back to bytes), told apart by which marker the vocabulary uses.
 * Immutable; built once per tokenizer ({@link #of}), off the engine thread.
 */
public final class TokenVocabulary {
    private static final Pattern BYTE_PIECE = Pattern.compile("<0x([0-9A-Fa-f]{2})>");
    private static final Map<Tokenizer, TokenVocabulary> BY_TOKENIZER = new ConcurrentHashMap<>();

    private final int vocabSize;
    private final byte[][] tokenBytes; // index = id; null where left out
    // The trie, flattened: node n's children are childByte/childNode[childStart[n] .. childStart[n+1]), its tokens
    // (those whose bytes end at n) tokenIds[tokenStart[n] .. tokenStart[n+1]). Node 0 is the root.
    private final int[] childStart;
    private final byte[] childByte;
    private final int[] childNode;
    private final int[] tokenStart;
    private final int[] tokenIds;

    /** The vocabulary of a loaded tokenizer, built on first use and kept while the process runs. */
    public static TokenVocabulary of(Tokenizer tokenizer) {
        return BY_TOKENIZER.computeIfAbsent(tokenizer, TokenVocabulary::build);
    }

    private static TokenVocabulary build(Tokenizer t) {
        int size = t.vocabSize();
        String[] pieces = new String[size];
        for (int id = 0; id < size; id++) pieces[id] = t.idToToken(id);
        Set<Integer> excluded = new java.util.HashSet<>(t.specialTokens().specialTokenIds());
        if (t.specialTokens().unkTokenId() >= 0) excluded.add(t.specialTokens().unkTokenId());
        excluded.addAll(t.eosTokenIds());
        return fromPieces(pieces, excluded);
    }

    /** From raw vocabulary pieces (index = id; null for gaps); {@code excluded} ids are never allowed. */
    public static TokenVocabulary fromPieces(String[] pieces, Set<Integer> excluded) {
        boolean byteLevel = isByteLevel(pieces);
        Map<Character, Integer> unicodeToByte = byteLevel ? unicodeToByte() : Map.of();
        byte[][] bytes = new byte[pieces.length][];
        for (int id = 0; id < pieces.length; id++) {
            String p = pieces[id];
            if (p == null || p.isEmpty() || excluded.contains(id)) continue;
            bytes[id] = byteLevel ? byteLevelBytes(p, unicodeToByte) : sentencePieceBytes(p);
            if (bytes[id] != null && bytes[id].length == 0) bytes[id] = null;
        }
        return new TokenVocabulary(bytes);
    }

    private TokenVocabulary(byte[][] tokenBytes) {
        this.vocabSize = tokenBytes.length;
        this.tokenBytes = tokenBytes;
        // Build with maps, then flatten breadth-first so a node's children are contiguous.
        List<TreeMap<Integer, Integer>> children = new ArrayList<>();
        List<List<Integer>> tokens = new ArrayList<>();
        children.add(new TreeMap<>());
        tokens.add(new ArrayList<>());
        for (int id = 0; id < tokenBytes.length; id++) {
            byte[] b = tokenBytes[id];
            if (b == null) continue;
            int node = 0;
            for (byte x : b) {
                Integer child = children.get(node).get(x & 0xFF);
                if (child == null) {
                    child = children.size();
                    children.add(new TreeMap<>());
                    tokens.add(new ArrayList<>());
                    children.get(node).put(x & 0xFF, child);
                }
                node = child;
            }
            tokens.get(node).add(id);
        }
        int numNodes = children.size();
        childStart = new int[numNodes + 1];
        childByte = new byte[numNodes - 1];
        childNode = new int[numNodes - 1];
        tokenStart = new int[numNodes + 1];
        int numTokens = tokens.stream().mapToInt(List::size).sum();
        tokenIds = new int[numTokens];
        int c = 0;
        int k = 0;
        for (int n = 0; n < numNodes; n++) {
            childStart[n] = c;
            for (Map.Entry<Integer, Integer> e : children.get(n).entrySet()) {
                childByte[c] = (byte) (int) e.getKey();
                childNode[c++] = e.getValue();
            }
            tokenStart[n] = k;
            for (int id : tokens.get(n)) tokenIds[k++] = id;
        }
        childStart[numNodes] = c;
        tokenStart[numNodes] = k;
    }

    public int vocabSize() { return vocabSize; }

    /** The bytes token {@code id} adds to the text; null for left-out tokens. */
    public byte[] bytes(int id) {
        return id >= 0 && id < vocabSize ? tokenBytes[id] : null;
    }

    public int numTrieNodes() { return childStart.length - 1; }

    int firstChild(int node) { return childStart[node]; }
    int endChild(int node) { return childStart[node + 1]; }
    int childByte(int edge) { return childByte[edge] & 0xFF; }
    int childNode(int edge) { return childNode[edge]; }
    int firstToken(int node) { return tokenStart[node]; }
    int endToken(int node) { return tokenStart[node + 1]; }
    int tokenAt(int k) { return tokenIds[k]; }

    private static byte[] sentencePieceBytes(String piece) {
        Matcher m = BYTE_PIECE.matcher(piece);
        if (m.matches()) return new byte[] {(byte) Integer.parseInt(m.group(1), 16)};
        return piece.replace('\u2581', ' ').getBytes(StandardCharsets.UTF_8);
    }

    private static boolean isByteLevel(String[] pieces) {
        int metaspace = 0;
        int byteLevel = 0;
        for (String p : pieces) {
            if (p == null || p.isEmpty()) continue;
            if (p.charAt(0) == '\u2581') metaspace++;
            if (p.charAt(0) == '\u0120') byteLevel++;
        }
        return byteLevel > metaspace;
    }

    /** Inverse of GPT-2's bytes_to_unicode. */
    private static Map<Character, Integer> unicodeToByte() {
        Map<Character, Integer> map = new HashMap<>();
        int n = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map.put((char) (printable ? b : 256 + n++), b);
        }
        return map;
    }

    private static byte[] byteLevelBytes(String piece, Map<Character, Integer> unicodeToByte) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(piece.length());
        for (int i = 0; i < piece.length(); i++) {
            Integer b = unicodeToByte.get(piece.charAt(i));
            if (b == null) return piece.getBytes(StandardCharsets.UTF_8); // an added token spelled as text
            out.write(b);
        }
        return out.toByteArray();
    }
}
