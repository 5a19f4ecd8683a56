"""The runtime imports of ``mca`` (configs, joint sets, heatmap codec) must not need torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

BLOCK_TORCH = "import sys; sys.modules['torch'] = None\n"


@pytest.mark.parametrize("code", [
    "import mca; print(mca.get_config('mca_paper').heatmap_size)",
    "import mca.heatmaps, mca.joints, mca.config; print(mca.joints.MPII16.num_joints)",
    "import mca.data.pseudo_labels as p; print(p.coco_to_mpii.__name__)",
])
def test_import_without_torch(code: str) -> None:
    r = subprocess.run([sys.executable, "-c", BLOCK_TORCH + code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_create_model_without_torch_fails_on_torch_import() -> None:
    r = subprocess.run([sys.executable, "-c", BLOCK_TORCH + "import mca; mca.create_model('mca_tiny')"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "torch" in r.stderr
