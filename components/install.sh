#!/bin/sh
# Greengrass Install step of ssd.ObjectDetector: a virtual environment under the component's work path with
# the edge extra of the wheel shipped in this artifact.
#   usage: install.sh ARTIFACT_DIR WORK_DIR
#
# Offline first: when the component carries wheelhouse/<tag>/ for this device (tag cpXY-ARCH: its Python and
# uname -m; the recipe's WHEELHOUSE names the folder its architecture's wheelhouse-ARCH.zip unpacks to), everything
# is installed from there (and wheelhouse/shared/, the wheels every Python of the architecture uses, shipped once)
# with --no-index and the hashes of its requirements.txt: no network, the same versions on every device, seconds.
# A device whose nucleus states its Python (platformOverride python) gets wheelhouse-ARCH-cpXY.zip and
# wheelhouse-ARCH-shared.zip instead of wheelhouse-ARCH.zip: the tag's folder and shared/ are looked for in each.
# Otherwise pip uses the index (and PIP_OPTIONS), failing fast when it
# cannot be reached: 15 s per connection, 2 retries, the whole pip run bounded by PIP_TIME_LIMIT (default 900 s,
# inside the recipe's 1800 s Timeout).
#
# Idempotent and side by side: the venv is named after the wheel's SHA-256; it is made as WORK/.venv-HASH.partial and
# renamed to WORK/venv-HASH only when everything succeeded (stamped), so a second run for the same artifact does
# nothing, a failed or killed run (the nucleus' Timeout, SIGKILL) leaves no venv-HASH at all (the next run removes
# the .partial), and the newest KEEP_VENVS (default 3) stamped venvs are kept, so a rollback to a previous artifact
# finds its venv ready and needs no network. Before the rename the scripts pip wrote (their #! line) are pointed at
# the final path; the venv's python finds its venv by its own location.
# Environment: PYTHON (default python3), PIP_OPTIONS (extra pip arguments for the network path, from the component
# configuration install.pip_options, e.g. "--find-links /opt/wheels"), SYSTEM_SITE_PACKAGES=1 (see the OS's
# packages), WHEELHOUSE (default ARTIFACT_DIR/wheelhouse), PIP_TIME_LIMIT, KEEP_VENVS.
set -eu

ARTIFACTS=$1
WORK=$2
PYTHON=${PYTHON:-python3}
PIP_TIME_LIMIT=${PIP_TIME_LIMIT:-900}
KEEP_VENVS=${KEEP_VENVS:-3}

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
    touch "$STAMP"  # the newest in use: kept first when old venvs are pruned
    exit 0
fi

TAG=$("$PYTHON" -c 'import platform, sys; print("cp%d%d-%s" % (sys.version_info[0], sys.version_info[1], platform.machine()))')
WHEELS=${WHEELHOUSE:-$ARTIFACTS/wheelhouse}  # the recipe points WHEELHOUSE at its architecture's artifact
HOUSE="$WHEELS/$TAG"
# A device whose nucleus states its Python (platformOverride python: cpXY) gets the wheelhouse component's per-Python
# manifest instead: wheelhouse-ARCH-cpXY.zip and wheelhouse-ARCH-shared.zip, unpacked beside where wheelhouse-ARCH
# would be. Take the tag's folder and every shared/ folder wherever the component's artifacts put them.
UNPACKED=$(dirname "$(dirname "$WHEELS")")
if [ ! -f "$HOUSE/requirements.txt" ]; then
    for found in "$UNPACKED"/*/wheelhouse/"$TAG"; do
        if [ -f "$found/requirements.txt" ]; then HOUSE=$found; break; fi
    done
fi
set --  # the --find-links arguments for shared/ (positional: paths with spaces stay whole)
for shared in "$(dirname "$HOUSE")/shared" "$UNPACKED"/*/wheelhouse/shared; do
    if [ -d "$shared" ]; then set -- "$@" --find-links "$shared"; fi
done

PARTIAL="$WORK/.venv-$HASH.partial"
rm -rf "$VENV" "$WORK"/.venv-*.partial  # an unstamped venv (made before .partial existed); killed attempts
trap 'status=$?; if [ "$status" -ne 0 ]; then rm -rf "$PARTIAL"; echo "install.sh: failed (exit $status); nothing kept" >&2; fi' EXIT
if [ "${SYSTEM_SITE_PACKAGES:-0}" = 1 ]; then
    "$PYTHON" -m venv --system-site-packages "$PARTIAL"
else
    "$PYTHON" -m venv "$PARTIAL"
fi
PIP="$PARTIAL/bin/python -m pip --disable-pip-version-check --no-input"
started=$(date +%s)
if [ -f "$HOUSE/requirements.txt" ]; then
    echo "install.sh: installing from the artifact's wheelhouse $TAG (no network): $HOUSE"
    # shellcheck disable=SC2086 # PIP is a command with arguments
    timeout "$PIP_TIME_LIMIT" $PIP install --progress-bar off --no-index --find-links "$HOUSE" "$@" \
        --require-hashes -r "$HOUSE/requirements.txt"
    # shellcheck disable=SC2086
    timeout "$PIP_TIME_LIMIT" $PIP install --progress-bar off --no-index --no-deps "$WHEEL"
else
    echo "install.sh: no wheelhouse for $TAG (shipped: $(ls "$WHEELS" 2>/dev/null | tr '\n' ' ')); installing from the package index"
    # shellcheck disable=SC2086 # PIP and PIP_OPTIONS are lists of arguments on purpose
    if ! timeout "$PIP_TIME_LIMIT" $PIP install --progress-bar off --timeout 15 --retries 2 ${PIP_OPTIONS:-} \
        "$WHEEL[edge]"; then
        echo "install.sh: pip could not install from the index in $(( $(date +%s) - started )) s: is the device offline? ship a wheelhouse for $TAG (build the component with COMPONENT_WHEELHOUSE=$TAG, components/README.md) or set the component configuration's install.pip_options (e.g. --find-links DIR)" >&2
        exit 1
    fi
fi
# the scripts pip wrote (edge-runtime, activate) name the venv's path: point them at the final one, then rename
for script in "$PARTIAL"/bin/*; do
    if [ -f "$script" ] && [ ! -L "$script" ] && grep -qF "$PARTIAL" "$script" 2>/dev/null; then
        sed -i "s|$PARTIAL|$VENV|g" "$script"
    fi
done
date -u +%Y-%m-%dT%H:%M:%SZ > "$PARTIAL/.installed"
mv "$PARTIAL" "$VENV"  # one rename: venv-HASH is there complete, or not at all
trap - EXIT

# keep the newest KEEP_VENVS stamped venvs (this one included); unstamped ones are leftovers of failed runs
# (read line by line: a work path with spaces must not split into several paths for rm)
ls -1dt "$WORK"/venv-*/.installed 2>/dev/null | tail -n +"$((KEEP_VENVS + 1))" | while IFS= read -r old; do
    rm -rf "$(dirname "$old")"
done
for venv in "$WORK"/venv-*; do
    [ -f "$venv/.installed" ] || rm -rf "$venv"
done
echo "install.sh: installed $(basename "$WHEEL") in $VENV in $(( $(date +%s) - started )) s"
