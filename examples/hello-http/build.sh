#!/bin/sh
# The example's own build step (a `custom` artifact): a static binary, then a FROM scratch image.
# A static busybox, when the host has one, gives the image `sh` and `tar` so that skiff can
# sync files into its pods on Kubernetes (on Docker, skiff copies into any container).
set -e
gcc -static -O2 -o hello main.c
rm -rf tools && mkdir tools
if [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; then
  cp /bin/busybox tools/busybox
fi
docker build -q -t "$IMAGE" . >/dev/null
if [ "$PUSH_IMAGE" = true ]; then docker push "$IMAGE"; fi
