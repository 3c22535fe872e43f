#!/usr/bin/env bash
# make test-arm64: the wheel as a 64-bit Raspberry Pi user installs and runs it, under qemu-user, compared
# with the same commands run natively on x86 with the project's .venv.
#
#   1. builds the wheel of this working tree (pip wheel, build isolation on);
#   2. makes (once, then reuses) a Debian bookworm arm64 root with debootstrap: first stage on the host,
#      second stage under qemu-aarch64-static; a marker written last says the root is complete;
#   3. in that root: a fresh venv and a plain `pip install` of the wheel (its dependencies from PyPI);
#   4. for each CPU model, a Pi 4 (cortex-a72) and a Pi 5 (cortex-a76), with the /proc/cpuinfo that Pi
#      shows: eval (all 10,000 MNIST test images), eval-photos (the shared photos), run twice (the demo
#      clip that each machine renders itself, as `edge-digits run` does without a camera; and the same
#      frames rendered once on x86 into a lossless FFV1 video, so both read identical pixels), bench (a
#      short one), outputs in out/test-arm64/<cpu>/;
#   5. the same on x86 (out/test-arm64/x86_64/), then compares: accuracy, confusion matrix and every
#      image's prediction, the eval-photos results, both runs' digit strings; exits 1 naming what differed;
#   6. prints a summary table and writes it to out/test-arm64/summary.md.
# Emulated timings are not performance: they are printed, never compared.
#
# How the emulation is set up, and why (what works in a container as root without touching the host):
#   * Everything ARM runs inside a private user + mount + pid namespace (`in_sandbox`). There a private
#     binfmt_misc instance (Linux >= 6.7) sends aarch64 programs to qemu-aarch64-static, which
#     debootstrap's second stage, ensurepip and pip need (they start programs of their own). The host's
#     binfmt_misc is never registered into, and every mount (proc, the fake /proc/cpuinfo, the data)
#     vanishes with the namespace, even when the script is killed: nothing to unmount.
#   * The measured commands are started explicitly as `qemu-aarch64-static -cpu MODEL` in a chroot,
#     with QEMU_CPU=MODEL too for anything they start. Never QEMU_CPU=max: it turns on SVE/SME kernels
#     that no Pi has; a check inside reads the emulated HWCAPs and stops if SVE or SME is on.
#   * qemu 7.2 passes the host's /proc/cpuinfo through, and XNNPACK (through the cpuinfo library) reads
#     it, with /sys/devices/system/cpu, to pick its kernels: a Pi's /proc/cpuinfo is bind-mounted over
#     the root's and a 4-core /sys/devices/system/cpu is given (the Pi 4 and Pi 5 have 4 cores).
#
# Settings (environment): ARM64_ROOT (the cached root; default ~/.cache/edge-digits/arm64-root, outside
# the tree), ARM64_OUT (default out/test-arm64), ARM64_MIRROR (default the deb.debian.org mirror apt
# uses), ARM64_CPUS (default "cortex-a72 cortex-a76"), ARM64_RUN_FRAMES (30), ARM64_BENCH_RUNS (50),
# EDGE_DIGITS_DATA (the MNIST cache, default .data), EDGE_DIGITS_PHOTOS (default ../shared/data/photos).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF=$REPO/tools/test_arm64.sh
export ARM64_ROOT=${ARM64_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/edge-digits/arm64-root}
export ARM64_OUT=${ARM64_OUT:-$REPO/out/test-arm64}
export ARM64_MIRROR=${ARM64_MIRROR:-http://deb.debian.org/debian}
export ARM64_CPUS=${ARM64_CPUS:-cortex-a72 cortex-a76}
export ARM64_RUN_FRAMES=${ARM64_RUN_FRAMES:-30}
export ARM64_BENCH_RUNS=${ARM64_BENCH_RUNS:-50}
export EDGE_DIGITS_DATA=${EDGE_DIGITS_DATA:-$REPO/.data}
export EDGE_DIGITS_PHOTOS=${EDGE_DIGITS_PHOTOS:-$REPO/../shared/data/photos}

SUITE=bookworm
PACKAGES=python3,python3-venv,ca-certificates   # pip comes with the venv (ensurepip); no compiler
QEMU=/usr/bin/qemu-aarch64-static
MARKER=.edge-digits-root-complete               # written last: a root without it is built again
VENV_IN=/opt/edge-digits                        # the venv inside the root
HOST_PY=$REPO/.venv/bin/python
CHROOT=$(command -v chroot || echo /usr/sbin/chroot)   # env -i below clears PATH
# the magic and mask of a 64-bit little-endian ARM ELF, as Debian's qemu-user-static registers it
BINFMT=':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
BINFMT+=':\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
BINFMT+=":$QEMU:F"

log() { printf '\n== %s\n' "$*"; }
die() { printf 'test-arm64: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- checks and the wheel (host)

check_host() {
  [ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot and the namespaces need it)"
  local tool
  for tool in debootstrap unshare chroot flock "$QEMU"; do
    command -v "$tool" >/dev/null || die "$tool is missing: make setup-system installs it"
  done
  [ -x "$HOST_PY" ] || die "no .venv: run make setup first"
  [ -f "$EDGE_DIGITS_DATA/t10k-images-idx3-ubyte" ] || die "no MNIST in $EDGE_DIGITS_DATA: run make data"
  [ -f "$EDGE_DIGITS_PHOTOS/truth.json" ] || die "no photos with a truth.json in $EDGE_DIGITS_PHOTOS"
  case "$ARM64_ROOT" in /?*/?*) ;; *) die "ARM64_ROOT must be an absolute path two levels deep";; esac
}

