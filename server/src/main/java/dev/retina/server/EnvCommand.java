package dev.retina.server;

import dev.retina.engine.EngineInfo;
import picocli.CommandLine.Command;

import java.util.concurrent.Callable;

/**
 * {@code retina env}: the Java runtime, the tensor engine and the GPUs Retina would use. The CUDA image runs it at
 * build time so DJL fetches its libtorch then, not on the first start.
 */
@Command(name = "env", mixinStandardHelpOptions = true,
        description = "Print the Java runtime, the tensor engine (DJL, libtorch) and the GPUs it sees.")
public final class EnvCommand implements Callable<Integer> {
    @Override
    public Integer call() {
        System.out.println("java " + Runtime.version() + " (" + System.getProperty("java.vendor") + ")");
        System.out.println(EngineInfo.describe());
        return 0;
    }
}
