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
}
