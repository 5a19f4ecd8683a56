#!/usr/bin/env bash
# Issue 14's prepared GPU check for a CUDA machine WITHOUT TensorRT (torch+CUDA, Triton, CuPy, cuda-bindings):
# streams/events, the pinned ring and device pool, DLPack round trips with torch and CuPy, the chain's crop and
# letterbox graphs evaluated on the GPU, the Triton CRF kernel against its references and its speed.
# One PASS/FAIL/SKIP line per check; the lines also go to $OUT/gpu_check.log when $OUT is set; < 5 minutes.
# Usage: scripts/gpu_check.sh [--only WORD ...]      (PYTHON=... to choose the interpreter)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
{
  echo "== $(date -u +%FT%TZ) $(hostname)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || echo "nvidia-smi: none"
  "$PY" - <<'PYEOF'
import importlib, sys
print("python", sys.version.split()[0])
for m in ("numpy", "torch", "triton", "cupy", "cuda.bindings", "onnx", "cv2", "onnxruntime", "tensorrt"):
    try:
        mod = importlib.import_module(m)
        print(f"  {m} {getattr(mod, '__version__', '?')}")
    except Exception as e:  # noqa: BLE001
        print(f"  {m}: not importable ({type(e).__name__})")
PYEOF
} 2>&1 | tee ${OUT:+"$OUT/gpu_check_env.txt"}
timeout 290 "$PY" scripts/gpu_check.py "$@"
rc=$?
[ "$rc" -eq 124 ] && echo "gpu_check: timed out after 290 s"
exit "$rc"