# The CPU models to run: a Pi 5's Cortex-A76 falls back to the nearest model this qemu has.
pick_cpus() {
  local known cpu
  known=$("$QEMU" -cpu help) || true   # it lists the models, then exits 1
  CPUS=()
  for cpu in $ARM64_CPUS; do
    [ "$cpu" != max ] || die "QEMU_CPU=max turns on SVE/SME kernels that no Pi has; pick a real core"
    if ! grep -qw "$cpu" <<<"$known" && [ "$cpu" = cortex-a76 ]; then
      echo "note: this qemu has no cortex-a76; the Pi 5 runs as neoverse-n1 (an A76 derivative)"
      cpu=neoverse-n1
    fi
    grep -qw "$cpu" <<<"$known" || die "qemu has no CPU model $cpu (qemu-aarch64-static -cpu help)"
    CPUS+=("$cpu")
  done
}

# One test-arm64 at a time per root (they would build or use the same root).
take_lock() {
  mkdir -p "$(dirname "$ARM64_ROOT")"
  exec 9>"$ARM64_ROOT.lock"
  flock -n 9 || die "another test-arm64 is using $ARM64_ROOT"
}

# The wheel from this working tree; a stale build/lib would leak removed modules into it, so it goes
# before (and after) the build. Only build/lib and build/bdist.*: other things live in build/ too.
build_wheel() {
  log "building the wheel"
  rm -rf "$REPO/build/lib" "$REPO"/build/bdist.* "$ARM64_OUT/wheel"
  (cd "$REPO" && "$REPO/.venv/bin/pip" wheel --quiet --no-deps -w "$ARM64_OUT/wheel" .)
  rm -rf "$REPO/build/lib" "$REPO"/build/bdist.*
  rmdir "$REPO/build" 2>/dev/null || true
  WHEEL=$(ls "$ARM64_OUT"/wheel/edge_digits-*.whl)
  echo "$WHEEL"
}

# ---------------------------------------------------------------- the arm64 root

root_wanted() { printf 'suite=%s\npackages=%s\nmirror=%s\n' "$SUITE" "$PACKAGES" "$ARM64_MIRROR"; }

root_complete() { [ -f "$ARM64_ROOT/$MARKER" ] && [ "$(cat "$ARM64_ROOT/$MARKER")" = "$(root_wanted)" ]; }

# debootstrap's first stage runs on the host (it creates the device nodes, which needs the real root).
first_stage() {
  if root_complete; then log "reusing the arm64 root $ARM64_ROOT"; return; fi
  log "creating the arm64 root $ARM64_ROOT (debootstrap, a few minutes once)"
  if grep -q " ${ARM64_ROOT}[/ ]" /proc/self/mountinfo; then die "something is mounted under $ARM64_ROOT"; fi
  rm -rf "$ARM64_ROOT"
  debootstrap --arch=arm64 --foreign --variant=minbase --include="$PACKAGES" \
    "$SUITE" "$ARM64_ROOT" "$ARM64_MIRROR" > "$ARM64_OUT/debootstrap-1.log" 2>&1 \
    || die "debootstrap first stage failed: see $ARM64_OUT/debootstrap-1.log"
}

