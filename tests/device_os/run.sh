#!/usr/bin/env bash
# Proven on the device OSes: install this project's wheel with the `edge` extra into a fresh Debian root (trixie:
# Python 3.13) of the device's architecture, run `edge-runtime detect` and `edge-runtime run` there, and compare
# the detections with this machine's own `.venv/bin/edge-runtime detect`. tests/device_os/README.md has the details.
#
#   tests/device_os/run.sh [--arch amd64|arm64] [--suite trixie]      (make device-os / make device-os-arm64)
#   tests/device_os/run.sh --arch arm64 --nucleus-sim                   (make nucleus-sim-arm64)
#   tests/device_os/run.sh --offline [--suite bookworm] [--python 3.10]  (make device-os-offline, device-os-pythons)
#
# --offline: instead of pip and the index, the component as a device installs it with no network: components/build.py
# with the root's wheelhouse only (COMPONENT_WHEELHOUSE=<the root's cpXY-ARCH>), the runtime's and the wheelhouse's
# zips unpacked into the root, components/install.sh run there in a network namespace of its own (no interface but
# lo, checked), then edge-runtime detect and run from the venv it made, offline too, compared with this machine's.
# --python X.Y: the root's python3 is this machine's own build of Python X.Y (the newest DEVICE_OS_PYTHONS/X.Y.*,
# default $PYENV_ROOT/versions or ~/.pyenv/versions: a CPython built from source on Debian 12, as a device with a
# source-built Python has it), copied into the root under the same path, without its site-packages, and linked as
# /usr/local/bin/python3. Debian ships no 3.10 or 3.12 and this machine reaches no Ubuntu mirror, so this is how
# 3.10 and 3.12 devices are met. DEVICE_OS_PYTHONS names another folder of X.Y.Z prefixes. COMPONENT_ENGINES=openvino
# builds the wheelhouse with that engine (make device-os-openvino): Install puts it in the venv, and its detections
# (--backend openvino) in the root are compared with this machine's too.
#
# --nucleus-sim: instead, a simulated nucleus run of the built component in the same root (tests/support/nucleus_sim.py):
# components/build.py with the root's wheelhouse only (the wheelhouse component), Install as ggc_user from it (cwd the work path, stdin closed),
# Run against the test IPC server (on this machine, its socket inside the root), SIGTERM, the stop timed (< 5 s);
# Install and Run in a network namespace of their own (no network: the IPC socket is a file, which still connects).
#   --wheelhouse TAGS   the wheelhouse component's tags (default: the root's own, e.g. cp313-aarch64)
#   --platform K=V      the nucleus' platformOverride (repeatable): --wheelhouse cp313-aarch64,cp311-aarch64
#                       --platform python=cp313 is a device that states its Python (make nucleus-sim-python-arm64)
#
# Needs root, mmdebstrap, chroot and mount (arm64: qemu-user-static with binfmt_misc); as root with apt-get it
# installs the missing packages. Without them it prints a SKIP line and exits 0, or fails (exit 1) when CI=true.
# Every step runs under `timeout` and prints how long it took. Environment:
#   DEVICE_OS_CACHE   where the built roots are kept, one tar per suite+arch (default build/device-os/cache)
#   DEVICE_OS_WORK    the run's working folder: root, logs, outputs (default build/device-os/<suite>-<arch>)
#   DEVICE_OS_REBUILD=1  rebuild the cached root even though it exists
#   DEVICE_OS_QEMU_CPU   arm64: the CPU qemu emulates (default cortex-a72, a Raspberry Pi 4's). Not qemu's default
#                        "max": its pointer authentication, emulated, makes Python 30 times slower (see the README)
#   DEVICE_OS_RUN_TOLERANCE  scores/boxes of the video run (default 1e-4 on amd64, 0.01 on arm64: see the README)
set -uo pipefail
{ # the whole script is one block, read before it runs: editing the file during a run cannot derail that run

ARCH=amd64
SUITE=trixie
MODE=device-os
PYTHON_VERSION=""
SIM_WHEELHOUSE=""
SIM_PLATFORM=()
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) ARCH="$2"; shift 2 ;;
        --suite) SUITE="$2"; shift 2 ;;
        --nucleus-sim) MODE=nucleus-sim; shift ;;
        --offline) MODE=offline; shift ;;
        --python) PYTHON_VERSION="$2"; shift 2 ;;
        --wheelhouse) SIM_WHEELHOUSE="$2"; shift 2 ;;
        --platform) SIM_PLATFORM+=(--platform "$2"); shift 2 ;;
        -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "device-os: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/../.." || exit 2
