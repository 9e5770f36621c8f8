package dev.retina.server;

import dev.retina.server.config.ConfigException;
import dev.retina.server.config.Device;
import dev.retina.server.config.Dtype;
import dev.retina.server.config.ImageInputType;
import dev.retina.server.config.LoadFormat;
import dev.retina.server.config.ServerConfig;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.time.Duration;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class ServeCommandTest {
    private static ServeCommand parse(String... args) {
        CommandLine cli = Main.commandLine();
        String[] all = new String[args.length + 1];
        all[0] = "serve";
        System.arraycopy(args, 0, all, 1, args.length);
        CommandLine.ParseResult result = cli.parseArgs(all);
        return (ServeCommand) result.subcommand().commandSpec().userObject();
    }

    @Test
    void defaults() {
        ServerConfig c = parse().toConfig(Map.of());
        assertEquals(ServerConfig.DEMO_MODEL, c.model());
        assertEquals(ServerConfig.DEMO_MODEL, c.servedModelName());
        assertEquals("0.0.0.0", c.host());
        assertEquals(8000, c.port());
        assertEquals(Dtype.AUTO, c.dtype());
        assertEquals(Device.AUTO, c.device());
        assertEquals(LoadFormat.AUTO, c.loadFormat());
        assertEquals(ImageInputType.PIXEL_VALUES, c.vlm().imageInputType());
        assertNull(c.maxModelLen());
        assertEquals(Duration.ofSeconds(5), c.imageFetchTimeout());
    }

    @Test
    void flagsReachTheConfig() {
        ServerConfig c = parse("--model", "/ckpt", "--host", "127.0.0.1", "--port", "9001", "--dtype", "float16",
                "--device", "cpu", "--max-model-len", "2048", "--seed", "7", "--load-format", "dummy",
                "--image-input-type", "pixel_values", "--image-token-id", "32000", "--image-input-shape", "1,3,336,336",
                "--image-feature-size", "576", "--image-processor-revision", "main").toConfig(Map.of());
        assertEquals("/ckpt", c.model());
        assertEquals("/ckpt", c.servedModelName(), "served name defaults to --model");
        assertEquals(9001, c.port());
        assertEquals(Dtype.FLOAT16, c.dtype());
        assertEquals(Device.CPU, c.device());
        assertEquals(2048, c.maxModelLen());
        assertEquals(7L, c.seed());
        assertEquals(LoadFormat.DUMMY, c.loadFormat());
        assertEquals(32000, c.vlm().imageTokenId());
        assertEquals(List.of(1, 3, 336, 336), c.vlm().imageInputShape());
        assertEquals(576, c.vlm().imageFeatureSize());
        assertEquals("name", parse("--served-model-name", "name").toConfig(Map.of()).servedModelName());
    }

    @Test
    void badValuesAreRefused() {
        assertThrows(CommandLine.ParameterException.class, () -> parse("--dtype", "bfloat16"));
        assertThrows(ConfigException.class, () -> parse("--image-input-type", "pixels").toConfig(Map.of()));
        assertThrows(ConfigException.class, () -> parse("--port", "70000").toConfig(Map.of()));
        assertThrows(ConfigException.class, () -> parse("--chat-template", "/no/such/file.jinja").toConfig(Map.of()));
    }

    @Test
    void imageFetchTimeoutFromEnvironmentRetinaWins() {
        assertEquals(Duration.ofSeconds(12), ServeCommand.imageFetchTimeout(Map.of("VLLM_IMAGE_FETCH_TIMEOUT", "12")));
        assertEquals(Duration.ofMillis(1500), ServeCommand.imageFetchTimeout(
                Map.of("VLLM_IMAGE_FETCH_TIMEOUT", "12", "RETINA_IMAGE_FETCH_TIMEOUT", "1.5")));
        var e = assertThrows(ConfigException.class,
                () -> ServeCommand.imageFetchTimeout(Map.of("RETINA_IMAGE_FETCH_TIMEOUT", "soon")));
        assertTrue(e.getMessage().contains("RETINA_IMAGE_FETCH_TIMEOUT"));
        assertThrows(ConfigException.class, () -> ServeCommand.imageFetchTimeout(Map.of("VLLM_IMAGE_FETCH_TIMEOUT", "0")));
    }

    @Test
    void helpShowsDefaults() {
        CommandLine cli = Main.commandLine();
        StringWriter out = new StringWriter();
        cli.setOut(new PrintWriter(out));
        assertEquals(0, cli.execute("serve", "--help"));
        String help = out.toString();
        assertTrue(help.contains("--port") && help.contains("Default: 8000"), help);
        assertTrue(help.contains("Default: demo"), help);
        assertTrue(help.contains("--image-input-shape") && help.contains("VLLM_IMAGE_FETCH_TIMEOUT"), help);
    }

    @Test
    void mediaFlagsReachTheFetchPolicyAndLimits() throws Exception {
        java.nio.file.Path root = java.nio.file.Files.createTempDirectory("media");
        ServerConfig c = parse("--allowed-local-media-path", root.toString(), "--allow-private-media-urls",
                "--allowed-media-domains", "example.com, cdn.test", "--max-media-redirects", "1",
                "--max-image-bytes", "1000", "--max-image-pixels", "4096", "--limit-mm-per-prompt", "image=2",
                "--encoder-cache-size", "0").toConfig(Map.of("VLLM_IMAGE_FETCH_TIMEOUT", "2.5"));
        var policy = c.media().fetchPolicy(c.imageFetchTimeout(), c.maxImageBytes());
        assertEquals(root, policy.allowedLocalMediaPath());
        assertTrue(policy.allowPrivateMediaUrls());
        assertEquals(java.util.Set.of("example.com", "cdn.test"), policy.allowedMediaDomains());
        assertEquals(1, policy.maxRedirects());
        assertEquals(1000, policy.maxImageBytes());
        assertEquals(Duration.ofMillis(2500), policy.timeout());
        assertEquals(4096, c.media().maxImagePixels());
        assertEquals(2, c.maxImagesPerPrompt());
        assertEquals(0, c.media().encoderCacheSize());
        assertEquals(2, parse("--limit-mm-per-prompt", "{\"image\": 2, \"video\": 0}").toConfig(Map.of())
                .maxImagesPerPrompt(), "vLLM's JSON form");
    }

    @Test
    void mediaDefaultsAreSafeAndShownInHelp() {
        ServerConfig c = parse().toConfig(Map.of());
        var policy = c.media().fetchPolicy(c.imageFetchTimeout(), c.maxImageBytes());
        assertFalse(policy.allowPrivateMediaUrls());
        assertNull(policy.allowedLocalMediaPath());
        assertTrue(policy.allowedMediaDomains().isEmpty());
        assertEquals(3, policy.maxRedirects());
        assertEquals(20L << 20, policy.maxImageBytes());
        assertEquals(4, c.maxImagesPerPrompt());
        assertEquals(1, parse("--image-input-shape", "1,3,336,336").toConfig(Map.of()).maxImagesPerPrompt(),
                "an explicit --image-input-shape keeps vLLM 0.4's meaning of N");
        StringWriter help = new StringWriter();
        Main.commandLine().getSubcommands().get("serve").usage(new PrintWriter(help));
        for (String flag : List.of("--allowed-local-media-path", "--allow-private-media-urls", "--allowed-media-domains",
                "--max-media-redirects", "--max-image-bytes", "--max-image-pixels", "--limit-mm-per-prompt",
                "--encoder-cache-size"))
            assertTrue(help.toString().contains(flag), flag);
        assertTrue(help.toString().contains("Default: 16384"), help.toString());
    }

    @Test
    void badMediaFlagsAreConfigErrors() {
        assertThrows(ConfigException.class, () -> parse("--limit-mm-per-prompt", "video=1").toConfig(Map.of()));
        assertThrows(ConfigException.class, () -> parse("--limit-mm-per-prompt", "image=x").toConfig(Map.of()));
        assertThrows(ConfigException.class, () -> parse("--limit-mm-per-prompt", "image=2", "--image-input-shape",
                "1,3,336,336").toConfig(Map.of()));
        assertThrows(ConfigException.class, () -> parse("--max-media-redirects", "-1").toConfig(Map.of()));
        assertThrows(ConfigException.class, () -> parse("--allowed-local-media-path", "/no/such/dir").toConfig(Map.of()));
        assertThrows(ConfigException.class, () -> parse("--allowed-media-domains", "bad..name, .x").toConfig(Map.of()));
    }
}