# The second stage configures the packages under emulation (in the sandbox). container=lxc tells
# debootstrap not to mknod (not allowed in a user namespace; the first stage made the nodes).
second_stage() {
  root_complete && return
  log "debootstrap second stage under qemu"
  container=lxc chroot "$ARM64_ROOT" /debootstrap/debootstrap --second-stage \
    > "$ARM64_OUT/debootstrap-2.log" 2>&1 || die "second stage failed: see $ARM64_OUT/debootstrap-2.log"
  root_wanted > "$ARM64_ROOT/$MARKER"
}

# ---------------------------------------------------------------- the sandbox

# Runs "$@" in a new user, mount and pid namespace in which uid/gid 0..2^32-2 are themselves (so the
# root stays root and dpkg can chown), able to mount and to register binfmt_misc privately. The map is
# written from outside; the inner shell waits for it, then execs (an exec under the map regains the caps).
in_sandbox() {
  unshare --user --mount --pid --fork --kill-child -- \
    bash -c 'until grep -q . /proc/self/uid_map; do sleep 0.05; done; exec "$@"' sandbox "$@" &
  local pid=$!
  until [ "$(readlink "/proc/$pid/ns/user")" != "$(readlink /proc/self/ns/user)" ]; do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" || true; die "unshare could not make a user namespace"; }
    sleep 0.02
  done
  echo "0 0 4294967295" > "/proc/$pid/uid_map"
  echo "0 0 4294967295" > "/proc/$pid/gid_map"
  wait "$pid"
}

# Inside the sandbox: aarch64 programs run by qemu, for this namespace only.
register_binfmt() {
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null \
    || die "cannot mount a private binfmt_misc (needs Linux >= 6.7; this is $(uname -r))"
  printf '%s' "$BINFMT" > /proc/sys/fs/binfmt_misc/register   # the kernel decodes the \x escapes
  grep -q "^magic 7f454c460201010000000000000000000200b700$" /proc/sys/fs/binfmt_misc/qemu-aarch64 \
    || die "the binfmt_misc entry for aarch64 did not register as meant"
}

# Inside the sandbox: proc, a 4-core /sys/devices/system/cpu, the data (read-only) and the outputs.
mount_root() {
  local sys=$ARM64_OUT/fake-sys/devices/system/cpu
  mkdir -p "$sys"/cpu{0,1,2,3} "$ARM64_ROOT"/data/{mnist,photos} "$ARM64_ROOT/out"
  for f in possible present online; do echo 0-3 > "$sys/$f"; done
  echo 3 > "$sys/kernel_max"
  mount -t proc proc "$ARM64_ROOT/proc"
  mount --bind "$ARM64_OUT/fake-sys" "$ARM64_ROOT/sys"
  mount --bind -o ro "$EDGE_DIGITS_DATA" "$ARM64_ROOT/data/mnist"
  mount --bind -o ro "$EDGE_DIGITS_PHOTOS" "$ARM64_ROOT/data/photos"
  mount --bind "$ARM64_OUT" "$ARM64_ROOT/out"
}

# A clean environment in the root, as on a Pi: none of the host's PIP_* settings or local indexes.
arm_env() {
  env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 QEMU_CPU="$1" \
    EDGE_DIGITS_DATA=/data/mnist EDGE_DIGITS_PHOTOS=/data/photos \
    ${https_proxy:+https_proxy=$https_proxy} ${no_proxy:+no_proxy=$no_proxy} "${@:2}"
}

