#!/usr/bin/env bash
# Lays out a built tree (server/target) as Retina's install folder: retina.jar, lib/ (no native libraries for other
# platforms), bin/retina. Used by docker/build.sh (the images) and tools/dist.sh (the tarball, `mvn -Pdist package`).
#   docker/layout.sh OUT [cpu|cuda]
# cuda: leaves DJL's CPU libtorch out (DJL fetches, or is pointed at, a CUDA libtorch where it runs).
set -euo pipefail
OUT=${1:?usage: docker/layout.sh OUT [cpu|cuda]}
FLAVOR=${2:-cpu}
cd "$(dirname "$0")/.."
rm -rf "$OUT" && mkdir -p "$OUT/lib" "$OUT/bin"
cp server/target/retina.jar "$OUT/"
for jar in server/target/lib/*.jar; do
  name=$(basename "$jar")
  case "$name" in
    pytorch-native-cpu-*) [[ "$FLAVOR" == cuda ]] && continue ;;
  esac
  cp "$jar" "$OUT/lib/"
done
# DJL's tokenizers jar and webp-imageio carry native libraries for every platform; keep linux-x86_64's only.
for jar in "$OUT"/lib/tokenizers-*.jar; do
  zip -q -d "$jar" 'native/lib/osx-*' 'native/lib/win-*' 'native/lib/linux-aarch64/*' > /dev/null 2>&1 || true
done
for jar in "$OUT"/lib/webp-imageio-*.jar; do
  zip -q -d "$jar" 'native/Mac/*' 'native/Windows/*' 'native/Linux/aarch64/*' 'native/Linux/arm*' \
      'native/Linux/x86/*' 'native/Linux/ppc64/*' > /dev/null 2>&1 || true
done
cat > "$OUT/bin/retina" <<'SH'
#!/usr/bin/env sh
# Retina's launcher: the bundled runtime (runtime/, in the dist tarball) if present, else java from JAVA_HOME or the
# PATH; DJL offline unless DJL_ONLINE=1.
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -x "$here/runtime/bin/java" ]; then java="$here/runtime/bin/java"; else java=${JAVA_HOME:+$JAVA_HOME/bin/}java; fi
djl="-Dai.djl.default_engine=PyTorch"
[ "${DJL_ONLINE:-0}" = 1 ] || djl="$djl -Dai.djl.offline=true"
exec "$java" $djl --enable-native-access=ALL-UNNAMED $JAVA_OPTS -jar "$here/retina.jar" "$@"
SH
chmod +x "$OUT/bin/retina"
