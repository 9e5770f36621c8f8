package dev.retina.engine;

import java.util.Arrays;

/** A growable int array (block tables), to avoid boxing in the scheduler's hot path. Not thread-safe. */
final class IntList {
    private int[] values = new int[8];
    private int size;

    int size() { return size; }

    int get(int i) {
        if (i >= size) throw new IndexOutOfBoundsException(i);
        return values[i];
    }

    void add(int v) {
        if (size == values.length) values = Arrays.copyOf(values, size * 2);
        values[size++] = v;
    }

    void clear() { size = 0; }

    int[] toArray() { return Arrays.copyOf(values, size); }
}