# A fresh venv and a plain pip install of the wheel. The root trusts what the host trusts (the host may
# reach PyPI through a TLS-inspecting proxy whose CA is only in the host's bundle).
install_wheel() {
  log "venv and pip install of the wheel in the root (pip reaches PyPI)"
  cp /etc/ssl/certs/ca-certificates.crt "$ARM64_ROOT/etc/ssl/certs/ca-certificates.crt"
  cp "$QEMU" "$ARM64_ROOT$QEMU"
  rm -rf "$ARM64_ROOT$VENV_IN" "$ARM64_ROOT/tmp/wheel" && mkdir -p "$ARM64_ROOT/tmp/wheel"
  cp "$WHEEL" "$ARM64_ROOT/tmp/wheel/"
  local t0=$SECONDS
  arm_env "${CPUS[0]}" "$CHROOT" "$ARM64_ROOT" /bin/sh -c \
    "python3 -m venv $VENV_IN && $VENV_IN/bin/pip install /tmp/wheel/$(basename "$WHEEL")" \
    > "$ARM64_OUT/pip-install.log" 2>&1 || die "pip install in the root failed: see $ARM64_OUT/pip-install.log"
  ! grep -q "Building wheel" "$ARM64_OUT/pip-install.log" || echo "note: pip compiled something (see pip-install.log)"
  tail -1 "$ARM64_OUT/pip-install.log"
  echo "venv and pip install: $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------- the Pis' /proc/cpuinfo

# cpuinfo_file MODEL FEATURES VARIANT PART REVISION HARDWARE BOARD-REVISION MODEL-LINE
cpuinfo_file() {
  local i
  for i in 0 1 2 3; do
    printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\n' "$i" "$2"
    printf 'CPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' "$3" "$4" "$5"
  done
  printf 'Hardware\t: %s\nRevision\t: %s\nSerial\t\t: 10000000%s\nModel\t\t: %s\n' "$6" "$7" "${1: -8}" "$8"
}

# What a Pi 4 (BCM2711, Cortex-A72 r0p3) and a Pi 5 (BCM2712, Cortex-A76 r4p1) show; the serial numbers
# are made up. qemu's HWCAPs are its own: its cortex-a72 adds aes/pmull/sha1/sha2 (the BCM2711 has no
# crypto extension), neither model has evtstrm; hwcap.txt records what the programs saw.
pi_cpuinfo() {
  case "$1" in
    cortex-a72) cpuinfo_file 0000a72a "fp asimd evtstrm crc32 cpuid" 0x0 0xd08 3 BCM2835 c03114 \
                  "Raspberry Pi 4 Model B Rev 1.4";;
    *) cpuinfo_file 0000a76a "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" \
         0x4 0xd0b 1 BCM2712 c04170 "Raspberry Pi 5 Model B Rev 1.0";;
  esac
}

# ---------------------------------------------------------------- the commands, on either machine

# eval through the CLI's own entry point, with Classifier.predict_raw wrapped to keep every image's
# int8 scores (eval prints accuracy and the confusion matrix but no per-image predictions).
EVAL_PY=$(cat <<'EOF'
import sys
import numpy as np
from edge_digits.cli import main
from edge_digits.runtime.classifier import Classifier
kept, predict_raw = [], Classifier.predict_raw
def keep(self, images):
    kept.append(predict_raw(self, images))
    return kept[-1]
Classifier.predict_raw = keep
try:
    main(["eval", "standard", "--json"], prog_name="edge-digits")
finally:
    np.save(sys.argv[1], np.concatenate(kept) if kept else np.zeros((0, 10), np.int8))
EOF
)

# The CPU as the emulated program sees it: qemu's HWCAPs and the Model line of /proc/cpuinfo.
HWCAP_PY=$(cat <<'EOF'
import struct, sys
names = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc "
         "dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg").split()
aux = dict(struct.iter_unpack("<QQ", open("/proc/self/auxv", "rb").read()))
hw, hw2 = aux.get(16, 0), aux.get(26, 0)
have = [n for i, n in enumerate(names) if hw >> i & 1]
model = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("Model")]
print("qemu HWCAP:", " ".join(have), "| HWCAP2: %#x" % hw2, "| /proc/cpuinfo:", model[0] if model else "?")
bad = (["sve"] if "sve" in have else []) + (["sve2"] if hw2 >> 1 & 1 else []) + (["sme"] if hw2 >> 23 & 1 else [])
sys.exit(f"this CPU model has {bad}, which no Raspberry Pi has" if bad else 0)
EOF
)

