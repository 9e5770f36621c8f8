package dev.retina.server.input;

import dev.retina.vision.RgbImage;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/**
 * The encoder cache's key for one image: SHA-256 over the decoded RGB pixels, the width and height, and a mode
 * string saying how it was preprocessed (detail, static shape), so two URLs of the same picture share an entry and
 * the same picture preprocessed two ways does not. Preprocessing settings are fixed per server, so they need no part
 * in the key.
 */
final class ContentHash {
    private ContentHash() {
    }

    static String of(RgbImage image, String mode) {
        MessageDigest sha;
        try {
            sha = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every JDK has SHA-256", e);
        }
        sha.update(ByteBuffer.allocate(8).putInt(image.width()).putInt(image.height()).array());
        sha.update(mode.getBytes(StandardCharsets.UTF_8));
        sha.update((byte) 0);
        sha.update(image.rgb());
        return HexFormat.of().formatHex(sha.digest());
    }
}
