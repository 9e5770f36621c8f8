package dev.retina.server.bench;

import javax.imageio.ImageIO;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * The PNG of a rate sweep: latency (mean and P99 of TTFT, TPOT and end-to-end) against the request throughput each
 * rate achieved, one panel per metric, each point labelled with its offered rate. Java2D, headless.
 */
public final class BenchPlot {
    private static final int PANEL_W = 420;
    private static final int PANEL_H = 340;
    private static final String[][] PANELS = {{"ttft", "TTFT"}, {"tpot", "TPOT"}, {"e2el", "end-to-end latency"}};

    private BenchPlot() {
    }

    public static void write(Path file, String title, List<RateResult> results) throws IOException {
        System.setProperty("java.awt.headless", "true");
        BufferedImage img = new BufferedImage(PANEL_W * PANELS.length, PANEL_H + 40, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
        g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
        g.setColor(Color.WHITE);
        g.fillRect(0, 0, img.getWidth(), img.getHeight());
        g.setColor(Color.BLACK);
        g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 14));
        g.drawString(title, 12, 22);
        for (int p = 0; p < PANELS.length; p++) panel(g, p * PANEL_W, 40, PANELS[p][0], PANELS[p][1], results);
        g.dispose();
        if (!ImageIO.write(img, "png", file.toFile())) throw new IOException("no PNG writer");
    }

    private static void panel(Graphics2D g, int ox, int oy, String key, String name, List<RateResult> results) {
        int left = ox + 62;
        int right = ox + PANEL_W - 16;
        int top = oy + 24;
        int bottom = oy + PANEL_H - 46;
        double maxX = 0;
        double maxY = 0;
        for (RateResult r : results) {
            maxX = Math.max(maxX, r.requestThroughput());
            maxY = Math.max(maxY, finite(r.latency("p99_" + key)));
            maxY = Math.max(maxY, finite(r.latency("mean_" + key)));
        }
        maxX = niceCeil(maxX);
        maxY = niceCeil(maxY);
        g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 11));
        g.setColor(Color.BLACK);
        g.drawString(name + " (ms)", left, top - 8);
        g.setColor(new Color(0xDDDDDD));
        for (int i = 0; i <= 4; i++) {
            int y = bottom - (bottom - top) * i / 4;
            g.drawLine(left, y, right, y);
            int x = left + (right - left) * i / 4;
            g.drawLine(x, top, x, bottom);
        }
        g.setColor(Color.BLACK);
        g.drawRect(left, top, right - left, bottom - top);
        for (int i = 0; i <= 4; i++) {
            int y = bottom - (bottom - top) * i / 4;
            String label = tick(maxY * i / 4);
            g.drawString(label, left - 6 - g.getFontMetrics().stringWidth(label), y + 4);
            int x = left + (right - left) * i / 4;
            String xl = tick(maxX * i / 4);
            g.drawString(xl, x - g.getFontMetrics().stringWidth(xl) / 2, bottom + 15);
        }
        g.drawString("achieved requests/s", (left + right) / 2 - 50, bottom + 32);
        String[] stats = {"mean", "p99"};
        Color[] colors = {new Color(0x1F77B4), new Color(0xD62728)};
        for (int s = 0; s < stats.length; s++) {
            g.setColor(colors[s]);
            g.setStroke(new BasicStroke(2f));
            int px = -1;
            int py = -1;
            for (RateResult r : results) {
                double v = r.latency(stats[s] + "_" + key);
                if (Double.isNaN(v)) continue;
                int x = left + (int) Math.round((right - left) * r.requestThroughput() / maxX);
                int y = bottom - (int) Math.round((bottom - top) * v / maxY);
                if (px >= 0) g.drawLine(px, py, x, y);
                g.fillOval(x - 3, y - 3, 7, 7);
                if (s == 1) g.drawString(r.rateLabel(), x + 5, y - 5);
                px = x;
                py = y;
            }
            g.fillRect(right - 70, top + 8 + 16 * s, 10, 10);
            g.drawString(stats[s].toUpperCase(Locale.ROOT).replace("MEAN", "mean"), right - 56, top + 17 + 16 * s);
        }
        g.setStroke(new BasicStroke(1f));
    }

    private static double finite(double v) {
        return Double.isNaN(v) || Double.isInfinite(v) ? 0 : v;
    }

    /** The smallest of 1, 2, 2.5, 5 × 10^k at or above v (1 for v ≤ 0). */
    static double niceCeil(double v) {
        if (v <= 0) return 1;
        double p = Math.pow(10, Math.floor(Math.log10(v)));
        for (double m : new double[] {1, 2, 2.5, 5, 10}) if (m * p >= v) return m * p;
        return 10 * p;
    }

    private static String tick(double v) {
        if (v == Math.rint(v)) return String.valueOf(Math.round(v));
        if (Math.abs(v) >= 10) return String.format(Locale.ROOT, "%.1f", v);
        return String.format(Locale.ROOT, "%.2f", v).replaceAll("0+$", "");
    }
}
