#!/usr/bin/env bash
# Retina's distribution for a GPU host with no JDK (run by `mvn -Pdist package`, after the server module's jar and
# lib/ are built): docker/layout.sh's install folder in its cuda flavour (no CPU libtorch, no native libraries for
# other platforms) plus a jlink'd Java runtime in runtime/, which bin/retina prefers. Packs it as
#   server/target/retina-VERSION-linux-x86_64.tar.xz
# and reports its size. DJL's libtorch is not inside: DJL fetches its CUDA build on first use (DJL_ONLINE=1,
# PYTORCH_FLAVOR=cu128), or PYTORCH_LIBRARY_PATH points it at an installed one (README, "Without a JDK").
set -euo pipefail
VERSION=${1:?usage: tools/dist.sh VERSION}
cd "$(dirname "$0")/.."
JAVA_HOME=${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")}
NAME=retina-$VERSION-linux-x86_64
STAGE=$PWD/server/target/dist/$NAME
docker/layout.sh "$STAGE" cuda
# Modules: what jdeps reports for Retina and its runtime libraries, less the tooling modules only optional code
# paths of Jinjava's and Logback's dependencies reach (compiler, attach, jdi, jfr, instrument).
MODULES=java.base,java.desktop,java.logging,java.management,java.naming,java.net.http,java.sql,java.xml,jdk.crypto.ec,jdk.management,jdk.unsupported,jdk.zipfs
"$JAVA_HOME/bin/jlink" --add-modules "$MODULES" --strip-debug --no-header-files --no-man-pages \
    --output "$STAGE/runtime"
rm -f "$STAGE"/runtime/lib/server/*.jsa  # the class-data-sharing archives: 15 MB, only a faster start
if command -v strip > /dev/null; then strip --strip-unneeded "$STAGE/runtime/lib/server/libjvm.so"; fi
# Jars stored uncompressed, so that xz compresses across them: about half the tarball's size.
for jar in "$STAGE"/retina.jar "$STAGE"/lib/*.jar; do
  tmp=$(mktemp -d)
  (cd "$tmp" && unzip -q "$jar" && rm "$jar" && zip -q -0 -X -r "$jar" .)
  rm -rf "$tmp"
done
"$STAGE/bin/retina" serve --help > /dev/null  # the bundled runtime starts Retina and parses its flags
tar -C server/target/dist -cf - "$NAME" | xz -T0 -6 > "server/target/$NAME.tar.xz"
echo "tools/dist.sh: server/target/$NAME.tar.xz is $(du -h "server/target/$NAME.tar.xz" | cut -f1)" \
     "($(du -sh "$STAGE" | cut -f1) unpacked: runtime $(du -sh "$STAGE/runtime" | cut -f1)," \
     "$(ls "$STAGE/lib" | wc -l) jars in $(du -sh "$STAGE/lib" | cut -f1), retina.jar $(du -h "$STAGE/retina.jar" | cut -f1))"