# The demo clip's first frames as a lossless video (FFV1), rendered once on x86: input identical to the bit.
CLIP_PY=$(cat <<'EOF'
import sys

import cv2

from edge_digits.vision.demo import DemoClip
clip, count = DemoClip(), int(sys.argv[2])
video = cv2.VideoWriter(sys.argv[1], cv2.VideoWriter_fourcc(*"FFV1"), 10.0, clip.size)
if not video.isOpened():
    sys.exit(f"OpenCV cannot write FFV1 to {sys.argv[1]}")
for i in range(count):
    video.write(clip.frame(i))
video.release()
EOF
)

# The frames a machine decodes from that video, as a count and a SHA-256 (they must be equal everywhere).
DECODE_PY=$(cat <<'EOF'
import hashlib
import sys

import cv2

video, digest, count = cv2.VideoCapture(sys.argv[1]), hashlib.sha256(), 0
while True:
    ok, frame = video.read()
    if not ok:
        break
    digest.update(frame.tobytes())
    count += 1
print(count, digest.hexdigest())
EOF
)

# step DIR NAME STDOUT-FILE COMMAND...: runs it, stderr to NAME.log, seconds to times.tsv.
step() {
  local dir=$1 name=$2 out=$3 t0 ms; shift 3
  t0=$(date +%s%N)
  "$@" > "$dir/$out" 2> "$dir/$name.log" || { tail -20 "$dir/$name.log" >&2; die "$name failed in $dir"; }
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  printf '%s\t%d.%d\n' "$name" $((ms / 1000)) $((ms % 1000 / 100)) | tee -a "$dir/times.tsv"
}

# suite DIR PROGDIR PHOTOS EDGE-DIGITS PYTHON...: the commands. DIR is on the host, PROGDIR and PHOTOS
# as the program sees them, EDGE-DIGITS the console script, PYTHON... what starts the right Python; the
# video is clip.avi beside PROGDIR.
suite() {
  local dir=$1 pdir=$2 photos=$3 ed=$4; shift 4
  step "$dir" eval eval.json "$@" -c "$EVAL_PY" "$pdir/predictions.npy"
  step "$dir" eval-photos photos.json "$@" "$ed" eval-photos "$photos" --json
  step "$dir" run run.jsonl "$@" "$ed" run --json --max-frames "$ARM64_RUN_FRAMES"
  step "$dir" decode decode.txt "$@" -c "$DECODE_PY" "$pdir/../clip.avi"
  step "$dir" run-video run-video.jsonl "$@" "$ed" run --json --video "$pdir/../clip.avi"
  step "$dir" bench bench.txt "$@" "$ed" bench --model standard --threads 1 --batch 1 --warmup 5 \
    --runs "$ARM64_BENCH_RUNS" --out "$pdir/bench"
}

native_suite() {
  log "x86_64: the same commands with .venv"
  local dir=$ARM64_OUT/x86_64
  rm -rf "$dir" "$ARM64_OUT/clip.avi" && mkdir -p "$dir"
  "$HOST_PY" -c "$CLIP_PY" "$ARM64_OUT/clip.avi" "$ARM64_RUN_FRAMES" || die "could not write the FFV1 clip"
  suite "$dir" "$dir" "$EDGE_DIGITS_PHOTOS" "$REPO/.venv/bin/edge-digits" "$HOST_PY"
}

# arm_suite CPU: the four commands under qemu -cpu CPU, with that Pi's /proc/cpuinfo.
arm_suite() {
  local cpu=$1 dir=$ARM64_OUT/$1
  log "$cpu under qemu-user (emulated timings are not performance)"
  rm -rf "$dir" && mkdir -p "$dir"
  pi_cpuinfo "$cpu" > "$dir/cpuinfo"
  umount "$ARM64_ROOT/proc/cpuinfo" 2>/dev/null || true   # the previous CPU's
  mount --bind "$dir/cpuinfo" "$ARM64_ROOT/proc/cpuinfo"
  local -a py=(arm_env "$cpu" "$CHROOT" "$ARM64_ROOT" "$QEMU" -cpu "$cpu" "$VENV_IN/bin/python")
  "${py[@]}" -c "$HWCAP_PY" | tee "$dir/hwcap.txt" || die "$cpu: $(tail -1 "$dir/hwcap.txt")"
  suite "$dir" "/out/$cpu" /data/photos "$VENV_IN/bin/edge-digits" "${py[@]}"
}

