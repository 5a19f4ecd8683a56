"""What the GPU path can prove on a CUDA machine without TensorRT (issue 14; run by scripts/gpu_check.sh).

One PASS / FAIL / SKIP line per check; a log under $OUT when set; well under 5 minutes on a desktop GPU.

- cuda: engines.cuda on the real cuda-python runtime (device, streams, events, timing);
- streams: an upload on one stream, a copy on another that waits on its event, data in order;
- uploader: the pinned double-buffered ring and the device pool (frames up, back equal, one allocation);
- dlpack torch / dlpack cupy: DeviceArray <-> torch / CuPy without a copy (same pointer, writes seen both ways);
- graphs on the GPU: the chain's crop and letterbox ONNX graphs evaluated op by op in CuPy (float32/int32 on
  the device, as TensorRT would) and compared with cv2.warpAffine / cv2.resize (or the same graphs on the CPU);
- crf triton: the fused CRF attention kernel (engines/plugins/crf_attention.py) on the GPU against the NumPy
  float64 reference and PyTorch, and its speed against the decomposed PyTorch layers captured in a CUDA graph;
- gpu video: which of NVDEC / NVENC / GStreamer this machine has (information).

Nothing here needs TensorRT; the TensorRT checks are ``python -m engines.selftest`` and ``pytest -m gpu``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


class Skip(Exception):
    """The check cannot run here; the message says why."""


def _need(module: str, why: str = "") -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except Exception as e:  # noqa: BLE001 - missing or broken: both mean skip
        raise Skip(f"{module} is not importable ({type(e).__name__}: {str(e)[:80]}){' ' + why if why else ''}")


def _cuda() -> Any:
    from engines import cuda

    try:
        if cuda.device_count() < 1:
            raise Skip("no CUDA device")
    except cuda.CudaError as e:
        raise Skip(f"CUDA unavailable: {e}") from None
    return cuda


# ----------------------------------------------------------------------------- a small ONNX evaluator
def evaluate(model: Any, feeds: dict[str, Any], xp: Any = np) -> dict[str, Any]:
    """Run an ONNX graph op by op with a NumPy-like module (numpy, cupy): the ops of the chain's crop and
    letterbox graphs, with ONNX semantics for them (integer Div of non-negative operands, Cast truncating)."""
    from onnx import helper, numpy_helper

    env: dict[str, Any] = {t.name: xp.asarray(numpy_helper.to_array(t)) for t in model.graph.initializer}
    env.update({k: xp.asarray(v) for k, v in feeds.items()})
    for node in model.graph.node:
        a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
        ins = [env[i] if i else None for i in node.input]
        op = node.op_type
        if op in ("Add", "Sub", "Mul"):
            out = [{"Add": xp.add, "Sub": xp.subtract, "Mul": xp.multiply}[op](ins[0], ins[1])]
        elif op == "Div":
            if ins[0].dtype.kind in "iu":
                out = [xp.floor_divide(ins[0], ins[1])]  # the graphs divide non-negative integers only
            else:
                out = [xp.divide(ins[0], ins[1])]
        elif op == "Floor":
            out = [xp.floor(ins[0])]
        elif op == "Equal":
            out = [ins[0] == ins[1]]
        elif op == "Clip":
            out = [xp.clip(ins[0], ins[1], ins[2])]
        elif op == "Cast":
            dt = helper.tensor_dtype_to_np_dtype(a["to"])
            x = ins[0]
            out = [(xp.trunc(x) if x.dtype.kind == "f" and np.dtype(dt).kind in "iu" else x).astype(dt)]
        elif op == "Identity":
            out = [ins[0]]
        elif op == "Transpose":
            out = [xp.transpose(ins[0], a.get("perm"))]
        elif op == "Reshape":
            shape = [int(s) for s in ins[1].tolist()]
            shape = [ins[0].shape[k] if s == 0 else s for k, s in enumerate(shape)]
            out = [xp.reshape(ins[0], shape)]
        elif op == "Unsqueeze":
            x = ins[0]
            for ax in sorted(int(v) for v in ins[1].tolist()):
                x = xp.expand_dims(x, ax if ax >= 0 else ax + x.ndim + 1)
            out = [x]
        elif op == "Squeeze":
            out = [xp.squeeze(ins[0], axis=tuple(int(v) for v in ins[1].tolist()))]
        elif op == "Split":
            sizes = [int(v) for v in ins[1].tolist()]
            cuts = np.cumsum(sizes)[:-1].tolist()
            out = xp.split(ins[0], cuts, axis=a.get("axis", 0))
        elif op == "Gather":
            out = [xp.take(ins[0], ins[1].astype(np.int64), axis=a.get("axis", 0))]
        elif op == "Pad":
            pads = [int(v) for v in ins[1].tolist()]
            n = ins[0].ndim
            value = ins[2].item() if len(ins) > 2 and ins[2] is not None else 0
            if a.get("mode", b"constant") not in (b"constant", "constant"):
                raise ValueError(f"Pad mode {a['mode']!r} is not supported here")
            out = [xp.pad(ins[0], list(zip(pads[:n], pads[n:])), constant_values=value)]
        else:
            raise ValueError(f"op {op} is not supported by this evaluator")
        for name, v in zip(node.output, out):
            env[name] = v
    return {o.name: env[o.name] for o in model.graph.output}


# ----------------------------------------------------------------------------- checks
def check_cuda() -> str:
    cuda = _cuda()
    info = cuda.device_info(0)
    s = cuda.Stream()
    a, b = cuda.Event(timing=True), cuda.Event(timing=True)
    a.record(s)
    b.record(s)
    ms = cuda.elapsed_ms(a, b)
    for x in (a, b, s):
        x.close()
    return (f"{info['name']} sm {info['compute_capability']}, {info['memory_gb']} GB, driver {info['driver']}, "
            f"runtime {info['runtime']}; timing events work ({ms:.3f} ms empty)")


def check_streams() -> str:
    """64 MB up on stream 1; stream 2 waits on an event, copies it device to device and down: equal."""
    cuda = _cuda()
    rt = cuda.runtime()
    n = 64 << 20
    src = cuda.HostBuffer((n,), np.dtype(np.uint8))
    src.array[:] = np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8)
    dst = cuda.HostBuffer((n,), np.dtype(np.uint8))
    d1, d2 = cuda.DeviceBuffer(n), cuda.DeviceBuffer(n)
    s1, s2, ev = cuda.Stream(), cuda.Stream(), cuda.Event()
    t0, t1 = cuda.Event(timing=True), cuda.Event(timing=True)
    t0.record(s1)
    cuda.memcpy_htod_async(d1, src, n, s1)
    t1.record(s1)
    ev.record(s1)
    s2.wait_event(ev)  # without this wait the copy below could read d1 before the upload lands
    cuda.check(rt.cudaMemcpyAsync(d2.ptr, d1.ptr, n, rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice, s2.handle), "D2D")
    cuda.memcpy_dtoh_async(dst, d2, n, s2)
    s2.synchronize()
    ok = bool(np.array_equal(src.array, dst.array))
    gbps = n / 1e6 / max(cuda.elapsed_ms(t0, t1), 1e-6)
    for x in (src, dst, d1, d2, s1, s2, ev, t0, t1):
        x.close()
    if not ok:
        raise AssertionError("data after the event wait differs from what was uploaded")
    return f"event-ordered copy across two streams exact; pinned upload {gbps:.1f} GB/s"


def check_uploader() -> str:
    cuda = _cuda()
    from engines.device import Uploader, download

    up = Uploader("cuda:0")
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8) for _ in range(3)]
    t0 = time.perf_counter()
    for k in range(12):
        d = up.upload(frames[k % 3])
        if not np.array_equal(download(d), frames[k % 3]):
            raise AssertionError(f"frame {k} came back different")
        del d
    ms = 1000 * (time.perf_counter() - t0) / 12
    allocs, waits = up.pool.allocations, up.ring.waits
    up.close()
    if allocs != 1:
        raise AssertionError(f"{allocs} device allocations for 12 frames (want 1: the pool reuses the buffer)")
    del cuda
    return f"12 x 1080p up and back equal; 1 device allocation, {waits} ring waits; {ms:.2f} ms per round trip"


def check_dlpack_torch() -> str:
    _cuda()
    torch = _need("torch")
    if not torch.cuda.is_available():
        raise Skip("torch has no CUDA here")
    from engines.device import DeviceArray, Uploader, download

    up = Uploader("cuda:0")
    host = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    d = up.upload(host)
    t = torch.from_dlpack(d)
    if t.data_ptr() != d.ptr or not t.is_cuda:
        raise AssertionError("torch.from_dlpack copied (pointer differs)")
    if not np.array_equal(t.cpu().numpy(), host):
        raise AssertionError("torch sees other values")
    t.mul_(2)
    torch.cuda.synchronize()
    if not np.array_equal(download(d), host * 2):
        raise AssertionError("a write through torch is not seen by the DeviceArray")
    x = torch.arange(10, device="cuda", dtype=torch.int32)
    back = DeviceArray.from_dlpack(x, stream=torch.cuda.current_stream().cuda_stream)
    if back.ptr != x.data_ptr() or back.shape != (10,) or not np.array_equal(download(back), np.arange(10)):
        raise AssertionError("DeviceArray.from_dlpack(torch) copied or changed the data")
    del t, d, back
    up.close()
    return "DeviceArray -> torch and torch -> DeviceArray share memory (same pointer, writes seen)"


def check_dlpack_cupy() -> str:
    _cuda()
    cp = _need("cupy")
    from engines.device import DeviceArray, Uploader, download

    up = Uploader("cuda:0")
    host = np.arange(12, dtype=np.uint8).reshape(3, 4)
    d = up.upload(host)
    up.stream.synchronize()
    a = cp.asarray(d)  # __cuda_array_interface__
    b = cp.from_dlpack(d)
    if a.data.ptr != d.ptr or b.data.ptr != d.ptr:
        raise AssertionError("CuPy copied (pointer differs)")
    b += 1
    cp.cuda.Device().synchronize()
    if not np.array_equal(download(d), host + 1):
        raise AssertionError("a write through CuPy is not seen")
    c = cp.arange(6, dtype=cp.float32)
    back = DeviceArray.from_dlpack(c)
    if back.ptr != c.data.ptr or not np.array_equal(download(back), np.arange(6, dtype=np.float32)):
        raise AssertionError("DeviceArray.from_dlpack(cupy) copied or changed the data")
    del a, b, d, back
    up.close()
    return "DeviceArray <-> CuPy (DLPack and __cuda_array_interface__) without a copy"


def _crop_case(h: int, w: int, persons: int, crop: int) -> tuple[np.ndarray, np.ndarray]:
    from mca import heatmaps as H

    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img[h // 3: h // 2] = 255
    mats = np.stack([H.crop_matrix(tuple(rng.uniform([-0.1 * w, -0.1 * h], [1.1 * w, 1.1 * h]).tolist()),
                                   (rng.uniform(20, h), rng.uniform(20, h)), (crop, crop),
                                   rng.uniform(-180, 180) if i % 2 else 0.0, flip=i % 3 == 0)
                     for i in range(persons)])
    return img, mats


def check_graphs_on_gpu() -> str:
    """The crop and letterbox graphs evaluated in CuPy on the device: equal to OpenCV (or to the CPU)."""
    cp = _need("cupy")
    _need("onnx", "(the graphs are built with the 'onnx' package)")
    from engines.preprocess import InputFormat, crop_graph, crop_maps, frame_prologue

    h, w, crop = 720, 1280, 128
    img, mats = _crop_case(h, w, 8, crop)
    rows, cols = crop_maps(mats, (crop, crop))
    feeds = {"frame": img, "map_rows": rows, "map_cols": cols}
    g = crop_graph((h, w), (crop, crop))
    got = cp.asnumpy(next(iter(evaluate(g, feeds, cp).values())))
    parts = []
    try:
        import cv2

        want = np.stack([cv2.warpAffine(img, m, (crop, crop), flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_CONSTANT, borderValue=0) for m in mats])
        ref = "cv2.warpAffine"
    except ImportError:
        want = next(iter(evaluate(g, feeds, np).values()))
        ref = "the same graph on the CPU (no cv2 here)"
    dmax = int(np.abs(got.astype(np.int16) - want).max())
    if dmax:
        raise AssertionError(f"crop graph on the GPU differs from {ref} by up to {dmax} grey levels")
    parts.append(f"crop 8x128 from 720p == {ref}")
    fmt = InputFormat(320)
    pro, p = frame_prologue(fmt, (h, w))
    got = cp.asnumpy(next(iter(evaluate(pro, {"frame": img}, cp).values())))
    try:
        import cv2

        canvas = np.full((320, 320, 3), 114, np.uint8)
        y0, x0 = int(p.pad_y), int(p.pad_x)
        canvas[y0:y0 + p.new_h, x0:x0 + p.new_w] = cv2.resize(img, (p.new_w, p.new_h),
                                                              interpolation=cv2.INTER_LINEAR)
        want = np.ascontiguousarray(canvas[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
        ref = "cv2.resize letterbox"
    except ImportError:
        want = next(iter(evaluate(pro, {"frame": img}, np).values()))
        ref = "the same graph on the CPU"
    d = float(np.abs(got - want).max() * 255)
    if d >= 1e-3:
        raise AssertionError(f"letterbox graph on the GPU differs from {ref} by {d:.4f} grey levels")
    parts.append(f"letterbox 720p->320 == {ref} (max {d:.1e} levels)")
    return "; ".join(parts)


def _time_cuda(torch: Any, fn: Callable[[], Any], reps: int = 50) -> float:
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps


def check_crf_triton() -> str:
    torch = _need("torch")
    _need("triton")
    if not torch.cuda.is_available():
        raise Skip("torch has no CUDA here")
    from engines.plugins.crf_attention import crf_attention_reference, crf_attention_triton
    from mca.blocks import AttentionIter

    lines = []
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # the PyTorch comparison in true FP32 (cuDNN convs default to TF32)
    for (n, c, h, w, L, it) in [(2, 16, 16, 16, 11, 3), (4, 64, 32, 32, 11, 3), (3, 5, 13, 9, 5, 2)]:
        torch.manual_seed(n + c)
        m = AttentionIter(c, L, it).eval()
        torch.nn.init.normal_(m.crf_kernel.weight, std=0.3)
        torch.nn.init.normal_(m.u_conv.bias)
        x = torch.randn(n, c, h, w)
        params = (m.u_conv.weight, m.u_conv.bias, m.crf_kernel.weight, m.crf_kernel.bias)
        ry, rq = crf_attention_reference(x.numpy(), *(p.detach().numpy() for p in params), it)
        xc = x.cuda()
        pc = [p.detach().cuda() for p in params]
        with torch.no_grad():
            y, q = crf_attention_triton(xc, *pc, it)
            ty, tq = m.cuda()(xc)
        ey = float(np.abs(y.cpu().numpy() - ry).max())
        eq = float(np.abs(q.cpu().numpy() - rq).max())
        et = float((y - ty).abs().max())
        if ey > 1e-4 or eq > 1e-5 or et > 1e-4:
            raise AssertionError(f"{(n, c, h, w, L, it)}: |y - ref| {ey:.1e}, |q - ref| {eq:.1e}, |y - torch| {et:.1e}")
        lines.append(f"{n}x{c}x{h}x{w} L{L} it{it}: max err {ey:.1e}")
    torch.backends.cudnn.allow_tf32 = tf32  # speed: PyTorch as it runs by default
    # speed: batch 16 of mca_paper-like maps (256 channels, 64x64), fp32, against the PyTorch layers in a CUDA graph
    n, c, h, w, L, it = 16, 256, 64, 64, 11, 3
    m = AttentionIter(c, L, it).eval().cuda()
    x = torch.randn(n, c, h, w, device="cuda")
    params = [p.detach() for p in (m.u_conv.weight, m.u_conv.bias, m.crf_kernel.weight, m.crf_kernel.bias)]
    with torch.no_grad():
        static = x.clone()
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                m(static)
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            m(static)
        ms_graph = _time_cuda(torch, graph.replay)
        ms_triton = _time_cuda(torch, lambda: crf_attention_triton(x, *params, it))
        ms_eager = _time_cuda(torch, lambda: m(x))
    return (" | ".join(lines) + f" || speed {n}x{c}x{h}x{w} L{L} it{it} fp32: triton {ms_triton:.3f} ms, "
            f"PyTorch CUDA graph {ms_graph:.3f} ms, eager {ms_eager:.3f} ms (graph/triton {ms_graph / ms_triton:.2f}x; "
            f"cuDNN TF32 {'on' if tf32 else 'off'})")


def check_gpu_video() -> str:
    from realtime.gpu_io import detect_all

    return "; ".join(o.line() for o in detect_all())


CHECKS: list[tuple[str, Callable[[], str]]] = [
    ("cuda", check_cuda), ("streams", check_streams), ("uploader", check_uploader),
    ("dlpack torch", check_dlpack_torch), ("dlpack cupy", check_dlpack_cupy), ("graphs on the gpu", check_graphs_on_gpu),
    ("crf triton", check_crf_triton), ("gpu video", check_gpu_video)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python scripts/gpu_check.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", help="run only the checks whose names contain one of these words")
    ap.add_argument("--log", type=Path, default=Path(os.environ["OUT"]) / "gpu_check.log" if os.environ.get("OUT")
                    else None, help="also write the lines here (default $OUT/gpu_check.log when $OUT is set)")
    args = ap.parse_args(argv)
    lines, failed = [], 0
    for name, fn in CHECKS:
        if args.only and not any(w in name for w in args.only):
            continue
        t0 = time.perf_counter()
        try:
            line = f"PASS {name}: {fn()}"
        except Skip as s:
            line = f"SKIP {name}: {s}"
        except Exception as e:  # noqa: BLE001 - every check reports; the run goes on
            failed += 1
            line = f"FAIL {name}: {type(e).__name__}: {str(e)[:300]}"
            lines.append(traceback.format_exc())
        line += f" [{time.perf_counter() - t0:.1f} s]"
        print(line, flush=True)
        lines.append(line)
    print(f"gpu_check: {failed} failed" if failed else "gpu_check: nothing failed")
    if args.log:
        args.log.parent.mkdir(parents=True, exist_ok=True)
        args.log.write_text("\n".join(lines) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