REPO=$PWD
TAG="$SUITE-$ARCH"
NAME="$MODE[$SUITE/$ARCH]"
CACHE=${DEVICE_OS_CACHE:-$REPO/build/device-os/cache}
SUFFIX=""
[ "$MODE" = nucleus-sim ] && SUFFIX=-nucleus-sim  # its own folder: the device-os outputs stay
[ "$MODE" = offline ] && SUFFIX=-offline
[ "$MODE" = offline ] && [ -n "${COMPONENT_ENGINES:-}" ] && SUFFIX="$SUFFIX-${COMPONENT_ENGINES//,/-}"
[ ${#SIM_PLATFORM[@]} -gt 0 ] && SUFFIX="$SUFFIX-platform"
[ -n "$PYTHON_VERSION" ] && SUFFIX="$SUFFIX-py$PYTHON_VERSION" && NAME="$MODE[$SUITE/$ARCH/python$PYTHON_VERSION]"
WORK=${DEVICE_OS_WORK:-$REPO/build/device-os/$TAG$SUFFIX}
ROOT_TAR="$CACHE/$TAG.tar"
ROOT="$WORK/root"
LOGS="$WORK/logs"
OUT="$WORK/out"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
INCLUDE=python3,python3-venv,ca-certificates
IMAGES=(../shared/fixtures/aws-sample/images/blue_box_1_000133.jpg ../shared/fixtures/aws-sample/images/yellow_box_1_000086.jpg)
VENV_PY="$REPO/.venv/bin/python"
HOST_PY=python3
command -v python3 >/dev/null 2>&1 || HOST_PY="$VENV_PY"

# The video run's tolerance: FFmpeg decodes the clip a few levels differently on aarch64 than on x86-64 (most pixels,
# up to 3 of 255), which moves scores by up to ~0.003 (compare_detections.py); the images are compared at 1e-4.
QEMU_ENV=()
BINFMT_COPY=""
case "$ARCH" in
    amd64) MACHINE=x86_64 RUN_TOLERANCE=${DEVICE_OS_RUN_TOLERANCE:-1e-4} ;;
    arm64) MACHINE=aarch64 RUN_TOLERANCE=${DEVICE_OS_RUN_TOLERANCE:-0.01} QEMU_ENV=(QEMU_CPU="${DEVICE_OS_QEMU_CPU:-cortex-a72}") ;;
    *) echo "device-os: --arch must be amd64 or arm64, not $ARCH" >&2; exit 2 ;;
esac

say() { printf '%s %s\n' "[$(date +%H:%M:%S)] $NAME:" "$*"; }

# Not runnable here: a SKIP line and exit 0; under CI=true a failure, since a skipped check would hide a gap.
unavailable() {
    if [ "${CI:-}" = true ]; then
        echo "FAIL: $NAME: $* (CI=true: the $MODE check must run)"
        exit 1
    fi
    echo "SKIP: $NAME: $*"
    exit 0
}

