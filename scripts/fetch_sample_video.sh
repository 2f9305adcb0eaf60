#!/usr/bin/env bash
# Fetch the real sample video the tracking benchmark and tests use: OpenCV's vtest.avi (768x576, 795 frames,
# 10 frames/s, an outdoor scene with 3-8 pedestrians walking, crossing and passing behind a lamp post), as
# shipped in Debian's package opencv-doc 4.6.0+dfsg-12 (/usr/share/doc/opencv-doc/examples/data/vtest.avi).
#
#   bash scripts/fetch_sample_video.sh [CACHE_DIR]     (default: ~/.cache/posetrack/videos; `make sample-video`)
#
# The package is downloaded with `apt-get download` (no root needed, nothing installed), unpacked with
# `dpkg -x` into a temporary folder, and the video copied into the cache once its sha256 matches.
set -euo pipefail

PACKAGE=opencv-doc
VERSION=4.6.0+dfsg-12
MEMBER=usr/share/doc/opencv-doc/examples/data/vtest.avi
SHA256=45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf
CACHE_DIR=${1:-${POSETRACK_VIDEO_CACHE:-$HOME/.cache/posetrack/videos}}
TARGET=$CACHE_DIR/vtest.avi

fail() { echo "fetch_sample_video: $*" >&2; exit 1; }

check() {  # check FILE -> 0 when its sha256 is the expected one
    [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$SHA256" ]
}

if [ -f "$TARGET" ] && check "$TARGET"; then
    echo "$TARGET (already there, sha256 ok)"
    exit 0
fi
for tool in apt-get dpkg sha256sum; do
    command -v "$tool" >/dev/null || fail "needs '$tool' (a Debian-based system); or copy $MEMBER of the Debian \
package $PACKAGE $VERSION to $TARGET yourself"
done

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# a pinned version when the archive has it, else the archive's current one (the sha256 check decides)
if ! (cd "$TMP" && apt-get download -q "$PACKAGE=$VERSION" >/dev/null 2>"$TMP/apt.log"); then
    (cd "$TMP" && apt-get download -q "$PACKAGE" >/dev/null 2>>"$TMP/apt.log") \
        || fail "apt-get download $PACKAGE failed (run 'apt-get update' first?): $(tail -n 2 "$TMP/apt.log")"
fi
DEB=$(ls "$TMP"/"$PACKAGE"_*.deb 2>/dev/null | head -n 1)
[ -n "$DEB" ] || fail "apt-get download $PACKAGE gave no .deb file"
dpkg -x "$DEB" "$TMP/root" || fail "dpkg -x $DEB failed"
[ -f "$TMP/root/$MEMBER" ] || fail "$(basename "$DEB") has no $MEMBER"
check "$TMP/root/$MEMBER" || fail "$MEMBER in $(basename "$DEB") has sha256 \
$(sha256sum "$TMP/root/$MEMBER" | cut -d' ' -f1), expected $SHA256 (opencv-doc $VERSION); not copied"
mkdir -p "$CACHE_DIR"
cp "$TMP/root/$MEMBER" "$TARGET.part"
mv "$TARGET.part" "$TARGET"
echo "$TARGET (from $(basename "$DEB"), sha256 ok)"
