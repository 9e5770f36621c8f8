package dev.retina.tokenizer;

import java.util.Set;

/**
 * A checkpoint's special tokens. Token strings are null and ids are -1 where the checkpoint defines none (a
 * plain int keeps the hot paths free of boxing; check {@code >= 0}). {@code specialTokenIds} holds every added token
 * flagged special in tokenizer.json: exactly the ids that {@code decode(ids, true)} drops. {@code addBosToken} is
 * true when tokenizer.json's post-processor adds BOS, the only rule transformers 5 follows.
 */
public record SpecialTokens(String bosToken, int bosTokenId, String eosToken, int eosTokenId, String padToken,
                            int padTokenId, String unkToken, int unkTokenId, boolean addBosToken,
                            Set<Integer> specialTokenIds) {
    public SpecialTokens {
        specialTokenIds = Set.copyOf(specialTokenIds);
        if ((bosToken == null) != (bosTokenId < 0) || (eosToken == null) != (eosTokenId < 0)
                || (padToken == null) != (padTokenId < 0) || (unkToken == null) != (unkTokenId < 0)) {
            throw new IllegalArgumentException("special token strings and ids must be present together");
        }
    }

    public boolean isSpecial(int tokenId) {
        return specialTokenIds.contains(tokenId);
    }
}
