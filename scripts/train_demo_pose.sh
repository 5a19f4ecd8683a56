#!/usr/bin/env bash
# Reproduce the bundled demo pose model: mca_tiny on synthetic people (MPII-16 joints), on this CPU.
#   1. from scratch on synthetic people: runs/demo_pose/{best,last}.pt and log.csv;
#   2. sides (issue 16): trained further on synthetic people with front/back cues, time-aware cosine schedule
#      (stopped at iteration 3750 of 6000, as the bundled one was): runs/tiny_sides/last.pt;
# then realtime/models/pose_mca_tiny_synth.{pt,onnx} (with attention outputs, so --show-attention works) verified
# against PyTorch, and the held-out numbers (side report included). About 3 h on 2 shared CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/demo_pose}
SIDES=${SIDES:-runs/tiny_sides}
python -m mca.train --config mca_tiny --data synthetic --epochs "${EPOCHS:-8}" --iters-per-epoch 300 \
    --batch-size 16 --optimizer adam --lr 1e-3 --val-size 512 --workers 1 --out "$OUT"
python scripts/train_pose.py --config mca_tiny --init "$OUT/best.pt" --lr 5e-4 --iters 6000 --minutes 150 \
    --stop-at 3750 --out "$SIDES"
cp "$SIDES/last.pt" realtime/models/pose_mca_tiny_synth.pt
python -m engines.export -c realtime/models/pose_mca_tiny_synth.pt --attention -o realtime/models/pose_mca_tiny_synth.onnx
python -m mca.evaluate --onnx realtime/models/pose_mca_tiny_synth.onnx --num 1000
