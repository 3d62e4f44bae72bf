#!/bin/sh
# Greengrass Install step of ssd.ObjectDetector: a virtual environment under the component's work path with
# the edge extra of the wheel shipped in this artifact.
#   usage: install.sh ARTIFACT_DIR WORK_DIR
# Idempotent: the venv is named after the wheel's SHA-256, and a stamp is written only when pip succeeded, so
# a second run for the same artifact does nothing and a new artifact gets a fresh venv (older ones are removed
# after the new one works). The recipe bounds the whole step with its Timeout.
# Environment: PYTHON (default python3), PIP_OPTIONS (extra pip arguments, from the component configuration
# install.pip_options, e.g. "--find-links /opt/wheels"), SYSTEM_SITE_PACKAGES=1 (use the OS's packages, e.g.
# the MXNet GPU build on a Jetson).
set -eu

ARTIFACTS=$1
WORK=$2
PYTHON=${PYTHON:-python3}

set -- "$ARTIFACTS"/ssd_greengrass-*.whl
if [ "$#" -ne 1 ] || [ ! -f "$1" ]; then
    echo "install.sh: expected exactly one ssd_greengrass wheel in $ARTIFACTS" >&2
    exit 1
fi
WHEEL=$1
HASH=$(sha256sum "$WHEEL" | cut -c1-16)
VENV="$WORK/venv-$HASH"
STAMP="$VENV/.installed"

if [ -f "$STAMP" ]; then
    echo "install.sh: $(basename "$WHEEL") already installed in $VENV; nothing to do"
    exit 0
fi

rm -rf "$VENV"  # a previous attempt that did not finish
if [ "${SYSTEM_SITE_PACKAGES:-0}" = 1 ]; then
    "$PYTHON" -m venv --system-site-packages "$VENV"
else
    "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC2086 # PIP_OPTIONS is a list of arguments on purpose
"$VENV/bin/python" -m pip install --disable-pip-version-check --no-input --progress-bar off --timeout 60 \
    ${PIP_OPTIONS:-} "$WHEEL[edge]"
date -u +%Y-%m-%dT%H:%M:%SZ > "$STAMP"

for old in "$WORK"/venv-*; do
    [ "$old" = "$VENV" ] || rm -rf "$old"
done
echo "install.sh: installed $(basename "$WHEEL") in $VENV"
