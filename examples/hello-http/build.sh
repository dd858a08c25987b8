#!/bin/sh
# The example's own build step (a `custom` artifact): a static binary, then a FROM scratch image.
set -e
gcc -static -O2 -o hello main.c
docker build -q -t "$IMAGE" . >/dev/null
if [ "$PUSH_IMAGE" = true ]; then docker push "$IMAGE"; fi
