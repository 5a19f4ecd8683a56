"""``tools/onnx_to_checkpoint.py``: an exported pose model back to a trainable mca-pose checkpoint.

Why: the bundled pose models ship as ONNX; training further from one (``scripts/train_pose.py --init``) needs the
PyTorch weights.  How it is undone, element by element, and why folded batch norms get calibrated statistics:
:mod:`engines.recover`.  The result is checked against the file with ONNX Runtime (max |difference| on every
output, tolerance ``engines.recover.TOLERANCE``) before anything is written.

    python tools/onnx_to_checkpoint.py realtime/models/pose_mca_tiny_real.onnx -o runs/recovered/mca_tiny_real.pt
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: the checkout's packages
    sys.path.insert(0, str(ROOT))

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Recover trainable PyTorch weights from an exported mca-pose ONNX model.")
    p.add_argument("onnx", type=Path, help="an FP32 pose export (e.g. realtime/models/pose_mca_tiny_real.onnx)")
    p.add_argument("-o", "--out", type=Path, required=True, help="checkpoint to write (.pt)")
    p.add_argument("--no-calibrate", action="store_true",
                   help="leave folded batch norms as plain identities (fine for eval; training mode then normalises "
                        "with batch statistics the folded weights never saw)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    from engines.recover import TOLERANCE, RecoveryError, calibrate, max_difference, recover
    from mca.checkpoint import save_checkpoint

    try:
        model, folded = recover(args.onnx)
        if not args.no_calibrate and folded:
            calibrate(model, folded)
        err = max_difference(model, args.onnx)
        if err > TOLERANCE:
            raise RecoveryError(f"recovered model differs from {args.onnx} by {err:.2e} (tolerance {TOLERANCE:g})")
    except RecoveryError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    save_checkpoint(args.out, model, extra={"recovered_from": args.onnx.name, "folded_batch_norms": len(folded),
                                            "max_abs_diff": err})
    print(f"wrote {args.out}: {len(folded)} folded batch norms restored, max |PyTorch - ONNX| {err:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
