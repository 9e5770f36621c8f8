package dev.retina.server;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code retina}: the command-line entry point. Subcommand {@code serve} runs the OpenAI-compatible server;
 * {@code bench} benchmarks the engine offline. */
@Command(name = "retina", mixinStandardHelpOptions = true, version = "retina 0.1.0",
        description = "OpenAI-compatible vision-chat server for LLaVA models on the JVM.",
        subcommands = {ServeCommand.class, BenchCommand.class, EnvCommand.class, CommandLine.HelpCommand.class})
public final class Main implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    /** The configured Picocli command tree (tests parse with it). */
    public static CommandLine commandLine() {
        return new CommandLine(new Main()).setCaseInsensitiveEnumValuesAllowed(true);
    }

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }
}
