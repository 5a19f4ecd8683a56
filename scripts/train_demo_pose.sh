#!/usr/bin/env bash
# Reproduce the bundled demo pose model: mca_tiny on synthetic people (MPII-16 joints), on this CPU.
# Writes runs/demo_pose/{best,last}.pt and log.csv, then realtime/models/pose_mca_tiny_synth.onnx
# (with attention outputs, so --show-attention works) verified against PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/demo_pose}
python -m mca.train --config mca_tiny --data synthetic --epochs "${EPOCHS:-8}" --iters-per-epoch 300 \
    --batch-size 16 --optimizer adam --lr 1e-3 --val-size 512 --workers 1 --out "$OUT"
python -m engines.export -c "$OUT/best.pt" --attention -o realtime/models/pose_mca_tiny_synth.onnx
python -m mca.evaluate --onnx realtime/models/pose_mca_tiny_synth.onnx --num 1000