# The ARM half, run by in_sandbox: the root finished, the wheel installed, each CPU model.
inside() {
  trap 'exit 130' INT TERM   # as pid 1 of its namespace this shell ignores signals it does not trap
  register_binfmt
  second_stage
  mount_root
  install_wheel
  local cpu
  for cpu in "${CPUS[@]}"; do arm_suite "$cpu"; done
}

# ---------------------------------------------------------------- comparison and summary

# Compares each CPU's outputs with x86's, prints what differed, writes summary.md; exit 1 on a difference.
COMPARE_PY=$(cat <<'EOF'
import json
import sys
from pathlib import Path

import numpy as np

out, cpus = Path(sys.argv[1]), sys.argv[2:]


def load(d):
    photos = json.loads((d / "photos.json").read_text())
    photos.pop("folder")   # the only field that names where the photos were
    def jsonl(name):
        return [json.loads(line) for line in (d / name).read_text().splitlines()]
    return {"eval": json.loads((d / "eval.json").read_text()), "raw": np.load(d / "predictions.npy"),
            "photos": photos, "run": jsonl("run.jsonl"), "run-video": jsonl("run-video.jsonl"),
            "decode": (d / "decode.txt").read_text().split(),
            "bench": json.loads((d / "bench" / "bench.json").read_text())}


def run_differences(arm, x86, what):
    """The run's strings (each frame's and the settled ones) must be equal; moved boxes and scores are noted."""
    strings = [[(f["lines"], f.get("stable_lines")) for f in r] for r in (arm, x86)]
    if strings[0] != strings[1]:
        frames = [i for i, (p, q) in enumerate(zip(*strings)) if p != q]
        example = f"; frame {frames[0]}: {strings[0][frames[0]]} on ARM, {strings[1][frames[0]]} on x86" \
            if frames else ""
        return [f"{what}: digit strings differ in {len(frames)} of {len(x86)} frames "
                f"({len(arm)} frames on ARM){example}"], []
    pairs = [(p, q) for f, g in zip(arm, x86) for p, q in zip(f["digits"], g["digits"])]
    boxes = sum(p["box"] != q["box"] for p, q in pairs)
    scores = sum((p["confidence"], p.get("p_digit")) != (q["confidence"], q.get("p_digit")) for p, q in pairs)
    if boxes or scores:
        return [], [f"{what}: the same strings; of {len(pairs)} digits read, {boxes} boxes and {scores} "
                    "confidences (digit or rejection model) differ"]
    return [], []


def differences(arm, x86):
    """(what differs, notes): predictions, photos and strings must be equal; scores and versions are noted."""
    bad, notes = [], []
    for key in ("count", "accuracy", "per_class_accuracy", "confusion"):
        if arm["eval"][key] != x86["eval"][key]:
            bad.append(f"eval {key}: {arm['eval'][key]} on ARM, {x86['eval'][key]} on x86")
    a, x = arm["raw"], x86["raw"]
    if a.shape != x.shape:
        bad.append(f"eval predictions: shape {a.shape} on ARM, {x.shape} on x86")
    else:
        wrong = np.flatnonzero(a.argmax(1) != x.argmax(1))
        if len(wrong):
            bad.append(f"eval predictions differ on {len(wrong)} images (first {wrong[:10].tolist()})")
        moved = np.flatnonzero((a != x).any(1))
        if len(moved):
            steps = int(np.abs(a.astype(int) - x.astype(int)).max())
            notes.append(f"int8 scores differ on {len(moved)} images (by at most {steps} quantization "
                         f"step{'s' * (steps > 1)}){'' if len(wrong) else ', their predictions do not'}")
    if arm["photos"] != x86["photos"]:
        sheets = [p["image"] for p, q in zip(arm["photos"]["sheets"], x86["photos"]["sheets"]) if p != q]
        bad.append(f"eval-photos results differ (sheets: {', '.join(sheets) or 'none, the totals'})")
    if arm["decode"] != x86["decode"]:
        bad.append(f"the FFV1 clip decodes differently: {arm['decode']} on ARM, {x86['decode']} on x86")
    for key, what in (("run", "run (the demo clip, rendered on each machine)"),
                      ("run-video", "run --video (the same frames, rendered on x86)")):
        more_bad, more_notes = run_differences(arm[key], x86[key], what)
        bad, notes = bad + more_bad, notes + more_notes
    ab, xb = arm["bench"]["results"][0], x86["bench"]["results"][0]
    if ab["accuracy"] != xb["accuracy"]:
        bad.append(f"bench accuracy {ab['accuracy']} on ARM, {xb['accuracy']} on x86")
    if (ab["backend_used"], ab["delegate"]) != (xb["backend_used"], xb["delegate"]):
        notes.append(f"backend {ab['backend_used']}/{ab['delegate']} on ARM, "
                     f"{xb['backend_used']}/{xb['delegate']} on x86")
    av, xv = arm["bench"]["system"]["versions"], x86["bench"]["system"]["versions"]
    notes += [f"{k} {av[k]} on ARM, {v} on x86" for k, v in xv.items() if k in av and av[k] != v]
    return bad, notes


def seconds(name):
    return sum(float(line.split("\t")[1]) for line in (out / name / "times.tsv").read_text().splitlines())


def photos(p):
    return f"{p['digit_accuracy']:.2%} of digits, {p['lines_exact']}/{p['lines']} lines exact"


x86 = load(out / "x86_64")
xb = x86["bench"]["results"][0]
def equal_strings(arm, x86):
    return "yes" if [f["lines"] for f in arm] == [f["lines"] for f in x86] else "NO"


table = ["| cpu | eval accuracy | eval-photos | run strings equal to x86: demo / same frames | checks against x86 "
         "| bench images/s | wall s |", "| --- | --- | --- | --- | --- | --- | --- |",
         f"| x86_64 (native, .venv) | {x86['eval']['accuracy']:.2%} | {photos(x86['photos'])} | - | - "
         f"| {xb['throughput_ips']:,.0f} | {seconds('x86_64'):.0f} |"]
failed, said = False, []
for cpu in cpus:
    arm = load(out / cpu)
    bad, notes = differences(arm, x86)
    said += [f"DIFFERENT on {cpu}: {line}" for line in bad] + [f"note on {cpu}: {line}" for line in notes]
    failed |= bool(bad)
    table.append(f"| {cpu} (qemu-user) | {arm['eval']['accuracy']:.2%} | {photos(arm['photos'])} "
                 f"| {equal_strings(arm['run'], x86['run'])} / {equal_strings(arm['run-video'], x86['run-video'])} "
                 f"| {'DIFFERENT' if bad else 'passed'} "
                 f"| {arm['bench']['results'][0]['throughput_ips']:,.0f} (emulated, not performance) "
                 f"| {seconds(cpu):.0f} |")
text = ("\n".join(table) + f"\n\nrun: the demo clip, {len(x86['run'])} frames, rendered by each machine; "
        f"same frames: those frames rendered on x86, read from a lossless video ({x86['decode'][0]} frames). "
        "Emulated timings (qemu-user on x86) are not performance.\n\n" + "".join(f"- {s}\n" for s in said))
(out / "summary.md").write_text(text)
print("\n" + text)
sys.exit(1 if failed else 0)
EOF
)

compare() {
  log "comparing with x86"
  "$HOST_PY" -c "$COMPARE_PY" "$ARM64_OUT" "${CPUS[@]}" || die "ARM and x86 outputs differ (see above)"
  echo "ARM and x86 agree: same predictions, photo results and digit strings"
}

main() {
  local t0=$SECONDS
  check_host
  pick_cpus
  mkdir -p "$ARM64_OUT"
  ARM64_OUT=$(cd "$ARM64_OUT" && pwd)
  EDGE_DIGITS_PHOTOS=$(cd "$EDGE_DIGITS_PHOTOS" && pwd)
  take_lock
  build_wheel
  first_stage
  native_suite
  export WHEEL ARM64_CPU_LIST="${CPUS[*]}"
  in_sandbox bash "$SELF" --inside
  compare
  echo "out: $ARM64_OUT (summary.md); whole run $((SECONDS - t0)) s"
}

if [ "${1:-}" = --inside ]; then
  read -ra CPUS <<<"$ARM64_CPU_LIST"
  inside
else
  main "$@"
fi