# ---- bookkeeping: each step is timed, bounded, logged -------------------------------------------------------
declare -a SUMMARY=()
FAILED=0
STEP_NO=0
# step NAME SECONDS [--out FILE] -- COMMAND...   runs COMMAND under timeout; stdout to FILE (or the log), stderr to
# the step's log; prints the duration, and on failure the log's last lines. Returns the command's exit code.
step() {
    local name="$1" limit="$2" out="" rc start end secs log
    shift 2
    if [ "$1" = --out ]; then out="$2"; shift 2; fi
    [ "$1" = -- ] && shift
    STEP_NO=$((STEP_NO + 1))
    log=$(printf "%s/%02d-%s.log" "$LOGS" "$STEP_NO" "$(printf %s "$name" | tr -cs "A-Za-z0-9" "-" | sed "s/-*$//")")
    say "-> $name (at most ${limit} s; log ${log#"$REPO"/})"
    start=$EPOCHREALTIME
    if [ -n "$out" ]; then
        timeout --kill-after=15 "$limit" "$@" >"$out" 2>"$log" </dev/null
    else
        timeout --kill-after=15 "$limit" "$@" >"$log" 2>&1 </dev/null
    fi
    rc=$?
    end=$EPOCHREALTIME
    secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    if [ "$rc" = 0 ]; then
        say "<- $name: ok in ${secs} s"
        SUMMARY+=("$(printf '%-34s %8s s  ok' "$name" "$secs")")
    else
        local why="exit $rc"
        [ "$rc" = 124 ] || [ "$rc" = 137 ] && why="timed out after ${limit} s"
        say "<- $name: FAILED ($why) after ${secs} s; last lines of ${log#"$REPO"/}:"
        tail -n 25 "$log" | sed 's/^/     | /'
        SUMMARY+=("$(printf '%-34s %8s s  FAILED (%s)' "$name" "$secs" "$why")")
        FAILED=1
    fi
    return "$rc"
}
not_run() {
    say "-- $1: not run ($2)"
    SUMMARY+=("$(printf '%-34s %8s    not run (%s)' "$1" "-" "$2")")
}
finish() {
    echo
    echo "$NAME: step timings"
    printf '  %s\n' "${SUMMARY[@]}"
    if [ "$FAILED" = 0 ]; then
        if [ "$MODE" = nucleus-sim ]; then
            echo "PASS: $NAME: installed as ggc_user, published, stopped within 5 s of SIGTERM (outputs: ${OUT#"$REPO"/})"
        elif [ "$MODE" = offline ]; then
            echo "PASS: $NAME: the component installs with no network and detects as on this machine (outputs: ${OUT#"$REPO"/})"
        else
            echo "PASS: $NAME: the edge extra installs and detects as on this machine (outputs: ${OUT#"$REPO"/})"
        fi
        exit 0
    fi
    echo "FAIL: $NAME: see the steps above and ${LOGS#"$REPO"/}/"
    exit 1
}

# ---- the root's mounts ----------------------------------------------------------------------------------------
# Each command in the root runs in a mount namespace of its own (unshare --mount), where /proc, /dev, /sys and the
# pip cache are mounted for it: they vanish with it, even when it is killed, so no mount is ever left below build/
# (where make clean's rm -rf would walk into a bound /dev).
ENTER='r=$1 cache=$2 cpuinfo=$3; shift 3
mount -t proc proc "$r/proc" &&
{ [ "$cpuinfo" = - ] || mount --bind "$cpuinfo" "$r/proc/cpuinfo"; } &&
mount --rbind /dev "$r/dev" &&
mount -t tmpfs -o mode=1777,size=256m shm "$r/dev/shm" &&
mount --bind /sys "$r/sys" && mount -o remount,bind,ro "$r/sys" &&
mount --bind "$cache" "$r/root/.cache/pip" || { echo "device-os: mounting in the root failed" >&2; exit 125; }
exec chroot "$r" "$@"'
# Under qemu-user the root would read this machine's x86 /proc/cpuinfo, which no ARM program expects: ONNX Runtime's
# cpuinfo, finding /sys's CPUs but none of them in it, crashes (SIGSEGV at import). A real ARM device has an ARM one,
# so the root gets what that device shows: one entry per CPU of this machine, for the CPU qemu emulates.
arm_cpuinfo() {  # arm_cpuinfo QEMU_CPU FILE
    local part features="fp asimd evtstrm crc32 cpuid" i
    case "$1" in
        cortex-a35) part=0xd04 ;;
        cortex-a53) part=0xd03 ;;
        cortex-a57) part=0xd07 ;;
        cortex-a76) part=0xd0b features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" ;;
        neoverse-n1) part=0xd0c features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" ;;
        *) part=0xd08 ;;  # cortex-a72 (Raspberry Pi 4); also what "max" and others get
    esac
    : >"$2"
    for ((i = 0; i < $(nproc --all); i++)); do
        printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: %s\nCPU revision\t: 3\n\n' \
            "$i" "$features" "$part" >>"$2"
    done
}
# Never delete a folder while something is mounted below it (in this namespace).
mounts_below() { awk -v p="$1/" 'index($5 "/", p) == 1 { print $5 }' /proc/self/mountinfo; }
safe_rm() {
    if [ -n "$(mounts_below "$1")" ]; then
        echo "device-os: refusing to delete $1: still mounted: $(mounts_below "$1" | tr '\n' ' ')" >&2
        return 1
    fi
    rm -rf --one-file-system "$1"
}
trap 'echo "device-os: interrupted" >&2; exit 130' INT TERM

# ---- preflight: what is missing, installed when we may, else SKIP -------------------------------------------------
[ "$(id -u)" = 0 ] || unavailable "needs root (mmdebstrap --mode=root, chroot, mount); run as root or under sudo"
need_pkgs=()
command -v mmdebstrap >/dev/null 2>&1 || need_pkgs+=(mmdebstrap)
[ -r "$KEYRING" ] || need_pkgs+=(debian-archive-keyring)
if [ "$ARCH" = arm64 ]; then
    command -v qemu-aarch64-static >/dev/null 2>&1 || need_pkgs+=(qemu-user-static)
    command -v update-binfmts >/dev/null 2>&1 || need_pkgs+=(binfmt-support)
