package dev.retina.server.backend;

import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.FileSystem;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * The tiny random LLaVA-1.5 checkpoint packaged in the server jar under {@code dev/retina/demo-model/} (from the
 * test fixture {@code llava15-336-mha}), so {@code retina serve} runs with no download. Its answers are noise.
 */
public final class DemoModel {
    static final String RESOURCE_DIR = "dev/retina/demo-model";

    private DemoModel() {
    }

    /**
     * The checkpoint as a directory: the classpath directory itself when running from classes, else a copy
     * extracted from the jar into a fresh temporary directory (deleted at exit).
     *
     * @throws IOException when the jar was built without the demo model
     */
    public static Path directory() throws IOException {
        URL config = DemoModel.class.getClassLoader().getResource(RESOURCE_DIR + "/config.json");
        if (config == null)
            throw new IOException("this build has no bundled demo model (" + RESOURCE_DIR + "); pass --model DIR");
        URI uri;
        try {
            uri = config.toURI();
        } catch (URISyntaxException e) {
            throw new IOException(e);
        }
        if (uri.getScheme().equals("file")) return Path.of(uri).getParent();
        Path target = Files.createTempDirectory("retina-demo-model");
        try (FileSystem jar = FileSystems.newFileSystem(uri, Map.of())) {
            Path source = jar.getPath(RESOURCE_DIR);
            List<Path> files;
            try (Stream<Path> walk = Files.walk(source)) {
                files = walk.filter(Files::isRegularFile).toList();
            }
            for (Path file : files) {
                Path dest = target.resolve(source.relativize(file).toString());
                Files.createDirectories(dest.getParent());
                try (InputStream in = Files.newInputStream(file)) {
                    Files.copy(in, dest, StandardCopyOption.REPLACE_EXISTING);
                }
                dest.toFile().deleteOnExit();
            }
        }
        target.toFile().deleteOnExit();
        return target;
    }
}
