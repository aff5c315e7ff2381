#!/usr/bin/env python3
"""Is the forward bound by memory or by the SM? Run it with inputs served from L2 and compare.

    python3 scripts/probe_l2.py [--lib build/release/kernels/liblightning.so]
                                [--shapes 4x32768,1x131072,2x65536] [--heads 32] [--dim 128]
                                [--repeats 15]

For each B x N (bf16, [B, H, N, D] = D = E, alibi slopes, scale 1) the forward runs three ways:
every tensor in HBM; K and V given a sequence stride of 0 (a [B, H, 1, D] tensor expanded over N:
every block reads the same tile, from L2 after the first); Q, K and V all so. O is always a full
tensor. A kernel that runs no faster with its inputs in L2 is bound by the SM, not by memory. The
time is the median of CUDA events around lightning_forward after a 256 MiB buffer is cleared (cold
L2 for the full tensors). Where the plan splits the sequence into segments (B*H small), each kernel's
time (local-state pass, scan, output pass) comes from torch.profiler. Caveat: with segments, the
segments of one head all read the same stride-0 tile, so those runs also measure L2 contention on
it; one thread block per head (no segments) is the clean case.

A probe for `kernels/README.md`, not a benchmark: the sweep's numbers come from lightning-bench.
Needs torch with CUDA, and the library built (cmake --build --preset release).
"""
import argparse
import ctypes
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def parse_shapes(text):
    shapes = []
    for item in text.split(","):
        try:
            b, n = (int(x) for x in item.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"shape '{item}' is not BxN (e.g. 4x32768)")
        if b < 1 or n < 1:
            raise argparse.ArgumentTypeError(f"shape '{item}' needs B >= 1 and N >= 1")
        shapes.append((b, n))
    return shapes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lib", default="build/release/kernels/liblightning.so")
    ap.add_argument("--shapes", type=parse_shapes, default=parse_shapes("4x32768,1x131072,2x65536"),
                    help="comma list of BxN (default 4x32768,1x131072,2x65536)")
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--dim", type=int, choices=(64, 128), default=128)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.heads < 1:
        ap.error("--repeats and --heads need a positive integer")

    try:
        import torch
        from torch.profiler import ProfilerActivity, profile
    except ImportError:
        print("probe_l2: needs torch (with CUDA)", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("probe_l2: no CUDA device", file=sys.stderr)
        return 2
    from compare_peers import LightningLib, forward_params

    lib = LightningLib(args.lib)
    h, d = args.heads, args.dim
    s_host = [2 ** (-8 * (i + 1) / h) for i in range(h)]
    s = torch.tensor(s_host, dtype=torch.float32, device="cuda")
    flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    stream = torch.cuda.current_stream().cuda_stream

    def tensor(b, n, hot):
        if hot:
            return torch.randn(b, h, 1, d, device="cuda", dtype=torch.bfloat16).expand(b, h, n, d)
        return torch.randn(b, h, n, d, device="cuda", dtype=torch.bfloat16)

    def run(label, b, n, hot_q, hot_kv):
        q, k, v = tensor(b, n, hot_q), tensor(b, n, hot_kv), tensor(b, n, hot_kv)
        o = torch.empty(b, h, n, d, device="cuda", dtype=torch.bfloat16)
        p = forward_params(lib, "bf16", q, k, v, o, s)
        size = ctypes.c_size_t(0)
        lib.check(lib.lib.lightning_forward_workspace_size(ctypes.byref(p), ctypes.byref(size)),
                  "lightning_forward_workspace_size")
        ws = torch.empty(max(size.value, 1), dtype=torch.uint8, device="cuda")
        p.workspace, p.workspace_bytes = ws.data_ptr(), size.value
        times = []
        for i in range(args.repeats + 2):
            flush.zero_()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            lib.check(lib.lib.lightning_forward(ctypes.byref(p), stream), "lightning_forward")
            end.record()
            torch.cuda.synchronize()
            if i >= 2:  # two warm-up runs
                times.append(start.elapsed_time(end))
        ms = statistics.median(times)
        print(f"{label:24s} B={b:4d} N={n:7d} {ms:8.3f} ms {b * n / ms / 1e3:8.1f} Mtok/s", flush=True)
        if size.value > 0:  # segments: time each kernel
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                for _ in range(5):
                    flush.zero_()
                    lib.check(lib.lib.lightning_forward(ctypes.byref(p), stream),
                              "lightning_forward")
                torch.cuda.synchronize()
            kernels = {}
            for e in prof.events():
                if e.device_type.name == "CUDA" and "lightning" in e.name:
                    t = getattr(e, "device_time", None) or getattr(e, "cuda_time", 0)
                    kernels.setdefault(e.name, []).append(t)
            for name, ts in kernels.items():
                print(f"    {statistics.median(ts) / 1000:8.3f} ms x{len(ts) // 5}  {name[-90:]}")

    for b, n in args.shapes:
        run("all from HBM", b, n, False, False)
        run("K, V from L2", b, n, False, True)
        run("Q, K, V from L2", b, n, True, True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
