"""The command line's GPU routes (issue 14): --chain, --encoder, nvdec:/jetson:/csi: sources.

Here (no GPU) --chain runs the same graphs on ONNX Runtime and must give today's poses; the GPU-only
routes must fail with one 'error:' line and exit 2, naming what is missing.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from realtime.run import main
from tests.realtime.conftest import write_video


def _people(path):
    return [np.asarray(p["keypoints"], float).reshape(-1, 3) for p in json.loads(path.read_text())]


def test_chain_on_the_demo_gives_the_default_paths_poses(tmp_path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    common = ["--frames", "4", "--backend", "ort", "--quiet"]
    assert main(common + ["--json", str(a)]) == 0
    assert main(common + ["--chain", "--json", str(b)]) == 0
    pa, pb = _people(a), _people(b)
    assert len(pa) == len(pb) > 0
    # Tolerance: the chain's crop and letterbox graphs equal cv2 exactly; 0.5 px is issue 14's bound.
    for x, y in zip(sorted(pa, key=lambda k: tuple(k[0])), sorted(pb, key=lambda k: tuple(k[0]))):
        assert np.abs(x[:, :2] - y[:, :2]).max() <= 0.5


@pytest.mark.parametrize("extra,message", [
    (["--chain", "--flip-test"], "--chain cannot be combined with --flip-test"),
    (["--chain", "--detector", "ground-truth"], "--chain cannot be combined with --detector ground-truth"),
    (["--source", "nvdec:{tmp}/c.mp4"], "NVDEC"),
    (["--encoder", "h264_nvenc", "-o", "{tmp}/x.mp4"], "h264_nvenc"),
])
def test_gpu_routes_without_a_gpu_are_one_line_errors(tmp_path, capsys, extra, message) -> None:
    write_video(tmp_path / "c.mp4", [np.zeros((64, 64, 3), np.uint8)] * 3, fps=10)
    args = ["--frames", "2", "--quiet", "--json", str(tmp_path / "x.json")] + [e.format(tmp=tmp_path) for e in extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error:") and message in err[-1] and "Traceback" not in "\n".join(err)
