package dev.retina.server;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** README's flag table names every option of {@code retina serve} (a new flag without a row fails here). */
class FlagsDocumentedTest {
    @Test
    void everyServeFlagHasAReadmeRow() throws Exception {
        String readme = Files.readString(Path.of(System.getProperty("retina.root", "..")).resolve("README.md"));
        List<String> missing = new ArrayList<>();
        CommandLine serve = Main.commandLine().getSubcommands().get("serve");
        for (CommandLine.Model.OptionSpec o : serve.getCommandSpec().options()) {
            if (o.usageHelp() || o.versionHelp()) continue;
            if (!readme.contains("| `" + String.join(", ", o.names()) + "` |")) missing.add(o.longestName());
        }
        assertTrue(missing.isEmpty(), "README.md's flag table lacks " + missing);
    }
}
