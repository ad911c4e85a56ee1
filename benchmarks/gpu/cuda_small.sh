#!/usr/bin/env bash
# The prepared device check: `small` training steps on an NVIDIA GPU through
# Candle's CUDA backend. Records samples/s and GPU memory, and checks that the first losses
# on the GPU agree with the CPU's (the CUDA path takes the composed ops; the CPU takes
# the fused kernels, so they agree to float tolerance, not bit for bit).
#
# Build the binary where nvcc is (BENCHMARKS.md, "The CUDA path"). It loads the CUDA
# libraries at run time (no link-time dependency on them); CUDARC_CUDA_VERSION names the
# CUDA version of the machine it will run on (13.0 on the lent H200s):
#   CUDA_COMPUTE_CAP=80 CUDARC_CUDA_VERSION=13000 cargo build --release --features cuda
#   mkdir -p .gpu && strip -o .gpu/physworld target/release/physworld && xz -9 .gpu/physworld  # 79 MB -> 12 MB
#   cp -L $CUDA_LIB_DIR/libcudart.so.11.0 .gpu/   # candle-kernels links the build's CUDA runtime
# (.gpu is git-ignored; a device call carries it: 64 MiB at most.) Run on the GPU machine,
# in the repository root:
#   PHYSWORLD_BIN=.gpu/physworld.xz OUT=$OUT bash benchmarks/gpu/cuda_small.sh
# Check the script itself on a CPU (no GPU needed):
#   DEVICE=cpu STEPS=4 COMPARE_STEPS=2 EPISODES=40 bash benchmarks/gpu/cuda_small.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN="${PHYSWORLD_BIN:-target/release/physworld}"
DEVICE="${DEVICE:-cuda:0}"
OUT="${OUT:-/tmp/physworld-gpu}"
WORK="${WORK:-/tmp/physworld-gpu-work}"
STEPS="${STEPS:-300}"            # timed run
COMPARE_STEPS="${COMPARE_STEPS:-5}"  # GPU vs CPU losses
EPISODES="${EPISODES:-1000}"     # train samples of the properties suite
mkdir -p "$OUT" "$WORK"
rm -rf "$WORK/data" "$WORK"/run-*

# A compressed binary is unpacked with Python's lzma (xz may be missing there); the
# libraries carried beside it (the CUDA runtime it was linked with) come first.
case "$BIN" in
    *.xz)
        python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$BIN" "$WORK/physworld"
        chmod +x "$WORK/physworld"
        export LD_LIBRARY_PATH="$(cd "$(dirname "$BIN")" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        BIN="$WORK/physworld"
        ;;
esac

# Where the driver, cuBLAS(Lt) and cuRAND are: the driver's and the toolkit's folders, and
# the NVIDIA wheels beside PyTorch, those that exist, ahead of LD_LIBRARY_PATH.
LIBDIRS=$(python3 - <<'PY' 2>/dev/null || true
import glob, os, site, sys
roots = ["/usr/local/nvidia/lib64", "/usr/local/nvidia/lib", "/usr/local/cuda/lib64"]
for sp in site.getsitepackages() + [site.getusersitepackages()]:
    for f in glob.glob(os.path.join(sp, "nvidia", "**", "lib*.so*"), recursive=True):
        if any(n in os.path.basename(f) for n in ("cublas", "curand", "nvrtc")):
            roots.append(os.path.dirname(f))
seen = []
for r in roots:
    if os.path.isdir(r) and r not in seen:
        seen.append(r)
print(":".join(seen))
PY
)
if [ -n "$LIBDIRS" ]; then export LD_LIBRARY_PATH="$LIBDIRS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; fi
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}" | tee "$OUT/libs.txt"
(ldconfig -p 2>/dev/null | grep -E 'libcuda\.so|libcublas|libcurand|libnvrtc' || true) >> "$OUT/libs.txt"

"$BIN" --version | tee "$OUT/version.txt"
if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.csv"
fi

echo "== data: properties suite, $EPISODES train samples"
# The suite's 3 000-sample test split is not read here: 300 keep the check short.
sed 's/^test = .*/test = 300/' datasets/properties.toml > "$WORK/properties.toml"
"$BIN" generate --suite "$WORK/properties.toml" --out "$WORK/data" --episodes "$EPISODES" --json > "$OUT/generate.json"

echo "== GPU vs CPU: the first $COMPARE_STEPS losses"
"$BIN" train --data "$WORK/data" --out "$WORK/run-compare-dev" --preset small --device "$DEVICE" --steps "$COMPARE_STEPS" --json > "$OUT/compare_device.json"
"$BIN" train --data "$WORK/data" --out "$WORK/run-compare-cpu" --preset small --device cpu --steps "$COMPARE_STEPS" --json > "$OUT/compare_cpu.json"
cp "$WORK/run-compare-dev/metrics.jsonl" "$OUT/compare_device.jsonl"
cp "$WORK/run-compare-cpu/metrics.jsonl" "$OUT/compare_cpu.jsonl"

echo "== timed: $STEPS small steps on $DEVICE"
MON=""
if command -v nvidia-smi > /dev/null; then
    (while true; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits; sleep 0.2; done) > "$OUT/memory_mib.txt" 2>/dev/null &
    MON=$!
fi
TIME=()
if [ -x /usr/bin/time ]; then TIME=(/usr/bin/time -v); fi
"${TIME[@]}" "$BIN" train --data "$WORK/data" --out "$WORK/run-timed" --preset small --device "$DEVICE" --steps "$STEPS" --json \
    > "$OUT/train.json" 2> "$OUT/train_time.txt" || { cat "$OUT/train_time.txt"; exit 1; }
if [ -n "$MON" ]; then kill "$MON"; fi
cp "$WORK/run-timed/metrics.jsonl" "$OUT/metrics.jsonl"

python3 - "$OUT" "$DEVICE" <<'PY' | tee "$OUT/summary.json"
import json, statistics, sys, pathlib
out, device = pathlib.Path(sys.argv[1]), sys.argv[2]
rows = lambda name: [json.loads(l) for l in (out / name).read_text().splitlines() if l.strip()]
timed = rows("metrics.jsonl")
# Steps after the first 10 (warm-up: kernel loading, allocator growth), evaluation steps aside.
rates = [r["samples_per_s"] for r in timed[10:] if r.get("eval") is None] or [r["samples_per_s"] for r in timed]
dev, cpu = rows("compare_device.jsonl"), rows("compare_cpu.jsonl")
rel = [abs(a["loss"] - b["loss"]) / max(abs(b["loss"]), 1e-12) for a, b in zip(dev, cpu)]
mem = out / "memory_mib.txt"
used = [int(x) for x in mem.read_text().split()] if mem.exists() else []
rss = [l for l in (out / "train_time.txt").read_text(errors="replace").splitlines() if "Maximum resident" in l]
print(json.dumps({
    "device": device,
    "steps": len(timed),
    "samples_per_s_median": statistics.median(rates),
    "samples_per_s_p10_p90": [sorted(rates)[len(rates) // 10], sorted(rates)[(9 * len(rates)) // 10]],
    "gpu_memory_peak_mib": max(used) if used else None,
    "host_max_rss_kb": int(rss[0].split()[-1]) if rss else None,
    "loss_device_vs_cpu_max_rel_diff": max(rel) if rel else None,
    "losses_device": [r["loss"] for r in dev],
    "losses_cpu": [r["loss"] for r in cpu],
}, indent=2))
PY