fi
if [ ${#need_pkgs[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${need_pkgs[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get install -y -qq "${need_pkgs[@]}" >/dev/null 2>&1 ||
        { timeout 300 apt-get update -qq >/dev/null 2>&1 &&
            timeout 600 apt-get install -y -qq "${need_pkgs[@]}" >/dev/null 2>&1; } ||
        say "apt-get could not install ${need_pkgs[*]}"
fi
for tool in mmdebstrap chroot mount unshare timeout tar; do
    command -v "$tool" >/dev/null 2>&1 || unavailable "$tool is not installed (apt-get install mmdebstrap)"
done
[ -r "$KEYRING" ] || unavailable "$KEYRING is missing (apt-get install debian-archive-keyring)"
[ -x "$VENV_PY" ] || unavailable "$VENV_PY is missing: run make setup first"
if [ "$MODE" = nucleus-sim ]; then  # ggc_user is added to the root's /etc by this machine's shadow tools (--prefix)
    for tool in useradd groupadd usermod; do
        command -v "$tool" >/dev/null 2>&1 || unavailable "$tool is not installed (apt-get install passwd)"
    done
fi
if [ "$ARCH" = arm64 ]; then
    command -v qemu-aarch64-static >/dev/null 2>&1 || unavailable "qemu-aarch64-static is missing (apt-get install qemu-user-static)"
    BINFMT=/proc/sys/fs/binfmt_misc
    [ -e "$BINFMT/register" ] || mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null
    if ! grep -qs '^enabled' "$BINFMT/qemu-aarch64"; then
        update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
    fi
    grep -qs '^enabled' "$BINFMT/qemu-aarch64" ||
        unavailable "binfmt_misc has no enabled qemu-aarch64 entry ($BINFMT not mountable here, or update-binfmts --enable qemu-aarch64 failed)"
    say "binfmt: $(grep -E '^(interpreter|flags)' "$BINFMT/qemu-aarch64" | tr '\n' ' ')"
    # Without the F flag the kernel opens the interpreter inside the root at exec time: it must be there too.
    grep -qs '^flags:.*F' "$BINFMT/qemu-aarch64" || BINFMT_COPY=$(awk '/^interpreter/ { print $2 }' "$BINFMT/qemu-aarch64")
fi
unshare --mount --propagation private sh -c 'mount -t tmpfs none /mnt' 2>/dev/null ||
    unavailable "mounting is not permitted here (a container without CAP_SYS_ADMIN?)"
PY_PREFIX=""
if [ "$MODE" != device-os ]; then  # --offline and --nucleus-sim run the component with no network
    unshare --net true 2>/dev/null || unavailable "network namespaces are not permitted here (unshare --net)"
fi
if [ -n "$PYTHON_VERSION" ]; then
    [ "$MODE" = offline ] || { echo "device-os: --python goes with --offline (see --help)" >&2; exit 2; }
    [ "$ARCH" = amd64 ] || { echo "device-os: --python: this machine's Python builds are x86_64: --arch amd64" >&2; exit 2; }
    PYTHONS=${DEVICE_OS_PYTHONS:-${PYENV_ROOT:-$HOME/.pyenv}/versions}
    PY_PREFIX=$(ls -d "$PYTHONS/$PYTHON_VERSION".* 2>/dev/null | sort -V | tail -n 1)
    [ -n "$PY_PREFIX" ] && [ -x "$PY_PREFIX/bin/python$PYTHON_VERSION" ] ||
        unavailable "no build of Python $PYTHON_VERSION in $PYTHONS (DEVICE_OS_PYTHONS names the folder of X.Y.Z prefixes)"
    say "Python $PYTHON_VERSION for the root: $PY_PREFIX"
fi

mkdir -p "$CACHE" "$WORK"
safe_rm "$LOGS" && safe_rm "$OUT" || exit 1
mkdir -p "$LOGS" "$OUT"
say "working in ${WORK#"$REPO"/}, roots cached in ${CACHE#"$REPO"/}"

# ---- 1. the root: mmdebstrap from this machine's mirrors, cached as one tar per suite+arch ----------------------
if [ -f "$ROOT_TAR" ] && [ "${DEVICE_OS_REBUILD:-}" != 1 ]; then
    say "root: cached ${ROOT_TAR#"$REPO"/} ($(du -h "$ROOT_TAR" | cut -f1); delete it or set DEVICE_OS_REBUILD=1 to rebuild)"
    SUMMARY+=("$(printf '%-34s %8s    cached' "build root ($TAG)" "-")")
else
    mapfile -t MIRRORS < <("$HOST_PY" tests/device_os/apt_sources.py "$SUITE")
    [ ${#MIRRORS[@]} -gt 0 ] || unavailable "no Debian mirror found in /etc/apt/sources.list{,.d}"
    say "root: mirrors: $(printf '[%s] ' "${MIRRORS[@]}")"
    rm -f "$ROOT_TAR.tmp"
    if step "build root ($TAG)" 2400 -- env "${QEMU_ENV[@]}" mmdebstrap --mode=root --variant=apt --arch="$ARCH" \
        --include="$INCLUDE" --keyring="$KEYRING" --aptopt='Acquire::Retries "3"' \
        --format=tar "$SUITE" "$ROOT_TAR.tmp" "${MIRRORS[@]}"; then
        mv "$ROOT_TAR.tmp" "$ROOT_TAR"
        say "root: $(du -h "$ROOT_TAR" | cut -f1) in ${ROOT_TAR#"$REPO"/}"
    else
        rm -f "$ROOT_TAR.tmp"
        finish
    fi
fi

# ---- 2. on the host: the wheel, the inputs, the reference detections ------------------------------------------
# The wheel is built from a copy of the checkout's files (tracked and untracked, not ignored), so setuptools' build/
# and egg-info never see, or leave, anything in the work tree.
build_wheel() {
    local src="$WORK/src"
    safe_rm "$src" && mkdir -p "$src" "$OUT/wheel" || return 1
    if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
        git -C "$REPO" ls-files -z -co --exclude-standard |
            while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
            tar --null -T - -cf - | tar -xf - -C "$src" || return 1
    else
        tar --exclude=./.venv --exclude=./build --exclude=./.git -cf - . | tar -xf - -C "$src" || return 1
    fi
    "$VENV_PY" -m pip wheel --no-deps --progress-bar off "$src" -w "$OUT/wheel" || return 1
    rm -rf "$src"
}
export REPO WORK OUT ROOT ROOT_TAR VENV_PY BINFMT_COPY PY_PREFIX PYTHON_VERSION
export -f safe_rm mounts_below build_wheel
if [ "$MODE" != nucleus-sim ]; then
if [ "$MODE" = device-os ]; then
    step "build wheel (host)" 600 -- bash -c build_wheel
    WHEEL=$(ls "$OUT"/wheel/*.whl 2>/dev/null | head -n 1)
    [ -n "$WHEEL" ] && say "wheel: $(basename "$WHEEL") ($(du -h "$WHEEL" | cut -f1))"
else
    WHEEL=none  # --offline: the component build below makes it, for the root's Python
fi

for image in "${IMAGES[@]}"; do
    [ -f "$image" ] || { say "missing fixture $image"; FAILED=1; }
done
step "synth video (host)" 300 -- "$REPO/.venv/bin/cloud-training" synth --out "$OUT/synth" --images 0 --seed 1 \
    --video "$OUT/synth/boxes.mp4" --frames 30 --force
step "detect (host)" 300 --out "$OUT/host-detect.json" -- "$REPO/.venv/bin/edge-runtime" detect --model models/demo "${IMAGES[@]}"
if [ -f "$OUT/synth/boxes.mp4" ]; then
    # the same engine on both sides (ONNX Runtime fp32): auto would measure, and the host has OpenVINO, the root not
    step "run on video (host)" 300 --out "$OUT/host-run.jsonl" -- "$REPO/.venv/bin/edge-runtime" run \
        --model models/demo --source "$OUT/synth/boxes.mp4" --backend onnxruntime --precision fp32
else
    not_run "run on video (host)" "no video"
fi
fi  # MODE=device-os or offline

# ---- 3. the root for this run: a fresh copy of the cached one, with the machine's pip setup and the inputs ------
prepare_root() {  # prepare_root WHEEL IMAGE...   (WHEEL -: only the root, for --nucleus-sim; none: no wheel)
    local wheel="$1"
    shift
    safe_rm "$ROOT" && mkdir -p "$ROOT" || return 1
    tar --numeric-owner -xpf "$ROOT_TAR" -C "$ROOT" || return 1
    # pip inside reaches the same index as pip here: the global and XDG configuration, and the CA bundle they name
    local f
    for f in /etc/pip.conf /etc/xdg/pip /etc/ssl/certs/ca-certificates.crt ${PIP_CONFIG_FILE:+"$PIP_CONFIG_FILE"}; do
        if [ -e "$f" ]; then
            mkdir -p "$ROOT$(dirname "$f")" && cp -aL "$f" "$ROOT$(dirname "$f")/" && echo "copied $f"
        fi
    done
    cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" && cp -L /etc/hosts "$ROOT/etc/hosts" || return 1
    for f in proc dev sys root/.cache/pip; do mkdir -p "$ROOT/$f"; done
    if [ "$wheel" != - ]; then
    mkdir -p "$ROOT/m/out"
    cp -a models/demo "$ROOT/m/demo" && cp -a "$@" "$ROOT/m/" || return 1
    [ -f "$OUT/synth/boxes.mp4" ] && cp -a "$OUT/synth/boxes.mp4" "$ROOT/m/"
    if [ "$wheel" != none ]; then cp -a "$wheel" "$ROOT/m/" || return 1; fi
    mkdir -p "$ROOT/m/work"
    fi
    # --python: this machine's build of that Python, at the same path (its libpython is found by that path), without
    # what was pip-installed into it, and first on the root's PATH as python3
    if [ -n "$PY_PREFIX" ]; then
        mkdir -p "$ROOT$PY_PREFIX" &&
            tar -C "$PY_PREFIX" --exclude="./lib/python$PYTHON_VERSION/site-packages/*" \
                --exclude="./lib/python$PYTHON_VERSION/test" -cf - . | tar -C "$ROOT$PY_PREFIX" -xf - &&
            ln -sf "$PY_PREFIX/bin/python$PYTHON_VERSION" "$ROOT/usr/local/bin/python3" &&
            echo "copied $PY_PREFIX ($(du -sh "$ROOT$PY_PREFIX" | cut -f1)); /usr/local/bin/python3 -> it" || return 1
    fi
    if [ -n "$BINFMT_COPY" ]; then
        mkdir -p "$ROOT$(dirname "$BINFMT_COPY")" && cp -L "$BINFMT_COPY" "$ROOT$BINFMT_COPY" && echo "copied $BINFMT_COPY"
    fi
}
export -f prepare_root
if [ "$MODE" = nucleus-sim ]; then
    WHEEL=- IMAGES=()
fi
if [ -z "$WHEEL" ]; then
    not_run "prepare root" "no wheel"
    finish
fi
step "prepare root (extract + copy)" 300 -- bash -c 'prepare_root "$@"' prepare_root "$WHEEL" "${IMAGES[@]}" || finish

# The environment inside: nothing of this machine's but pip's settings whose paths exist in the root (the host's
# PIP_FIND_LINKS=/opt/wheels, say, does not) and any proxy settings.
IN_ENV=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
    PIP_ROOT_USER_ACTION=ignore PIP_PROGRESS_BAR=off "${QEMU_ENV[@]}")
[ -n "${OMP_NUM_THREADS:-}" ] && IN_ENV+=(OMP_NUM_THREADS="$OMP_NUM_THREADS")
while IFS='=' read -r var value; do
    case "$var" in
        PIP_*) ;;
        http_proxy | https_proxy | no_proxy | HTTP_PROXY | HTTPS_PROXY | NO_PROXY | SSL_CERT_FILE | REQUESTS_CA_BUNDLE) ;;
        *) continue ;;
    esac
    path=${value#file://}
    if [[ "$path" == /* ]] && [ ! -e "$ROOT$path" ]; then
        say "env: not passing $var=$value (no such path in the root)"
        continue
    fi
    IN_ENV+=("$var=$value")
done < <(env)
say "env inside: ${IN_ENV[*]}"
mkdir -p "$CACHE/pip-$TAG"
CPUINFO=-
if [ "$ARCH" != amd64 ]; then
    CPUINFO="$WORK/cpuinfo"
    arm_cpuinfo "${QEMU_ENV[0]#QEMU_CPU=}" "$CPUINFO"
    say "qemu emulates ${QEMU_ENV[0]#QEMU_CPU=}; the root's /proc/cpuinfo: $(grep -c ^processor "$CPUINFO") CPU(s), part $(awk '/CPU part/ { print $4; exit }' "$CPUINFO")"
fi
IN_ROOT=(unshare --mount --propagation private -- sh -c "$ENTER" enter "$ROOT" "$CACHE/pip-$TAG" "$CPUINFO"
    /usr/bin/env -i "${IN_ENV[@]}")
# the same entry in a network namespace of its own as well (only lo, and lo down): what runs with no network
OFFLINE=(unshare --mount --net --propagation private -- sh -c "$ENTER" enter "$ROOT" "$CACHE/pip-$TAG" "$CPUINFO"
    /usr/bin/env -i "${IN_ENV[@]}")
# ---- --nucleus-sim: the component built for this root's Python, then the nucleus' lifecycle in the root -------------
if [ "$MODE" = nucleus-sim ]; then
    step "python in root" 300 --out "$OUT/device-python.txt" -- "${IN_ROOT[@]}" python3 -c \
        'import platform, sys; print(platform.machine(), "cp%d%d-%s" % (sys.version_info[0], sys.version_info[1], platform.machine()))' || finish
    read -r machine wheelhouse_tag <"$OUT/device-python.txt"
    say "root runs $machine, tag $wheelhouse_tag; the component ships the wheelhouse ${SIM_WHEELHOUSE:-$wheelhouse_tag}"
    [ "$machine" = "$MACHINE" ] || { say "the root's Python runs as $machine, not $MACHINE"; FAILED=1; finish; }
    step "build component (host, ${SIM_WHEELHOUSE:-$wheelhouse_tag})" 900 -- env \
        COMPONENT_WHEELHOUSE="${SIM_WHEELHOUSE:-$wheelhouse_tag}" "$VENV_PY" components/build.py \
        --out "$OUT/greengrass-build" || finish
    du -h "$OUT"/greengrass-build/artifacts/*/*/*.zip | sed 's/^/     /'
    [ ${#SIM_PLATFORM[@]} -gt 0 ] && say "the nucleus' platformOverride: ${SIM_PLATFORM[*]}"
    # The test IPC server runs here (.venv); its socket and the nucleus root are inside the root's folder, so the
    # component in the chroot reaches both. Install is bounded by the recipe's 1800 s, the wait for the publishes
    # by 600 s, the stop by 60 s (then SIGKILL).
    step "nucleus simulation in root" 3000 --out "$OUT/nucleus-sim.txt" -- "$VENV_PY" tests/support/nucleus_sim.py \
        --build "$OUT/greengrass-build" --base "$ROOT/greengrass/v2" --root "$ROOT" --machine "$MACHINE" \
        --out "$OUT/nucleus-sim" --install-limit 1800 --wait 600 "${SIM_PLATFORM[@]}" -- "${OFFLINE[@]}"
    sed 's/^/     /' "$OUT/nucleus-sim.txt" | tail -n 60
    finish
fi

WHEEL_IN=/m/$(basename "$WHEEL")
IMAGES_IN=()
for image in "${IMAGES[@]}"; do IMAGES_IN+=("/m/$(basename "$image")"); done

# ---- --offline: the component's Install in the root with no network, then detect and run from its venv -----------
if [ "$MODE" = offline ]; then
    step "python in root" 300 --out "$OUT/device-python.txt" -- "${IN_ROOT[@]}" python3 -c \
        'import platform, sys; print(platform.machine(), "cp%d%d-%s" % (sys.version_info[0], sys.version_info[1], platform.machine()), sys.version.split()[0], sys.executable, platform.freedesktop_os_release().get("PRETTY_NAME"))' || finish
    read -r machine wheelhouse_tag _ <"$OUT/device-python.txt"
    say "root runs: $(cat "$OUT/device-python.txt"); the component ships the wheelhouse $wheelhouse_tag"
    [ "$machine" = "$MACHINE" ] || { say "the root's Python runs as $machine, not $MACHINE"; FAILED=1; finish; }
    step "build component (host, $wheelhouse_tag)" 900 -- env COMPONENT_WHEELHOUSE="$wheelhouse_tag" "$VENV_PY" \
        components/build.py --out "$OUT/greengrass-build" || finish
    du -h "$OUT"/greengrass-build/artifacts/*/*/*.zip | sed 's/^/     /'
    # unpacked as the nucleus unpacks them: each zip into a folder named after it
    RUNTIME_IN=/m/gg/runtime/ssd-object-detector
    WHEELS_IN=/m/gg/wheels/wheelhouse-$MACHINE
    step "unpack artifacts into root" 300 -- sh -c 'python3 -m zipfile -e "$1"/artifacts/ssd.ObjectDetector/*/ssd-object-detector.zip "$2" &&
        python3 -m zipfile -e "$1"/artifacts/ssd.ObjectDetector.Wheelhouse/*/wheelhouse-"$4".zip "$3"' unpack \
        "$OUT/greengrass-build" "$ROOT$RUNTIME_IN" "$ROOT$WHEELS_IN" "$MACHINE" || finish
    step "no network in root" 60 --out "$OUT/device-net.txt" -- "${OFFLINE[@]}" sh -c \
        'echo "interfaces: $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | tr "\n" " ")"; ! tail -n +3 /proc/net/dev | grep -qv "^ *lo:"' || finish
    say "root's network namespace: $(cat "$OUT/device-net.txt")"
    INSTALL_LIMIT=900
    [ "$ARCH" = amd64 ] || INSTALL_LIMIT=1800
    if step "install.sh in root (no network)" "$INSTALL_LIMIT" --out "$OUT/device-install.txt" -- "${OFFLINE[@]}" \
        WHEELHOUSE="$WHEELS_IN/wheelhouse" sh "$RUNTIME_IN/install.sh" "$RUNTIME_IN" /m/work; then
        say "$(tail -n 1 "$OUT/device-install.txt")"
        step "pip list in root" 120 --out "$OUT/device-pip-list.txt" -- "${OFFLINE[@]}" sh -c \
            'exec /m/work/venv-*/bin/python -m pip list --format=freeze --disable-pip-version-check'
        say "installed: $(tr '\n' ' ' <"$OUT/device-pip-list.txt")"
        step "detect in root (no network)" 600 --out "$OUT/device-detect.json" -- "${OFFLINE[@]}" sh -c \
            'exec /m/work/venv-*/bin/edge-runtime detect --model /m/demo "$@"' detect "${IMAGES_IN[@]}"
        if [ -f "$ROOT/m/boxes.mp4" ]; then
            step "run on video in root (no network)" 600 --out "$OUT/device-run.jsonl" -- "${OFFLINE[@]}" sh -c \
                'exec /m/work/venv-*/bin/edge-runtime run --model /m/demo --source /m/boxes.mp4 --backend onnxruntime --precision fp32'
        else
            not_run "run on video in root (no network)" "no video"
        fi
        # COMPONENT_ENGINES (e.g. openvino, which the build adds to the wheelhouse): each engine's detections, in the
        # root and here, compared as above
        for engine in $(printf %s "${COMPONENT_ENGINES:-}" | tr ',' ' '); do
            [ "$engine" = none ] && continue
            step "detect --backend $engine (host)" 300 --out "$OUT/host-detect-$engine.json" -- \
                "$REPO/.venv/bin/edge-runtime" detect --backend "$engine" --model models/demo "${IMAGES[@]}"
            step "detect --backend $engine in root (no network)" 600 --out "$OUT/device-detect-$engine.json" -- \
                "${OFFLINE[@]}" sh -c 'exec /m/work/venv-*/bin/edge-runtime detect --backend "$0" --model /m/demo "$@"' \
                "$engine" "${IMAGES_IN[@]}"
            if step "compare $engine host vs root" 120 --out "$OUT/compare-$engine.txt" -- "$HOST_PY" \
                tests/device_os/compare_detections.py "$OUT/host-detect-$engine.json" "$OUT/device-detect-$engine.json"; then
                sed 's/^/     /' "$OUT/compare-$engine.txt"
            fi
        done
    else
        for s in "pip list in root" "detect in root (no network)" "run on video in root (no network)"; do
            not_run "$s" "install.sh failed"
        done
    fi
else
# ---- 4. inside the root ----------------------------------------------------------------------------------------
step "python in root" 300 --out "$OUT/device-python.txt" -- "${IN_ROOT[@]}" python3 -c \
    'import platform, sys; print(platform.machine(), sys.version.split()[0], platform.freedesktop_os_release().get("PRETTY_NAME"))' &&
    say "root runs: $(cat "$OUT/device-python.txt")"
if [ -s "$OUT/device-python.txt" ] && ! grep -q "^$MACHINE " "$OUT/device-python.txt"; then
    say "the root's Python runs as $(cut -d' ' -f1 "$OUT/device-python.txt"), not $MACHINE"
    FAILED=1
fi
step "venv in root" 300 -- "${IN_ROOT[@]}" python3 -m venv /opt/edge || finish
INSTALL_LIMIT=900
[ "$ARCH" = amd64 ] || INSTALL_LIMIT=1800
if step "pip install wheel[edge] in root" "$INSTALL_LIMIT" -- "${IN_ROOT[@]}" /opt/edge/bin/pip install \
    "$WHEEL_IN[edge]"; then
    step "pip list in root" 120 --out "$OUT/device-pip-list.txt" -- "${IN_ROOT[@]}" /opt/edge/bin/pip list --format=freeze
    say "installed: $(tr '\n' ' ' <"$OUT/device-pip-list.txt")"
    if grep -qi '^mxnet' "$OUT/device-pip-list.txt"; then
        say "FAILED: mxnet is installed: the edge extra must not need it"
        SUMMARY+=("$(printf '%-34s %8s    FAILED (%s)' "no mxnet in root" "-" "$(grep -i '^mxnet' "$OUT/device-pip-list.txt")")")
        FAILED=1
    else
        SUMMARY+=("$(printf '%-34s %8s    ok' "no mxnet in root" "-")")
    fi
    step "detect in root" 600 --out "$OUT/device-detect.json" -- "${IN_ROOT[@]}" /opt/edge/bin/edge-runtime detect \
        --model /m/demo "${IMAGES_IN[@]}"
    if [ -f "$ROOT/m/boxes.mp4" ]; then
        step "run on video in root" 600 --out "$OUT/device-run.jsonl" -- "${IN_ROOT[@]}" /opt/edge/bin/edge-runtime \
            run --model /m/demo --source /m/boxes.mp4 --backend onnxruntime --precision fp32
    else
        not_run "run on video in root" "no video"
    fi
else
    for s in "pip list in root" "detect in root" "run on video in root"; do not_run "$s" "pip install failed"; done
fi
fi  # MODE=device-os
# ---- 5. the comparison -------------------------------------------------------------------------------------------
if [ -s "$OUT/host-detect.json" ] && [ -s "$OUT/device-detect.json" ]; then
    compare=("$HOST_PY" tests/device_os/compare_detections.py "$OUT/host-detect.json" "$OUT/device-detect.json")
    [ -s "$OUT/host-run.jsonl" ] && [ -s "$OUT/device-run.jsonl" ] &&
        compare+=(--run "$OUT/host-run.jsonl" "$OUT/device-run.jsonl" --frames 30 --run-tolerance "$RUN_TOLERANCE")
    step "compare host vs root" 120 --out "$OUT/compare.txt" -- "${compare[@]}"
    sed 's/^/     /' "$OUT/compare.txt"
else
    not_run "compare host vs root" "missing detections: host $([ -s "$OUT/host-detect.json" ] && echo ok || echo none), root $([ -s "$OUT/device-detect.json" ] && echo ok || echo none)"
    FAILED=1
fi
finish
}
