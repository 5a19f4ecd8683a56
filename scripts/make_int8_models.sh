#!/usr/bin/env bash
# The bundled INT8 twins (NAME.int8.onnx beside each FP32 file in realtime/models), which the pipeline runs where
# engines.cpu.int8_plan says INT8 pays (VNNI, ARM dot product) or with --int8 on / MCA_INT8=on.
# Demo models: calibrated on synthetic:300; real-footage models (mca_tiny_real, SSDLite): synthetic:200 + vtest.avi.
# Needs the 'onnx' package; a few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
M=realtime/models
T=${TMPDIR:-/tmp}/mca_int8_$$
mkdir -p "$T"
VIDEO=${VIDEO:-../shared/data/real-video/vtest.avi}
python -m calibration.build synthetic:300 --pose $M/pose_mca_tiny_synth.onnx --detector $M/person_yolo_synth.onnx \
    -o "$T/calib_synth.npz"
python -m calibration.quantize $M/pose_mca_tiny_synth.onnx "$T/calib_synth.npz" -o $M/pose_mca_tiny_synth.int8.onnx
python -m calibration.quantize $M/person_yolo_synth.onnx "$T/calib_synth.npz" -o $M/person_yolo_synth.int8.onnx --detector
python -m calibration.build synthetic:200 "$VIDEO" --pose $M/pose_mca_tiny_real.onnx --detector $M/person_ssdlite.onnx \
    -o "$T/calib_real.npz"
python -m calibration.quantize $M/pose_mca_tiny_real.onnx "$T/calib_real.npz" -o $M/pose_mca_tiny_real.int8.onnx
python -m calibration.quantize $M/person_ssdlite.onnx "$T/calib_real.npz" -o $M/person_ssdlite.int8.onnx --detector
rm -rf "$T"
ls -l $M/*.int8.onnx
