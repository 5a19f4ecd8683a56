#!/usr/bin/env bash
# Every number the README reports for a real-footage pose model (issue 16), in one command:
#   scripts/eval_real_pose.sh MODEL.onnx OUT_DIR [--int8]
# held-out synthetic accuracy and side report (mca.evaluate, seed 2000), agreement with both teachers on held-out
# real people (plain and flip test), the drawing-threshold sweep (--kpt-thr), and with --int8 the same agreement
# and synthetic accuracy of its Q/DQ INT8 file (calibration: 300 synthetic scenes + vtest.avi frames through
# SSDLite; only activation ranges are taken from these frames, no labels).
# Needs data/pseudo from tools/pseudo_label.py. Runs on 1 thread; about 15 min here (30 with --int8).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
MODEL=$1; OUT=$2; INT8=${3:-}
SHARED=${MCA_SHARED:-../shared}
mkdir -p "$OUT"
$PY -m mca.evaluate --onnx "$MODEL" --num 1000 --json "$OUT/synthetic.json"
$PY tools/teacher_agreement.py --data data/pseudo "$MODEL" --json "$OUT/agreement.json"
$PY tools/teacher_agreement.py --data data/pseudo "$MODEL" --flip --json "$OUT/agreement_flip.json"
$PY tools/kpt_threshold.py "$MODEL" --data data/pseudo --json "$OUT/kpt_threshold.json"
if [ "$INT8" = --int8 ]; then
  $PY -m calibration.build synthetic:300 "$SHARED/data/real-video/vtest.avi" --pose "$MODEL" \
      --detector realtime/models/person_ssdlite.onnx -o "$OUT/calib.npz"
  $PY -m calibration.quantize "$MODEL" "$OUT/calib.npz" -o "$OUT/pose.int8.onnx" --compare --threads 1
  $PY -m mca.evaluate --onnx "$OUT/pose.int8.onnx" --num 1000 --json "$OUT/synthetic_int8.json"
  $PY tools/teacher_agreement.py --data data/pseudo "$OUT/pose.int8.onnx" --json "$OUT/agreement_int8.json"
fi
