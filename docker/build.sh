#!/usr/bin/env bash
# The build steps of Retina's images, in one script that both Dockerfiles run and CI runs too (no Docker engine on
# the CI machine): builds with Maven and lays out OUT as the image's /opt/retina (docker/layout.sh): retina.jar,
# lib/ (no native libraries for other platforms), bin/retina.
#   docker/build.sh OUT [cpu|cuda]
# cuda: leaves DJL's CPU libtorch out (the CUDA image fetches DJL's CUDA build of libtorch at image build time).
set -euo pipefail
OUT=${1:?usage: docker/build.sh OUT [cpu|cuda]}
FLAVOR=${2:-cpu}
cd "$(dirname "$0")/.."
mvn -B -ntp -q package -DskipTests -pl server -am
docker/layout.sh "$OUT" "$FLAVOR"
"$OUT/bin/retina" serve --help > /dev/null  # the launcher starts and parses its flags
echo "docker/build.sh: $OUT ($FLAVOR) is $(du -sh "$OUT" | cut -f1): $(ls "$OUT/lib" | wc -l) jars"
