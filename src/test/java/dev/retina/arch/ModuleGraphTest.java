package dev.retina.arch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Guards the one-way module graph of DESIGN.md: server → engine, vision, tokenizer, templates; engine → DJL only.
 * Checked twice: the Maven dependencies between Retina modules, and the imports in every main source file.
 */
class ModuleGraphTest {
    private static final Path ROOT = Path.of(System.getProperty("retina.root", "..")).toAbsolutePath().normalize();

    /** Retina modules each module may depend on. */
    private static final Map<String, Set<String>> ALLOWED_MODULE_DEPS = Map.of(
            "tokenizer", Set.of(),
            "templates", Set.of(),
            "vision", Set.of(),
            "engine", Set.of(),
            "server", Set.of("engine", "vision", "tokenizer", "templates"),
            "examples", Set.of("server", "engine", "vision", "tokenizer", "templates"));

    /** Import prefixes each module's main code must not use. */
    private static final Map<String, List<String>> FORBIDDEN_IMPORTS = Map.of(
            "engine", List.of("io.netty", "com.fasterxml", "com.hubspot", "picocli", "dev.retina.server",
                    "dev.retina.vision", "dev.retina.tokenizer", "dev.retina.templates"),
            "vision", List.of("ai.djl", "io.netty", "dev.retina.engine", "dev.retina.server",
                    "dev.retina.tokenizer", "dev.retina.templates"),
            "tokenizer", List.of("ai.djl.ndarray", "ai.djl.pytorch", "io.netty", "dev.retina.engine",
                    "dev.retina.server", "dev.retina.vision", "dev.retina.templates"),
            "templates", List.of("ai.djl", "io.netty", "dev.retina.engine", "dev.retina.server",
                    "dev.retina.vision", "dev.retina.tokenizer"),
            // The server never touches a tensor: it talks to the engine through records of plain arrays.
            "server", List.of("ai.djl.ndarray", "ai.djl.nn", "ai.djl.pytorch"));

    private static final Pattern RETINA_DEP = Pattern.compile("<artifactId>retina-([a-z]+)</artifactId>");
    private static final Pattern IMPORT = Pattern.compile("^import\\s+(static\\s+)?([\\w.]+)", Pattern.MULTILINE);

    @Test
    void mavenDependenciesPointOneWay() throws IOException {
        for (var entry : ALLOWED_MODULE_DEPS.entrySet()) {
            String pom = Files.readString(ROOT.resolve(entry.getKey()).resolve("pom.xml"));
            String deps = pom.substring(pom.indexOf("<dependencies>"));
            Set<String> found = new TreeSet<>();
            Matcher m = RETINA_DEP.matcher(deps);
            while (m.find()) found.add(m.group(1));
            found.removeAll(entry.getValue());
            assertEquals(Set.of(), found, entry.getKey() + "/pom.xml depends on modules it must not");
        }
    }

    @Test
    void mainSourcesImportOnlyWhatTheirModuleMay() throws IOException {
        List<String> violations = new ArrayList<>();
        int filesChecked = 0;
        for (var entry : FORBIDDEN_IMPORTS.entrySet()) {
            Path src = ROOT.resolve(entry.getKey()).resolve("src/main/java");
            if (!Files.isDirectory(src)) continue;
            try (Stream<Path> files = Files.walk(src)) {
                for (Path file : files.filter(p -> p.toString().endsWith(".java")).toList()) {
                    filesChecked++;
                    Matcher m = IMPORT.matcher(Files.readString(file));
                    while (m.find()) {
                        String imported = m.group(2);
                        for (String forbidden : entry.getValue()) {
                            if (imported.equals(forbidden) || imported.startsWith(forbidden + ".")) {
                                violations.add(ROOT.relativize(file) + " imports " + imported);
                            }
                        }
                    }
                }
            }
        }
        assertTrue(filesChecked > 0, "no sources found under " + ROOT);
        assertEquals(List.of(), violations);
    }
}
