#!/usr/bin/env bash
# Reproduce the bundled real-footage pose model realtime/models/pose_mca_tiny_real.onnx (issue 16):
#   1. teachers: MoveNet thunder (tooling venv) and BlazePose heavy (mediapipe venv), see README "Real footage";
#   2. real people labelled by both teachers (vtest.avi + shared photos + licensed package photos);
#   3. stage 1: mca_tiny_synth -> synthetic people with front/back cues (sides learnable), time-aware cosine;
#   4. stage 2: + MoveNet-labelled real crops (half of each batch), measured against BlazePose, the other teacher;
#   5. export (deploy graph, attention outputs, metadata) and the numbers the README reports.
# Runs on 2 CPU cores (about 2 h 15 min here); every stage writes under runs/ (git-ignored).
# Set SKIP_TEACHERS=1 when peers/ and .venv-mp already exist.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
if [ "${SKIP_TEACHERS:-0}" != 1 ]; then
  python -m venv .venv-tools && .venv-tools/bin/pip install "tensorflow-cpu==2.21.*" tf2onnx "onnxruntime==1.32.*" "opencv-python-headless<5"
  .venv-tools/bin/python tools/convert_movenet.py -o peers/
  python -m venv .venv-mp && .venv-mp/bin/pip install --no-deps mediapipe==0.10.21
  .venv-mp/bin/pip install "numpy<2" "protobuf<5" absl-py attrs flatbuffers matplotlib "opencv-python-headless<4.12" sentencepiece
  $PY tools/setup_blazepose.py --python .venv-mp/bin/python
fi
$PY tools/real_photos.py --out data/real-extra
$PY tools/pseudo_label.py --out data/pseudo --train-frames 240 --blazepose-python .venv-mp/bin/python
$PY scripts/train_pose.py --config mca_tiny --init realtime/models/pose_mca_tiny_synth.pt --lr 5e-4 --iters 6000 \
    --minutes 150 --stop-at 3750 --out runs/tiny_sides
$PY scripts/train_pose.py --init runs/tiny_sides/last.pt --synthetic 0.5 --pseudo data/pseudo:0.5 \
    --pseudo-teacher movenet_thunder --lr 2e-4 --warmup 20 --iters 1500 --minutes 20 --eval-every 150 --val-num 256 \
    --out runs/tiny_sides_real
$PY -m engines.export -c runs/tiny_sides_real/last.pt --attention -o realtime/models/pose_mca_tiny_real.onnx
$PY -m mca.evaluate --onnx realtime/models/pose_mca_tiny_real.onnx --num 1000
$PY tools/teacher_agreement.py --data data/pseudo realtime/models/pose_mca_tiny_real.onnx
