"""Re-export a pose ONNX written by an older exporter with the current one (no checkpoint needed).

An older export holds all its weights: PyTorch's exporter folded each Conv-BN pair into one
convolution and kept the other parameters under their module names.  This rebuilds an
:class:`mca.model.MCANet` from the file (:mod:`engines.recover`: element by element, a folded BN
set to identity), checks the rebuilt model against the old file on random crops, and exports it
with the current graph (fused part attention, flip folded into the stem); for a checkpoint to
train from, see ``tools/onnx_to_checkpoint.py``::

    python tools/reexport_pose.py realtime/models/pose_mca_tiny_real.onnx -o realtime/models/pose_mca_tiny_real.onnx
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def model_from_onnx(path: Path):  # noqa: ANN201 - (mca.model.MCANet, metadata dict)
    """Rebuild the network of a module-graph pose ONNX from its initializers (:func:`engines.recover.recover`)."""
    import onnx

    from engines.recover import RecoveryError, recover

    if not Path(path).is_file():
        raise FileNotFoundError(f"{path} not found")
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    if meta.get("mca.graph", "module").startswith("deploy"):
        raise ValueError(f"{path} is already a deploy graph (fused part attention); nothing to do")
    try:
        model, _ = recover(path)
    except RecoveryError as e:
        raise ValueError(str(e)) from None
    return model, meta


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("onnx", type=Path, help="pose ONNX from an older engines.export")
    p.add_argument("-o", "--output", type=Path, required=True, help="ONNX to write (may be the input)")
    p.add_argument("--tolerance", type=float, default=1e-4, help="max |old - new| on the heatmaps")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from engines.export import ExportOptions, export_pose
    from engines.ort import OrtBackend

    try:
        model, meta = model_from_onnx(args.onnx)
    except (ValueError, KeyError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    x = np.random.default_rng(0).integers(0, 256, (4, model.cfg.input_size, model.cfg.input_size, 3), np.uint8)
    old = OrtBackend(args.onnx, threads=1).run(x)
    with tempfile.TemporaryDirectory() as tmp:
        out = export_pose(model, Path(tmp) / "new.onnx",
                          ExportOptions(attention_outputs=len(old) > 1, source=meta.get("mca.source", str(args.onnx))))
        new = OrtBackend(out, threads=1).run(x)
        err = max(float(np.abs(a - b).max()) for a, b in zip(old, new))
        print(f"max |old - new| over {len(old)} outputs: {err:.2e} (tolerance {args.tolerance:g})")
        if err > args.tolerance:
            print("error: the re-exported model does not match the old file; nothing written", file=sys.stderr)
            return 1
        args.output.parent.mkdir(parents=True, exist_ok=True)
        Path(out).replace(args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
