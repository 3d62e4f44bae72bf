#!/bin/sh
# Greengrass Run step of ssd.ObjectDetector: the detector daemon from the venv install.sh made.
#   usage: run.sh ARTIFACT_DIR WORK_DIR MODEL_DIR [edge-runtime run flags...]
# The daemon sees the nucleus' IPC variables, so it reads the component configuration over IPC, publishes
# through the nucleus and applies configuration updates live. exec: SIGTERM from the nucleus reaches it directly.
set -eu

ARTIFACTS=$1
WORK=$2
MODEL=$3
shift 3

set -- "$ARTIFACTS"/ssd_greengrass-*.whl "$@"
HASH=$(sha256sum "$1" | cut -c1-16)
shift
VENV="$WORK/venv-$HASH"
if [ ! -f "$VENV/.installed" ]; then
    echo "run.sh: $VENV is not installed (the Install step did not complete)" >&2
    exit 1
fi
# the outboxes (detections not yet delivered) outlive restarts and updates of the component: keep them in its work path
export EDGE_RUNTIME_STATE_DIR="${EDGE_RUNTIME_STATE_DIR:-$WORK}"
exec "$VENV/bin/edge-runtime" run --model "$MODEL" "$@"
