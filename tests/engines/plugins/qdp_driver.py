"""Drive NVIDIA's ``tensorrt.plugin`` (a PyPI bindings wheel, compiled module stood in) through this project's
CRFAttention registration the way TensorRT's builder does, and print one JSON line per case.

``python tests/engines/plugins/qdp_driver.py BINDINGS_DIR VERSION CASES_JSON`` (run by test_qdp_contract.py in a
fresh interpreter per wheel: the QDP registry is process-global).  Steps, as the ONNX parser + builder call them:
register (NVIDIA's validators run on our decorated functions) -> the registered creator's ``create_plugin`` with the
creator's own fields and ``STRICT_AOT`` (``aot=1`` on the node) -> ``get_output_data_types`` ->
``get_output_shapes`` -> ``get_supported_format_combinations`` -> ``configure_plugin`` -> ``set_tactic`` ->
``get_launch_params`` (our ``aot_impl`` compiles the Triton kernel) -> ``get_kernel``.
"""

from __future__ import annotations

import json
import re
import sys
import traceback
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import trt_standin  # noqa: E402


def _dims(trt, shape):  # noqa: ANN001, ANN202 - stand-in objects
    d = trt.DimsExprs(len(shape))
    for i, v in enumerate(shape):
        d[i] = trt.IDimensionExpr(None, "batch") if v is None else trt.IDimensionExpr(v)
    return d


def _dyn(trt, dtype, shape, bmax):  # noqa: ANN001, ANN202
    t = trt.DynamicPluginTensorDesc()
    t.desc.type, t.desc.format = dtype, trt.TensorFormat.LINEAR
    t.desc.dims = trt.Dims([-1 if v is None else v for v in shape])
    t.min = trt.Dims([1 if v is None else v for v in shape])
    t.opt = trt.Dims([min(4, bmax) if v is None else v for v in shape])
    t.max = trt.Dims([bmax if v is None else v for v in shape])
    return t


def run_case(trt, case: dict) -> dict:  # noqa: ANN001
    from engines.plugins import qdp

    b, c, h, w, L, it = case["batch"], case["c"], case["h"], case["w"], case["L"], case["iterations"]
    dtype = trt.float16 if case["dtype"] == "fp16" else trt.float32
    creator = trt.get_plugin_registry().get_creator(qdp.PLUGIN_NAME, "1", qdp.PLUGIN_NAMESPACE)
    if creator is None:
        raise RuntimeError("no creator registered for mca_pose::CRFAttention")
    # The parser fills exactly the creator's declared fields, typed as the creator declares them.
    np_of = {"INT64": np.int64, "INT32": np.int32, "INT16": np.int16, "INT8": np.int8}
    values = {"iterations": it, "kernel_size": L}
    fields = [trt.PluginField(f.name, np.array([values[f.name]], np_of[f.type.name]), f.type)
              for f in creator.field_names]
    plg = creator.create_plugin(qdp.PLUGIN_NAME, qdp.PLUGIN_NAMESPACE, trt.PluginFieldCollection(fields),
                                trt.TensorRTPhase.BUILD, trt.QuickPluginCreationRequest.STRICT_AOT)
    shapes = [(b, c, h, w), (1, c, 3, 3), (1,), (1, 1, L, L), (1,)]
    out_types = plg.get_output_data_types([dtype] * 5, [len(s) for s in shapes])
    eb = trt.IExprBuilder()
    ins = [_dims(trt, s) for s in shapes]
    outs = plg.get_output_shapes(ins, [], eb)
    bmax = 16 if b is None else b
    out_shapes = [(b, c, h, w), (b, 1, h, w)]
    in_out = [_dyn(trt, dtype, s, bmax) for s in shapes] + [_dyn(trt, dtype, s, bmax) for s in out_shapes]
    combos = plg.get_supported_format_combinations(in_out, 5)
    plg.configure_plugin(in_out[:5], in_out[5:])
    tactics = plg.get_valid_tactics()
    plg.set_tactic(0)
    launch = SimpleNamespace()
    setter = SimpleNamespace(nbSymExprs=None)
    plg.get_launch_params(ins, in_out, 5, launch, setter, eb)
    name, ptx = plg.get_kernel([d.desc for d in in_out[:5]], [d.desc for d in in_out[5:]])
    ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
    name = name.decode() if isinstance(name, bytes) else name
    entry = re.search(rf"\.entry\s+{re.escape(name)}\s*\((.*?)\)", ptx, re.S)
    reqntid = re.search(r"\.reqntid\s+(\d+)", ptx)

    def ev(e):  # noqa: ANN001, ANN202 - a launch dimension as TensorRT would read it
        return e.value if e.is_constant() else e.label

    return {
        "out_types": [t.name for t in out_types],
        "out_shapes": [[ev(e) for e in d] for d in outs],
        "formats": [getattr(p.format, "name", None) for p in combos],
        "tactics": list(tactics),
        "grid_x": ev(launch.grid_x.expr), "grid_y": ev(launch.grid_y.expr), "grid_z": ev(launch.grid_z.expr),
        "block_x": ev(launch.block_x.expr), "block_y": ev(launch.block_y.expr), "block_z": ev(launch.block_z.expr),
        "shared_mem": ev(launch.shared_mem.expr), "extra_args": setter.nbSymExprs,
        "kernel": name, "ptx_params": len([p for p in entry.group(1).split(",") if p.strip()]) if entry else None,
        "reqntid": int(reqntid.group(1)) if reqntid else None,
        "ptx_version": re.search(r"^\.version (\d+\.\d+)", ptx, re.M).group(1),
        "ptx_target": re.search(r"^\.target (\w+)", ptx, re.M).group(1),
    }


def main() -> int:
    bindings, version, cases = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    mode = sys.argv[4] if len(sys.argv) > 4 else ""
    trt = trt_standin.install(bindings, version)
    from engines.plugins import qdp

    if mode == "bad-annotation":  # a signature NVIDIA's validator rejects must raise, not pass as "registered"
        qdp.Int32Attr = list  # type: ignore[misc, assignment]

    try:
        ok = qdp.register_plugin(arch=int(cases[0].get("arch", 90)), ptx_version=int(cases[0].get("ptx", 85)))
        again = qdp.register_plugin(arch=int(cases[0].get("arch", 90)), ptx_version=int(cases[0].get("ptx", 85)))
    except Exception as e:  # noqa: BLE001 - reported to the test, which fails with it
        print(json.dumps({"register_error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-2000:]}))
        return 0
    print(json.dumps({"registered": ok, "again": again, "trtp_file": sys.modules["tensorrt.plugin"].__file__}))
    for case in cases:
        try:
            print(json.dumps({"case": case, **run_case(trt, case)}))
        except Exception as e:  # noqa: BLE001
            print(json.dumps({"case": case, "error": f"{type(e).__name__}: {e}",
                              "trace": traceback.format_exc()[-2000:]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
