package dev.retina.server.config;

import dev.retina.vision.FetchPolicy;
import dev.retina.vision.ImageDecoder;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashSet;
import java.util.Locale;
import java.util.Set;

/**
 * The media flags of {@code retina serve}: what image URLs may reach (mapped onto the vision module's
 * {@link FetchPolicy}), how many images a prompt may carry, and the encoder cache. Built once from the command line
 * and validated here. The fetch timeout and byte cap stay in {@link ServerConfig} (they predate this record).
 *
 * @param allowedLocalMediaPath   directory under which {@code file:} URLs and absolute paths may be read; null: none
 * @param allowPrivateMediaUrls   allow loopback, private, link-local and other non-public addresses (off by default:
 *                                an image URL must not reach the server's own network)
 * @param allowedMediaDomains     if non-empty, only these hosts and their subdomains may be fetched
 * @param maxMediaRedirects       redirects followed at most, each target checked like the first URL
 * @param maxImagePixels          decoded width x height at most (checked from the header, before decoding)
 * @param limitImagesPerPrompt    images one request may carry ({@code --limit-mm-per-prompt image=N}); null: the N of
 *                                an explicit {@code --image-input-shape}, else {@link #DEFAULT_LIMIT_IMAGES_PER_PROMPT}
 * @param encoderCacheSize        capacity of the vision-encoder output cache, in image tokens (feature rows); 0 off
 */
public record MediaConfig(Path allowedLocalMediaPath, boolean allowPrivateMediaUrls, Set<String> allowedMediaDomains,
                          int maxMediaRedirects, long maxImagePixels, Integer limitImagesPerPrompt,
                          int encoderCacheSize) {
    /**
     * Four images per request by default: LLaVA checkpoints are trained on one image per conversation but answer
     * about several (and multi-turn chats add one per turn), while each image costs 576 to ~2,900 prompt tokens, so
     * the cap bounds one request's encoder work. vLLM's old default of 1 would refuse every multi-image chat.
     */
    public static final int DEFAULT_LIMIT_IMAGES_PER_PROMPT = 4;
    /** 16,384 image tokens: ~28 LLaVA-1.5 images; 128 MiB of fp16 features at a 7B model's hidden size 4096. */
    public static final int DEFAULT_ENCODER_CACHE_SIZE = 16384;

    public MediaConfig {
        allowedMediaDomains = Set.copyOf(allowedMediaDomains == null ? Set.of() : allowedMediaDomains);
        if (maxMediaRedirects < 0 || maxMediaRedirects > 20)
            throw new ConfigException("--max-media-redirects must be in 0..20, got " + maxMediaRedirects);
        if (maxImagePixels < 1) throw new ConfigException("--max-image-pixels must be >= 1, got " + maxImagePixels);
        if (limitImagesPerPrompt != null && limitImagesPerPrompt < 0)
            throw new ConfigException("--limit-mm-per-prompt image must be >= 0, got " + limitImagesPerPrompt);
        if (encoderCacheSize < 0) throw new ConfigException("--encoder-cache-size must be >= 0, got " + encoderCacheSize);
        if (allowedLocalMediaPath != null && !Files.isDirectory(allowedLocalMediaPath))
            throw new ConfigException("--allowed-local-media-path " + allowedLocalMediaPath + " is not a directory");
        try {
            new FetchPolicy(Duration.ofSeconds(1), 1, maxMediaRedirects, false, allowedMediaDomains, null);
        } catch (IllegalArgumentException e) {
            throw new ConfigException("--allowed-media-domains: " + e.getMessage());
        }
    }

    /** Every default: public hosts only, any domain, 3 redirects, Pillow's pixel limit, no local files. */
    public static MediaConfig defaults() {
        return new MediaConfig(null, false, Set.of(), FetchPolicy.DEFAULT_MAX_REDIRECTS,
                ImageDecoder.DEFAULT_MAX_IMAGE_PIXELS, null, DEFAULT_ENCODER_CACHE_SIZE);
    }

    public MediaConfig withAllowPrivateMediaUrls(boolean allow) {
        return new MediaConfig(allowedLocalMediaPath, allow, allowedMediaDomains, maxMediaRedirects, maxImagePixels,
                limitImagesPerPrompt, encoderCacheSize);
    }

    public MediaConfig withAllowedLocalMediaPath(Path root) {
        return new MediaConfig(root, allowPrivateMediaUrls, allowedMediaDomains, maxMediaRedirects, maxImagePixels,
                limitImagesPerPrompt, encoderCacheSize);
    }

    public MediaConfig withLimitImagesPerPrompt(Integer limit) {
        return new MediaConfig(allowedLocalMediaPath, allowPrivateMediaUrls, allowedMediaDomains, maxMediaRedirects,
                maxImagePixels, limit, encoderCacheSize);
    }

    /** The fetch policy with the server's timeout and byte cap. */
    public FetchPolicy fetchPolicy(Duration timeout, long maxImageBytes) {
        try {
            return new FetchPolicy(timeout, maxImageBytes, maxMediaRedirects, allowPrivateMediaUrls, allowedMediaDomains,
                    allowedLocalMediaPath);
        } catch (IllegalArgumentException e) {
            throw new ConfigException("image fetching: " + e.getMessage());
        }
    }

    /** {@code "a.com, b.org"} as a set; blanks dropped. */
    public static Set<String> parseDomains(String text) {
        Set<String> out = new LinkedHashSet<>();
        if (text == null) return out;
        for (String d : text.split(",")) if (!d.isBlank()) out.add(d.strip());
        return out;
    }

    /**
     * vLLM's {@code --limit-mm-per-prompt}: {@code image=4}, or JSON {@code {"image": 4}}. Only images exist here;
     * {@code video=0}/{@code audio=0} are accepted, any other modality or count is refused.
     */
    public static int parseImageLimit(String text) {
        String t = text.strip();
        if (t.startsWith("{") && t.endsWith("}")) t = t.substring(1, t.length() - 1).replace("\"", "").replace(':', '=');
        Integer image = null;
        for (String item : t.split(",")) {
            if (item.isBlank()) continue;
            String[] kv = item.split("=", 2);
            if (kv.length != 2) throw new ConfigException("--limit-mm-per-prompt must look like image=4, got '" + text + "'");
            String modality = kv[0].strip().toLowerCase(Locale.ROOT);
            int n;
            try {
                n = Integer.parseInt(kv[1].strip());
            } catch (NumberFormatException e) {
                throw new ConfigException("--limit-mm-per-prompt " + modality + " must be an integer, got '" + kv[1].strip() + "'");
            }
            if (modality.equals("image")) image = n;
            else if (n != 0) throw new ConfigException("--limit-mm-per-prompt: this server takes images only, not " + modality);
        }
        if (image == null) throw new ConfigException("--limit-mm-per-prompt must give image=N, got '" + text + "'");
        if (image < 0) throw new ConfigException("--limit-mm-per-prompt image must be >= 0, got " + image);
        return image;
    }
}
