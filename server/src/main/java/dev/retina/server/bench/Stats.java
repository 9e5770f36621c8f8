package dev.retina.server.bench;

import java.util.Arrays;

/** Mean, median and percentiles as numpy computes them (linear interpolation), NaNs left out. */
public final class Stats {
    private Stats() {
    }

    public static double mean(double[] v) {
        return Arrays.stream(v).filter(x -> !Double.isNaN(x)).average().orElse(Double.NaN);
    }

    public static double percentile(double[] v, double p) {
        double[] s = Arrays.stream(v).filter(x -> !Double.isNaN(x)).sorted().toArray();
        if (s.length == 0) return Double.NaN;
        double pos = p / 100 * (s.length - 1);
        int lo = (int) Math.floor(pos);
        int hi = Math.min(lo + 1, s.length - 1);
        return s[lo] + (s[hi] - s[lo]) * (pos - lo);
    }
}
