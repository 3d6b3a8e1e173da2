#!/usr/bin/env bash
# The one-script GPU device run (issue #16): build steer-train with ggml's CUDA backend from the
# patched llama.cpp source in bench/device/kit/ (made here by `npx tsx bench/device/prepare.ts`),
# then bench/device/kit.py generates the benchmark models from a shape and a seed and runs the
# gradient check, the learning task, steer-train's throughput, llama-finetune and PyTorch + PEFT
# LoRA on the same shapes, writing $OUT/device-bench.json and $OUT/device-bench.md.
#
# Needs: bash, cmake, ninja (or make), a C++ compiler, python3 with numpy (+ torch, transformers,
# peft for the PEFT baseline); with CUDA, nvcc. No Node.js, no network.
#
#   bash bench/device/run.sh                  # the device: CUDA build for sm_90, the real shapes
#   bash bench/device/run.sh --cpu            # a dry run anywhere: CPU build, tiny shapes
#   options: --work DIR (builds, models; kept between runs, default /tmp/steer-kit or
#            bench/device/.work with --cpu) --out DIR (default $OUT, else WORK/out)
#            --budget SECONDS (default 450: later steps are skipped, not killed mid-way, once
#            it is spent) --jobs N --arch 90 --python PY; anything after -- goes to kit.py
#            --prebuilt DIR: skip the build and use a product build of the trainer (the folder
#            `npm run build:trainer -- --finetune` writes under <cache>/trainer/: steer-train,
#            llama-finetune, build-info.json) -- a quick dry run of the measurements only
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
mode=cuda
work=""
out="${OUT:-}"
budget=450
jobs="$(nproc)"
arch=90
py="${PYTHON:-python3}"
prebuilt=""
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) mode=cpu ;;
    --work) work="$2"; shift ;;
    --out) out="$2"; shift ;;
    --budget) budget="$2"; shift ;;
    --jobs) jobs="$2"; shift ;;
    --arch) arch="$2"; shift ;;
    --python) py="$2"; shift ;;
    --prebuilt) prebuilt="$2"; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "unknown option $1 (see the head of $0)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$work" ]; then
  if [ "$mode" = cpu ]; then work="$root/bench/device/.work"; else work=/tmp/steer-kit; fi
fi
[ -n "$out" ] || out="$work/out"
mkdir -p "$work" "$out"
t0=$SECONDS
log="$out/device-run.log"
say() { echo "[kit $((SECONDS - t0))s] $*" | tee -a "$log"; }
: >"$log"

kit="$root/bench/device/kit"
if [ ! -f "$kit/llama-src.tar.gz" ] || [ ! -f "$kit/manifest.json" ]; then
  say "no kit in $kit: run 'npx tsx bench/device/prepare.ts' on the Node side first"; exit 2
fi
say "mode $mode, work $work, out $out, budget ${budget}s, $jobs jobs"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"; \
  command -v nvcc >/dev/null && nvcc --version | tail -2; cmake --version | head -1; "$py" --version; } 2>&1 | tee -a "$log"

# ---- source: the patched tree, unpacked once per tarball ---------------------------------------
src="$work/llama.cpp"
stamp="$(cksum <"$kit/llama-src.tar.gz" | cut -d' ' -f1)"
if [ "$(cat "$work/src-stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$src"
  tar -xzf "$kit/llama-src.tar.gz" -C "$work" || { say "cannot unpack the kit"; exit 1; }
  echo "$stamp" >"$work/src-stamp"
fi

# ---- build: ggml (CUDA for sm_$arch, or CPU), libllama with llama-steer/, llama-common,
#      llama-finetune in one upstream build; then steer-train linking that libllama -----------------
tb=$SECONDS
build_ok=1
if [ -n "$prebuilt" ]; then
  lib="$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["ggmlLibDir"])' "$prebuilt/build-info.json")" || exit 2
  trainer="$prebuilt/steer-train"; finetune="$prebuilt/llama-finetune"
  say "using the prebuilt trainer in $prebuilt (ggml from $lib): no build"
else
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
bdir="$work/build-$mode"
flags=(-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=ON -DGGML_CCACHE=OFF
  -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF
  -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_IS_DEV=OFF)
if [ "$mode" = cuda ]; then
  # one architecture only (the H200: sm_90); no FlashAttention kernels (training disables it: no
  # backward pass), no NCCL: this is most of ggml-cuda's compile time
  flags+=(-DGGML_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=$arch" -DGGML_CUDA_FA=OFF -DGGML_CUDA_NCCL=OFF)
else
  # the dry run: graph building and ggml-cpu at -O1 (compile time on small machines)
  flags+=(-DGGML_CUDA=OFF "-DCMAKE_C_FLAGS_RELEASE=-O1 -DNDEBUG" "-DCMAKE_CXX_FLAGS_RELEASE=-O1 -DNDEBUG")
fi
say "building llama.cpp ($mode) ..."
if ! cmake -S "$src" -B "$bdir" "${gen[@]}" "${flags[@]}" >>"$log" 2>&1 ||
   ! cmake --build "$bdir" -j "$jobs" --target llama-common llama-finetune >>"$log" 2>&1; then
  say "llama.cpp build FAILED (tail of $log):"; tail -30 "$log"; build_ok=0
fi
lib="$bdir/bin"
tdir="$work/build-trainer-$mode"
if [ $build_ok = 1 ]; then
  say "building steer-train ..."
  if ! cmake -S "$root/native/trainer" -B "$tdir" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DSTEER_LINK_LLAMA=ON \
        "-DLLAMA_SRC=$src" "-DGGML_LIB_DIR=$lib" -DLLAMA_SONAME=libllama.so >>"$log" 2>&1 ||
     ! cmake --build "$tdir" -j "$jobs" --target steer-train >>"$log" 2>&1; then
    say "steer-train build FAILED (tail of $log):"; tail -30 "$log"; build_ok=0
  fi
fi
trainer="$tdir/steer-train"; finetune="$lib/llama-finetune"
fi
build_s=$((SECONDS - tb))
say "build done in ${build_s}s (ok=$build_ok)"

# ---- the measurements ----------------------------------------------------------------------------
left=$((budget - (SECONDS - t0)))
PYTHONUNBUFFERED=1 "$py" "$here/kit.py" --mode "$mode" --work "$work" --out "$out" --kit "$kit" \
  --src "$src" --lib "$lib" --trainer "$trainer" --finetune "$finetune" \
  --build-ok "$build_ok" --build-seconds "$build_s" --budget "$left" "${extra[@]}" 2>&1 | tee -a "$log"
rc=${PIPESTATUS[0]}
say "done (exit $rc); results in $out"
exit "$rc"
