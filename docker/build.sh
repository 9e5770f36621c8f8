#!/usr/bin/env bash
# The build steps of Retina's images, in one script that both Dockerfiles run and CI runs too (no Docker engine on
# the CI machine): builds with Maven and lays out OUT as the image's /opt/retina: retina.jar, lib/ (no native
# libraries for other platforms), bin/retina.
#   docker/build.sh OUT [cpu|cuda]
# cuda: leaves DJL's CPU libtorch out (the CUDA image fetches DJL's CUDA build of libtorch at image build time).
set -euo pipefail
OUT=${1:?usage: docker/build.sh OUT [cpu|cuda]}
FLAVOR=${2:-cpu}
cd "$(dirname "$0")/.."
mvn -B -ntp -q package -DskipTests -pl server -am
rm -rf "$OUT" && mkdir -p "$OUT/lib" "$OUT/bin"
cp server/target/retina.jar "$OUT/"
for jar in server/target/lib/*.jar; do
  name=$(basename "$jar")
  case "$name" in
    pytorch-native-cpu-*) [[ "$FLAVOR" == cuda ]] && continue ;;
  esac
  cp "$jar" "$OUT/lib/"
done
# DJL's tokenizers jar carries native libraries for every platform; keep linux-x86_64's only.
for jar in "$OUT"/lib/tokenizers-*.jar; do
  zip -q -d "$jar" 'native/lib/osx-*' 'native/lib/win-*' 'native/lib/linux-aarch64/*' > /dev/null 2>&1 || true
done
cat > "$OUT/bin/retina" <<'SH'
#!/usr/bin/env sh
# Retina's launcher: java from JAVA_HOME or the PATH, DJL offline unless DJL_ONLINE=1.
here=$(cd "$(dirname "$0")/.." && pwd)
java=${JAVA_HOME:+$JAVA_HOME/bin/}java
djl="-Dai.djl.default_engine=PyTorch"
[ "${DJL_ONLINE:-0}" = 1 ] || djl="$djl -Dai.djl.offline=true"
exec "$java" $djl --enable-native-access=ALL-UNNAMED $JAVA_OPTS -jar "$here/retina.jar" "$@"
SH
chmod +x "$OUT/bin/retina"
"$OUT/bin/retina" serve --help > /dev/null  # the launcher starts and parses its flags
echo "docker/build.sh: $OUT ($FLAVOR) is $(du -sh "$OUT" | cut -f1): $(ls "$OUT/lib" | wc -l) jars"
