#!/usr/bin/env python3
"""This project's kernels and the peers people would otherwise pick, measured side by side in
one process on one GPU with the same inputs; the report follows lightning-bench's schema, so
plot_report.py draws everyone and compare_reports.py compares runs.

    scripts/compare_peers.py --json OUT.json [--lib build/release/kernels/liblightning.so]
                             [--seqlens 1k..128k] [--tokens 128k] [--heads 32] [--dim 128] ...
    scripts/compare_peers.py --dry-run --json OUT.json     # no GPU: CPU torch stand-ins or
                                                            # synthetic numbers, same report
    scripts/compare_peers.py --check-abi --lib LIB [--abi-program PROG]

On a GPU machine without network: bring the peers as wheels (scripts/fetch-peer-wheels.sh, here),
install them there with pip --no-index --target, build the release preset's lightning_shared,
and pass --git-sha (the copy there may have no .git, or not its own). The defaults are the standard sweep
(DESIGN.md section 4): bf16, H = 32, D = E = 128, 128k tokens per step, N = 1k..128k.

Providers (--providers, all by default):
  lightning                 this project's forward (and backward, once it exists) through the C
                            ABI (ctypes on liblightning.so) on the torch tensors' device pointers
  fla-chunk-simple-gla      flash-linear-attention's chunk_simple_gla(q, k, v, g_gamma=-s,
                            scale=1.0) on [B, N, H, D] (package fla-core, module fla.ops.simple_gla)
  official-lightning-attn2  OpenNLPLab's lightning_attn2(q, k, v, s) on [B, H, N, D], s [H, 1, 1]
                            (package lightning-attn, module lightning_attn.ops)
  torch-sdpa                torch.nn.functional.scaled_dot_product_attention(is_causal=True):
                            softmax attention, a different model, drawn to show growth with N
A peer that cannot be imported is named on stderr and its points are recorded as skipped with
the import error; the run goes on without it.

All linear providers compute, per batch b and head h with lambda = exp(-s_h) (ALiBi slopes
s_h = 2^(-8(h+1)/H)): S_t = lambda S_{t-1} + k_t^T v_t, o_t = q_t S_t. Before the sweep they run
a small ragged shape and must agree with each other and with a float64 reference (rel_l2,
printed); every swept point is then verified on --verify-heads heads against float64 with
DESIGN.md section 5's rules 1 and 2.

Timing: CUDA events around each call, a 256 MB buffer cleared between samples (cold L2), then a
spin kernel that keeps the GPU busy while the host enqueues the sample, so that no library is
timed for its host-side work (the launch hold, LaunchHold; --no-launch-hold turns it off); warm-up
calls first (Triton compiles and autotunes there); samples until --min-samples and --min-time
are reached and the median's relative standard error is under --noise, or --max-samples, or
--timeout. Memory: PyTorch's allocator peak during one step, plus the inputs in the provider's
layout. fwdbwd = forward + backward of one step through autograd, with a fixed dO.

The report is lightning-bench's schema with tool.name "compare_peers", plus three top-level
keys of its own: "peers" (what was loaded, or why not), "cross_check" (the small-shape agreement)
and "dry_run".

Exit status: 0 the sweep finished (points may be skipped or fail; see the report), 1 an error
stopped the sweep, a dry run disagreed with itself, or --check-abi found a mismatch, 2 bad
arguments or no usable GPU (one line on stderr), 130 interrupted.
"""

import argparse
import ctypes
import json
import math
import os
import platform
import random
import re
import socket
import statistics
import subprocess
import sys
import time

from report_common import fmt_bytes, fmt_count

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

PROVIDERS = ("lightning", "fla-chunk-simple-gla", "official-lightning-attn2", "torch-sdpa")
FAMILIES = {"lightning": "linear-blocked", "fla-chunk-simple-gla": "linear-blocked",
            "official-lightning-attn2": "linear-blocked", "torch-sdpa": "softmax"}
LINEAR = tuple(p for p in PROVIDERS if FAMILIES[p] != "softmax")
MODES = ("fwd", "bwd", "fwdbwd")
DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
MODEL_BLOCK = 64
L2_FLUSH_BYTES = 256 << 20
CRITERIA = {"max_min_ratio": 1.10, "slope_bound": 0.03, "confidence": 0.95}


class UsageError(Exception):
    pass


class Skip(Exception):
    """A point that cannot run here (peer missing, mode not implemented, out of memory)."""


def die(msg, code=2):
    print(f"compare_peers: {msg}", file=sys.stderr)
    sys.exit(code)


def note(msg):
    print(f"compare_peers: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Arguments


def parse_count(text):
    """'128k' -> 131072, '1M' -> 1048576, '4096' -> 4096."""
    m = re.fullmatch(r"\s*(\d+)\s*([kKmM]?)\s*", text)
    if not m:
        raise UsageError(f"not a count: '{text}' (use 4096, 4k or 1M)")
    return int(m.group(1)) << {"": 0, "k": 10, "K": 10, "m": 20, "M": 20}[m.group(2)]


def parse_seqlens(spec):
    """'1k..128k' (powers of two between), '1k,4k,16k', or a mix."""
    out = []
    for part in spec.split(","):
        if ".." in part:
            lo, hi = (parse_count(x) for x in part.split("..", 1))
            if lo < 1 or hi < lo:
                raise UsageError(f"--seqlens: empty range '{part}'")
            n = lo
            while n <= hi:
                out.append(n)
                n *= 2
        elif part.strip():
            out.append(parse_count(part))
    if not out or min(out) < 1:
        raise UsageError(f"--seqlens: no lengths in '{spec}'")
    return sorted(set(out))


def parse_list(text, allowed, what):
    items = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in items if x not in allowed]
    if bad or not items:
        raise UsageError(f"--{what}: unknown {', '.join(bad) or '(empty)'}; choose from "
                         f"{', '.join(allowed)}")
    return list(dict.fromkeys(items))




def build_parser():
    p = argparse.ArgumentParser(
        description="This project's kernels and its peers (flash-linear-attention, the official "
                    "lightning_attn2, PyTorch SDPA) on one GPU, written as a lightning-bench "
                    "report.", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", help="write the report here (required unless --check-abi)")
    p.add_argument("--lib", help="liblightning.so (default: build/release/kernels/"
                                 "liblightning.so under the repository)")
    p.add_argument("--providers", default=",".join(PROVIDERS),
                   help="comma-separated, default all: " + ", ".join(PROVIDERS))
    p.add_argument("--modes", default="fwd,fwdbwd", help="fwd, bwd, fwdbwd (default fwd,fwdbwd)")
    p.add_argument("--seqlens", default=None, help="default 1k..128k (dry run: 64..256)")
    p.add_argument("--tokens", default=None, help="tokens per step, B = tokens / N (default 128k; "
                                                  "dry run: 512)")
    p.add_argument("--heads", type=int, default=None, help="default 32 (dry run: 2)")
    p.add_argument("--dim", type=int, default=None, choices=(64, 128), help="D, default 128 "
                                                                            "(dry run: 64)")
    p.add_argument("--vdim", type=int, default=None, choices=(64, 128), help="E, default = D")
    p.add_argument("--dtype", default="bf16", choices=("bf16", "fp16"),
                   help="storage dtype of q, k, v, o (default bf16)")
    p.add_argument("--layout", default="bhnd", choices=("bhnd", "bnhd"),
                   help="memory layout handed to this project's kernel (the peers take their "
                        "own: fla [B,N,H,D], official [B,H,N,D], SDPA views of [B,N,H,D])")
    p.add_argument("--repeat", type=int, default=1, help="run the whole sweep this many times")
    p.add_argument("--min-samples", type=int, default=10)
    p.add_argument("--max-samples", type=int, default=1000)
    p.add_argument("--min-time", type=float, default=0.3, help="seconds of samples per point")
    p.add_argument("--noise", type=float, default=0.005,
                   help="stop when the median's relative standard error is below this")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds per point at most")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls first (Triton compiles)")
    p.add_argument("--no-launch-hold", dest="launch_hold", action="store_false",
                   help="time without the launch hold: the start event may then wait for the "
                        "host's part of the call (Python, ctypes, Triton's launcher), which the "
                        "sample includes")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip the per-point float64 verification")
    p.add_argument("--verify-heads", type=int, default=2)
    p.add_argument("--verify-softmax-max-n", default="16k",
                   help="verify SDPA only up to this N (its float64 reference is O(N^2))")
    p.add_argument("--peak-bandwidth", type=float, default=4250.0,
                   help="GB/s that count as 100%% (default 4250, the H200's measured copy rate)")
    p.add_argument("--seed", type=int, default=20240520)
    p.add_argument("--device", type=int, default=0)
    p.add_argument("--git-sha", help="recorded sha, over git rev-parse (a copy on a GPU machine "
                                     "whose .git is not its own); default $LIGHTNING_GIT_SHA, "
                                     "else git rev-parse")
    p.add_argument("--dry-run", action="store_true",
                   help="no GPU: every provider is a stand-in (CPU torch when importable, else "
                        "synthetic numbers); exercises the sweep, verification and report")
    p.add_argument("--dry-run-unavailable", default="",
                   help="(dry run) treat these providers as not importable")
    p.add_argument("--check-abi", action="store_true",
                   help="check the ctypes mirrors of the C ABI and exit")
    p.add_argument("--abi-program",
                   help="(--check-abi) a program printing the C structs' sizes and offsets")
    return p


def parse_args(argv):
    args = build_parser().parse_args(argv)
    if args.check_abi:
        return args
    if not args.json:
        raise UsageError("--json OUT.json is required")
    dry = args.dry_run
    args.providers = parse_list(args.providers, PROVIDERS, "providers")
    args.modes = parse_list(args.modes, MODES, "modes")
    args.seqlens_spec = args.seqlens or ("64..256" if dry else "1k..128k")
    args.seqlens = parse_seqlens(args.seqlens_spec)
    args.tokens = parse_count(args.tokens) if args.tokens else (512 if dry else 131072)
    args.heads = args.heads if args.heads is not None else (2 if dry else 32)
    args.dim = args.dim or (64 if dry else 128)
    args.vdim = args.vdim or args.dim
    args.verify_softmax_max_n = parse_count(args.verify_softmax_max_n)
    args.unavailable = parse_list(args.dry_run_unavailable, PROVIDERS, "dry-run-unavailable") \
        if args.dry_run_unavailable else []
    for n in args.seqlens:
        if args.tokens % n:
            raise UsageError(f"--tokens {args.tokens} is not a multiple of N = {n}")
    checks = [(args.heads >= 1, "--heads must be >= 1"), (args.repeat >= 1, "--repeat >= 1"),
              (args.min_samples >= 1, "--min-samples >= 1"),
              (args.max_samples >= args.min_samples, "--max-samples >= --min-samples"),
              (args.min_time >= 0 and args.timeout > 0, "--min-time >= 0, --timeout > 0"),
              (args.verify_heads >= 1, "--verify-heads >= 1"), (args.warmup >= 1, "--warmup >= 1"),
              (args.peak_bandwidth > 0, "--peak-bandwidth > 0")]
    for ok, what in checks:
        if not ok:
            raise UsageError(what)
    if dry:  # a few samples are enough to exercise the statistics; keeps the CPU test fast
        args.min_samples = min(args.min_samples, 3)
        args.max_samples = min(args.max_samples, 8)
        args.min_time = 0.0
        args.timeout = min(args.timeout, 0.5)
        args.warmup = 1
    return args


# ---------------------------------------------------------------------------------------------
# The C ABI (kernels/include/lightning/lightning.h), mirrored field by field


class LightningTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p),
                ("dtype", ctypes.c_int),      # lightning_dtype_t: a C enum, int-sized
                ("rank", ctypes.c_int32),
                ("shape", ctypes.c_int64 * 4),
                ("stride", ctypes.c_int64 * 4)]


class LightningFwdParams(ctypes.Structure):
    _fields_ = [("q", LightningTensor), ("k", LightningTensor), ("v", LightningTensor),
                ("o", LightningTensor),
                ("s", ctypes.c_void_p),       # const float*, device memory
                ("scale", ctypes.c_float),
                ("initial_state", LightningTensor), ("final_state", LightningTensor),
                ("workspace", ctypes.c_void_p), ("workspace_bytes", ctypes.c_size_t),
                ("flags", ctypes.c_uint32)]


class LightningBwdParams(ctypes.Structure):
    _fields_ = [("q", LightningTensor), ("k", LightningTensor), ("v", LightningTensor),
                ("dout", LightningTensor),
                ("s", ctypes.c_void_p),
                ("scale", ctypes.c_float),
                ("initial_state", LightningTensor), ("dfinal_state", LightningTensor),
                ("dq", LightningTensor), ("dk", LightningTensor), ("dv", LightningTensor),
                ("dinitial_state", LightningTensor),
                ("workspace", ctypes.c_void_p), ("workspace_bytes", ctypes.c_size_t),
                ("flags", ctypes.c_uint32)]


LIGHTNING_SUCCESS = 0
LIGHTNING_ERROR_SHAPE_MISMATCH = 3
LIGHTNING_ERROR_INVALID_SLOPE = 7
LIGHTNING_ERROR_MISALIGNED = 8
LIGHTNING_ERROR_CUDA = 11
LIGHTNING_ERROR_NOT_BUILT = 13
LIGHTNING_DTYPES = {"bf16": 0, "fp16": 1, "fp32": 2}
LIGHTNING_FLAG_SKIP_SLOPE_CHECK = 1


def abi_expectations():
    """'sizeof T' / 'offsetof T.field' -> the ctypes value, for every struct of the C ABI."""
    out = {}
    for cname, cls in (("lightning_tensor_t", LightningTensor),
                       ("lightning_fwd_params_t", LightningFwdParams),
                       ("lightning_bwd_params_t", LightningBwdParams)):
        out[f"sizeof {cname}"] = ctypes.sizeof(cls)
        for name, _ in cls._fields_:
            out[f"offsetof {cname}.{name}"] = getattr(cls, name).offset
    out["sizeof lightning_dtype_t"] = ctypes.sizeof(ctypes.c_int)
    out["sizeof lightning_status_t"] = ctypes.sizeof(ctypes.c_int)
    out["sizeof lightning_stream_t"] = ctypes.sizeof(ctypes.c_void_p)
    return out


class LightningLib:
    """liblightning.so through ctypes."""

    def __init__(self, path):
        self.path = path
        self.lib = ctypes.CDLL(path)
        L = self.lib
        fwd_p, bwd_p = ctypes.POINTER(LightningFwdParams), ctypes.POINTER(LightningBwdParams)
        sigs = {
            "lightning_status_string": (ctypes.c_char_p, [ctypes.c_int]),
            "lightning_last_error_message": (ctypes.c_char_p, []),
            "lightning_version": (ctypes.c_char_p, []),
            "lightning_fwd_params_init": (ctypes.c_int, [fwd_p]),
            "lightning_bwd_params_init": (ctypes.c_int, [bwd_p]),
            "lightning_forward_validate": (ctypes.c_int, [fwd_p, ctypes.POINTER(ctypes.c_float)]),
            "lightning_backward_validate": (ctypes.c_int, [bwd_p, ctypes.POINTER(ctypes.c_float)]),
            "lightning_forward_workspace_size": (ctypes.c_int,
                                                 [fwd_p, ctypes.POINTER(ctypes.c_size_t)]),
            "lightning_backward_workspace_size": (ctypes.c_int,
                                                  [bwd_p, ctypes.POINTER(ctypes.c_size_t)]),
            "lightning_forward": (ctypes.c_int, [fwd_p, ctypes.c_void_p]),
            "lightning_backward": (ctypes.c_int, [bwd_p, ctypes.c_void_p]),
        }
        for name, (res, argtypes) in sigs.items():
            fn = getattr(L, name)
            fn.restype, fn.argtypes = res, argtypes
        self.version = L.lightning_version().decode()

    def explain(self, status):
        name = self.lib.lightning_status_string(status).decode()
        msg = self.lib.lightning_last_error_message().decode()
        return f"{name}: {msg}" if msg else name

    def check(self, status, what):
        if status != LIGHTNING_SUCCESS:
            raise LightningError(status, f"{what}: {self.explain(status)}")

    def fwd_params(self):
        p = LightningFwdParams()
        self.check(self.lib.lightning_fwd_params_init(ctypes.byref(p)), "lightning_fwd_params_init")
        return p

    def bwd_params(self):
        p = LightningBwdParams()
        self.check(self.lib.lightning_bwd_params_init(ctypes.byref(p)), "lightning_bwd_params_init")
        return p

    @staticmethod
    def slopes_arg(values):
        return (ctypes.c_float * len(values))(*values) if values is not None else None


class LightningError(RuntimeError):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def set_tensor(t, data, dtype, shape, stride):
    """Fill a lightning_tensor_t: logical [B, H, N, X] with element strides per logical axis."""
    t.data = data
    t.dtype = LIGHTNING_DTYPES[dtype]
    t.rank = 4
    for i in range(4):
        t.shape[i] = int(shape[i])
        t.stride[i] = int(stride[i])


def logical_strides(layout, b, h, n, x):
    """Element strides of logical [B, H, N, X] for a contiguous buffer in `layout`."""
    if layout == "bhnd":
        return (h * n * x, n * x, x, 1)
    return (n * h * x, x, h * x, 1)  # bnhd: memory [B, N, H, X]


def forward_params(lib, dtype, q, k, v, o, s):
    """lightning_fwd_params_t over torch tensors: q, k, v, o logical [B, H, N, X] views whose
    strides (in elements, per logical axis) are exactly the C ABI's; s a float32 [H] tensor. The
    slope check is skipped in the call (the caller validates with the host slopes once)."""
    p = lib.fwd_params()
    for name, x in (("q", q), ("k", k), ("v", v), ("o", o)):
        set_tensor(getattr(p, name), x.data_ptr(), dtype, x.shape, x.stride())
    p.s = s.data_ptr()
    p.flags = LIGHTNING_FLAG_SKIP_SLOPE_CHECK
    return p


def backward_params(lib, dtype, q, k, v, do, dq, dk, dv, s):
    p = lib.bwd_params()
    for name, x in (("q", q), ("k", k), ("v", v), ("dout", do), ("dq", dq), ("dk", dk),
                    ("dv", dv)):
        set_tensor(getattr(p, name), x.data_ptr(), dtype, x.shape, x.stride())
    p.s = s.data_ptr()
    p.flags = LIGHTNING_FLAG_SKIP_SLOPE_CHECK
    return p


def check_abi(args):
    """--check-abi: ctypes sizes/offsets against the C compiler's, then the library's own view of
    the structs through init and validate (which touch no device memory)."""
    failures = []
    expect = abi_expectations()
    if args.abi_program:
        out = subprocess.run([args.abi_program], capture_output=True, text=True, check=False)
        if out.returncode != 0:
            die(f"{args.abi_program} exited with {out.returncode}: {out.stderr.strip()}")
        seen = {}
        for line in out.stdout.splitlines():
            if not line.strip():
                continue
            key, _, value = line.rpartition(" ")
            seen[key] = int(value)
        for key, value in sorted(seen.items()):
            if key not in expect:
                failures.append(f"the C side has '{key}' = {value}, the ctypes mirror does not")
            elif expect[key] != value:
                failures.append(f"{key}: C {value}, ctypes {expect[key]}")
        for key in sorted(set(expect) - set(seen)):
            failures.append(f"{key}: in the ctypes mirror, not printed by {args.abi_program}")
        print(f"compare_peers: {len(seen)} sizes and offsets compared with "
              f"{os.path.basename(args.abi_program)}")
    if args.lib:
        lib = LightningLib(args.lib)
        failures += check_library(lib)
        print(f"compare_peers: {args.lib} (lightning {lib.version}): init and validate checked")
    if not args.abi_program and not args.lib:
        die("--check-abi needs --abi-program and/or --lib")
    for f in failures:
        print(f"compare_peers: ABI MISMATCH: {f}")
    if failures:
        return 1
    print("compare_peers: the ctypes mirror matches the C ABI")
    return 0


def check_library(lib):
    """Cases whose status is known: a wrong offset anywhere would make one of them come back
    different. Pointers are fake but aligned: validate and workspace_size never dereference them;
    forward and backward are never called here."""
    failures = []
    b, h, n, d, e = 2, 3, 100, 64, 128
    p = lib.fwd_params()
    if p.scale != 1.0 or any(t.rank != 4 for t in (p.q, p.k, p.v, p.o, p.initial_state,
                                                   p.final_state)):
        failures.append("lightning_fwd_params_init: scale or a rank is not where ctypes reads it")
    if p.q.data or p.s or p.workspace or p.flags:
        failures.append("lightning_fwd_params_init: a field ctypes reads is not zero")
    q = lib.bwd_params()
    if q.scale != 1.0 or any(t.rank != 4 for t in (q.q, q.dout, q.dq, q.dk, q.dv,
                                                   q.dinitial_state)):
        failures.append("lightning_bwd_params_init: scale or a rank is not where ctypes reads it")

    base = 1 << 32

    def fill(layout):
        p = lib.fwd_params()
        for i, (name, x) in enumerate((("q", d), ("k", d), ("v", e), ("o", e))):
            set_tensor(getattr(p, name), base * (i + 1), "bf16", (b, h, n, x),
                       logical_strides(layout, b, h, n, x))
        p.s = base * 8
        return p

    slopes = LightningLib.slopes_arg([0.5] * h)

    def expect(status, want, what):
        if status != want:
            failures.append(f"{what}: got {lib.explain(status)}, want "
                            f"{lib.lib.lightning_status_string(want).decode()}")

    for layout in ("bhnd", "bnhd"):
        expect(lib.lib.lightning_forward_validate(ctypes.byref(fill(layout)), slopes),
               LIGHTNING_SUCCESS, f"forward_validate on a valid {layout} problem")
    p = fill("bhnd")
    p.v.shape[2] = n + 1
    expect(lib.lib.lightning_forward_validate(ctypes.byref(p), slopes),
           LIGHTNING_ERROR_SHAPE_MISMATCH, "forward_validate with v one token longer")
    p = fill("bhnd")
    p.o.data = base * 4 + 2
    expect(lib.lib.lightning_forward_validate(ctypes.byref(p), slopes),
           LIGHTNING_ERROR_MISALIGNED, "forward_validate with o misaligned")
    expect(lib.lib.lightning_forward_validate(ctypes.byref(fill("bhnd")),
                                              LightningLib.slopes_arg([0.5, -1.0, 0.5])),
           LIGHTNING_ERROR_INVALID_SLOPE, "forward_validate with s[1] = -1")
    p = fill("bnhd")
    p.scale = float("nan")
    status = lib.lib.lightning_forward_validate(ctypes.byref(p), slopes)
    if status == LIGHTNING_SUCCESS:
        failures.append("forward_validate accepted scale = NaN: scale is not where ctypes "
                        "writes it")
    msg = lib.lib.lightning_last_error_message().decode()
    if "scale" not in msg:
        failures.append(f"the message for scale = NaN does not name scale: '{msg}'")
    size = ctypes.c_size_t(0)
    status = lib.lib.lightning_forward_workspace_size(ctypes.byref(fill("bhnd")),
                                                      ctypes.byref(size))
    if status not in (LIGHTNING_SUCCESS, LIGHTNING_ERROR_CUDA):  # CUDA build without a GPU
        failures.append(f"forward_workspace_size: {lib.explain(status)}")
    # The backward's struct: a valid problem, then dq with the wrong head dim.
    bw = lib.bwd_params()
    for i, (name, x) in enumerate((("q", d), ("k", d), ("v", e), ("dout", e), ("dq", d),
                                   ("dk", d), ("dv", e))):
        set_tensor(getattr(bw, name), base * (i + 1), "bf16", (b, h, n, x),
                   logical_strides("bnhd", b, h, n, x))
    bw.s = base * 9
    expect(lib.lib.lightning_backward_validate(ctypes.byref(bw), slopes), LIGHTNING_SUCCESS,
           "backward_validate on a valid problem")
    bw.dv.shape[3] = d if d != e else 64
    status = lib.lib.lightning_backward_validate(ctypes.byref(bw), slopes)
    if status == LIGHTNING_SUCCESS:
        failures.append("backward_validate accepted dv with the wrong head dim")
    return failures


# ---------------------------------------------------------------------------------------------
# Statistics (the same as bench/src/stats.cpp)


def median_ci(values, level=0.95):
    """(median, lo, hi, coverage): distribution-free order-statistic interval of the median."""
    xs = sorted(values)
    n = len(xs)
    med = statistics.median(xs)
    alpha_half = (1 - level) / 2
    k, cdf = 0, 0.0
    for j in range(n // 2 + 1):
        nxt = cdf + math.exp(log_binomial_half(n, j))
        if nxt > alpha_half:
            break
        cdf, k = nxt, j + 1
    if k < 1:
        return med, xs[0], xs[-1], 1 - 2 * math.exp(log_binomial_half(n, 0))
    return med, xs[k - 1], xs[n - k], 1 - 2 * cdf


def log_binomial_half(n, j):
    return math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1) - n * math.log(2)


def relative_median_se(values):
    if len(values) < 2:
        return math.inf
    m = statistics.median(values)
    mad = statistics.median(abs(v - m) for v in values)
    if not m > 0:
        return math.inf
    return 1.2533141373155003 * 1.4826 * mad / math.sqrt(len(values)) / m


def _betacf(a, b, x):
    qab, qap, qam = a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > 1e-300 else 1e-300)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > 1e-300 else 1e-300)
        c = 1 + aa / c if abs(1 + aa / c) > 1e-300 else 1e-300
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > 1e-300 else 1e-300)
        c = 1 + aa / c if abs(1 + aa / c) > 1e-300 else 1e-300
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return h


def _inc_beta(a, b, x):
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    lbeta = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    front = math.exp(lbeta + a * math.log(x) + b * math.log(1 - x))
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1 - front * _betacf(b, a, 1 - x) / b


def student_t_cdf(t, df):
    tail = 0.5 * _inc_beta(df / 2, 0.5, df / (df + t * t))
    return 1 - tail if t >= 0 else tail


def student_t_quantile(p, df):
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -student_t_quantile(1 - p, df)
    lo, hi = 0.0, 16.0
    while student_t_cdf(hi, df) < p and hi < 1e12:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if student_t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return (lo + hi) / 2


def fit_line(x, y):
    """(slope, se, lo, hi, df) of the least-squares line y = a + slope x, 95% CI."""
    n = len(x)
    df = n - 2
    if n < 2:
        return None, None, None, None, df
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((xi - mx) ** 2 for xi in x)
    sxy = sum((xi - mx) * (yi - my) for xi, yi in zip(x, y))
    if not sxx > 0:
        return None, None, None, None, df
    slope = sxy / sxx
    icpt = my - slope * mx
    if df < 1:
        return slope, None, None, None, df
    ssr = sum((yi - icpt - slope * xi) ** 2 for xi, yi in zip(x, y))
    se = math.sqrt(ssr / df / sxx)
    t = student_t_quantile(0.975, df)
    return slope, se, slope - t * se, slope + t * se, df




def verdict_for(provider, mode, points, seqlens_planned):
    """summary.verdicts[] entry: bench/src/result.cpp's compute_verdicts for one line."""
    ok = [p for p in points if p["status"] == "ok"]
    by_n = {}
    x, y = [], []
    for p in ok:
        tps = p["throughput"]["tokens_per_s"]
        if tps > 0 and math.isfinite(tps):
            by_n.setdefault(p["seqlen"], []).append(tps)
            x.append(math.log2(p["seqlen"]))
            y.append(math.log2(tps))
    seqlens = sorted(by_n)
    medians = [statistics.median(by_n[n]) for n in seqlens]
    slope, se, lo, hi, df = fit_line(x, y)
    ratio = max(medians) / min(medians) if medians else None
    if len(seqlens) < 3:
        verdict, reason = "N/A", f"fewer than 3 sequence lengths finished ({len(seqlens)})"
    else:
        ratio_ok = ratio <= CRITERIA["max_min_ratio"]
        slope_ok = lo is not None and lo >= -CRITERIA["slope_bound"] and \
            hi <= CRITERIA["slope_bound"]
        verdict = "PASS" if ratio_ok and slope_ok else "FAIL"
        ci = f"[{lo:+.4f}, {hi:+.4f}]" if lo is not None else "[n/a]"
        reason = (f"max/min {ratio:.3f} ({'<=' if ratio_ok else '>'} "
                  f"{CRITERIA['max_min_ratio']:.2f}), slope {slope:+.4f} per doubling, 95% CI "
                  f"{ci} ({'within' if slope_ok else 'not within'} "
                  f"+-{CRITERIA['slope_bound']:.2f})")
    mem = [p["memory"]["peak_bytes"] for p in ok if p["memory"]["peak_bytes"] is not None]
    skipped = sum(p["status"] == "skipped" for p in points)
    failed = sum(p["status"] == "failed" for p in points)
    line = (f"{verdict} {provider} {mode}: {reason} [{len(seqlens)} of {len(seqlens_planned)} "
            f"lengths")
    if seqlens:
        line += f", {fmt_count(seqlens[0])}..{fmt_count(seqlens[-1])}"
    if mem:
        line += f", peak memory {fmt_bytes(max(mem))}, max/min {max(mem) / min(mem):.2f}"
    if skipped:
        line += f", {skipped} skipped"
    if failed:
        line += f", {failed} failed"
    line += "]"
    return {"provider": provider, "mode": mode, "verdict": verdict, "reason": reason,
            "line": line, "seqlens": seqlens, "median_tokens_per_s": medians,
            "max_min_ratio": ratio, "slope": slope, "slope_ci95": [lo, hi], "slope_se": se,
            "slope_df": df, "samples": len(x), "points_ok": len(ok), "points_skipped": skipped,
            "points_failed": failed, "complete": len(seqlens) == len(seqlens_planned),
            "peak_bytes_max": max(mem) if mem else None,
            "peak_bytes_max_min_ratio": max(mem) / min(mem) if mem and min(mem) > 0 else None}


# ---------------------------------------------------------------------------------------------
# The work model (bench/src/model.cpp)


def model_work(family, mode, b, h, n, d, e, elem):
    fwd_bytes, bwd_bytes = (2 * d + 2 * e) * elem, (4 * d + 3 * e) * elem
    if family == "linear-blocked":
        fwd, bwd = 2 * MODEL_BLOCK * (d + e) + 4 * d * e, 2 * MODEL_BLOCK * (3 * d + 2 * e) + \
            10 * d * e
    elif family == "linear-recurrent":
        fwd, bwd = 4 * d * e, 10 * d * e
    else:
        fwd = 2 * (n + 1) / 2 * (d + e)
        bwd = 2.5 * fwd
    per = {"fwd": (fwd_bytes, fwd), "bwd": (bwd_bytes, bwd),
           "fwdbwd": (fwd_bytes + bwd_bytes, fwd + bwd)}[mode]
    token_heads = b * n * h
    return b * n, token_heads * per[0], token_heads * per[1]


MODEL_JSON = {
    "bytes": "minimum traffic per token per head: fwd (2D+2E), bwd (4D+3E), fwdbwd (6D+5E) "
             "elements of the storage dtype",
    "flops": {
        "linear-blocked": "linear-blocked: fwd 2*64*(D+E) + 4DE, bwd 2*64*(3D+2E) + 10DE per "
                          "token per head",
        "linear-recurrent": "linear-recurrent: fwd 4DE, bwd 10DE per token per head",
        "softmax": "softmax-causal: fwd (N+1)(D+E), bwd 2.5x fwd per token per head"},
    "block": MODEL_BLOCK,
    "tokens_per_s": "B * N / median time (all H heads)",
}


def alibi_slopes(h):
    return [2.0 ** (-8.0 * (i + 1) / h) for i in range(h)]


# ---------------------------------------------------------------------------------------------
# Environment


def utc_now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def run_text(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False,
                              cwd=ROOT).stdout.strip()
    except OSError:
        return ""


def project_version():
    try:
        with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
            m = re.search(r"project\(\s*lightning\s+VERSION\s+([0-9.]+)", f.read())
        return m.group(1) if m else "unknown"
    except OSError:
        return "unknown"


def tool_json(args, versions, lib):
    # A given sha wins: the tree may carry a .git that is not its own (a copy on a GPU machine).
    given = args.git_sha or os.environ.get("LIGHTNING_GIT_SHA")
    sha = None if given else run_text(["git", "rev-parse", "--short=12", "HEAD"])
    dirty = None
    if sha:
        source = "runtime"
        dirty = bool(run_text(["git", "status", "--porcelain", "--untracked-files=no"]))
    elif given:
        sha, source = given, "configure"
    else:
        sha, source = "unknown", "none"
    build_type = "unknown"
    if lib:
        cache = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(lib.path))),
                             "CMakeCache.txt")
        try:
            with open(cache) as f:
                m = re.search(r"^CMAKE_BUILD_TYPE:\w+=(.*)$", f.read(), re.MULTILINE)
            build_type = m.group(1) if m and m.group(1) else build_type
        except OSError:
            pass
    return {"name": "compare_peers", "version": project_version(), "git_sha": sha,
            "git_sha_source": source, "git_dirty": dirty, "build_type": build_type,
            "cuda_build": bool(lib) and not args.dry_run,
            "compiler": "; ".join(f"{k} {v}" for k, v in versions.items())}


def host_json():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        mem = float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        mem = None
    u = platform.uname()
    return {"hostname": socket.gethostname(), "os": f"{u.system} {u.release} {u.machine}",
            "cpu": cpu, "logical_cores": os.cpu_count() or 0, "memory_bytes": mem}


def device_json(torch, index):
    props = torch.cuda.get_device_properties(index)
    free, total = torch.cuda.mem_get_info(index)
    dev = {"index": index, "name": props.name, "sm_count": props.multi_processor_count,
           "compute_capability": f"{props.major}.{props.minor}",
           "l2_bytes": int(getattr(props, "L2_cache_size", 0) or 0), "total_bytes": int(total),
           "free_bytes": int(free), "sm_clock_max_mhz": 0.0, "mem_clock_max_mhz": 0.0,
           "mem_bus_width_bits": 0, "peak_bandwidth_gbps": 0.0, "driver_version": "unknown",
           "runtime_version": str(torch.version.cuda)}
    try:  # nvidia-ml-py: clocks, bus width and the driver (the image has it)
        import pynvml
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        dev["sm_clock_max_mhz"] = float(pynvml.nvmlDeviceGetMaxClockInfo(
            handle, pynvml.NVML_CLOCK_SM))
        dev["mem_clock_max_mhz"] = float(pynvml.nvmlDeviceGetMaxClockInfo(
            handle, pynvml.NVML_CLOCK_MEM))
        dev["mem_bus_width_bits"] = int(pynvml.nvmlDeviceGetMemoryBusWidth(handle))
        # Double data rate: two transfers per memory clock.
        dev["peak_bandwidth_gbps"] = dev["mem_clock_max_mhz"] * 1e6 * 2 * \
            dev["mem_bus_width_bits"] / 8 / 1e9
        v = pynvml.nvmlSystemGetCudaDriverVersion()
        dev["driver_version"] = f"{v // 1000}.{(v % 1000) // 10}"
    except Exception as e:  # noqa: BLE001 - any NVML trouble leaves zeros, and says so
        note(f"NVML unavailable ({type(e).__name__}: {e}); clocks and bus width recorded as 0")
    return dev


# ---------------------------------------------------------------------------------------------
# Providers


class Provider:
    """One implementation. prepare() returns a callable running one step of `mode` on the point's
    inputs; outputs(step) gives o (fwd) and dq, dk, dv (bwd modes) as [B, H, N, X] views."""

    name = ""
    family = "linear-blocked"
    gpu = True
    unavailable = None   # a reason, when the provider cannot run at all
    modes_unsupported = {}  # mode -> reason

    def describe(self):
        return self.name

    @staticmethod
    def host_bytes(inp, mode):
        """A dry run's memory figure: the step's inputs and outputs in the storage dtype."""
        per = inp.bnhd["q"].element_size() * inp.b * inp.h * inp.n
        return per * ((2 * inp.d + 2 * inp.e) if mode == "fwd" else (4 * inp.d + 4 * inp.e))


def import_peer(name, load):
    """(callable, version, None) or (None, None, reason)."""
    try:
        fn, version = load()
        return fn, version, None
    except Exception as e:  # noqa: BLE001 - ImportError, or anything a package raises on import
        msg = str(e).splitlines()[0] if str(e) else ""
        return None, None, f"{type(e).__name__}: {msg}"


def load_fla():
    from importlib.metadata import version
    from fla.ops.simple_gla import chunk_simple_gla
    return chunk_simple_gla, f"fla-core {version('fla-core')}"


def load_official():
    from importlib.metadata import version
    from lightning_attn.ops.triton.lightning_attn2 import lightning_attn2
    return lightning_attn2, f"lightning-attn {version('lightning-attn')}"


class Inputs:
    """The point's inputs, generated once and shared: q, k, v and dO in [B, N, H, X] memory
    (fla's layout), [B, H, N, X] contiguous copies, and s."""

    def __init__(self, torch, device, dtype, b, h, n, d, e, seed, slopes, need_do):
        self.torch = torch
        self.slopes = list(slopes)
        tdt = torch_dtype(torch, dtype)
        g = torch.Generator(device=device)
        g.manual_seed(seed)
        self.b, self.h, self.n, self.d, self.e = b, h, n, d, e

        def uniform(x):
            return torch.empty((b, n, h, x), dtype=tdt, device=device).uniform_(-1, 1,
                                                                                 generator=g)
        self.bnhd = {"q": uniform(d), "k": uniform(d), "v": uniform(e)}
        if need_do:
            self.bnhd["do"] = uniform(e)
        self.bhnd = {k: x.transpose(1, 2).contiguous() for k, x in self.bnhd.items()}
        self.s = torch.tensor(slopes, dtype=torch.float32, device=device)

    def view(self, name, layout):
        """Logical [B, H, N, X] view of the tensor stored in `layout`."""
        return self.bhnd[name] if layout == "bhnd" else self.bnhd[name].transpose(1, 2)

    def nbytes(self, names):
        return sum(self.bnhd[k].numel() * self.bnhd[k].element_size() for k in names)


def torch_dtype(torch, name):
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


def leaf(x):
    return x.detach().requires_grad_(True)


def clear_grads(*tensors):
    for t in tensors:
        t.grad = None


class FlaProvider(Provider):
    name, family = "fla-chunk-simple-gla", "linear-blocked"

    def __init__(self, fn, version):
        self.fn, self.version = fn, version

    def describe(self):
        return f"{self.name} ({self.version}: chunk_simple_gla(q, k, v, g_gamma=-s, scale=1.0), " \
               f"[B,N,H,D])"

    def prepare(self, inp, mode):
        g_gamma = -inp.s
        if mode == "fwd":
            q, k, v = (inp.bnhd[x] for x in "qkv")
            # o is [B, N, H, E]: handed back as the logical [B, H, N, E] view (no copy).
            return lambda: self.fn(q, k, v, g_gamma=g_gamma, scale=1.0)[0].transpose(1, 2)
        q, k, v = (leaf(inp.bnhd[x]) for x in "qkv")
        do = inp.bnhd["do"]

        def step():
            clear_grads(q, k, v)
            o = self.fn(q, k, v, g_gamma=g_gamma, scale=1.0)[0]
            o.backward(do)
            return o.transpose(1, 2)
        step.grads = lambda: tuple(t.grad.transpose(1, 2) for t in (q, k, v))
        step.clear = lambda: clear_grads(q, k, v)
        return step


class OfficialProvider(Provider):
    name, family = "official-lightning-attn2", "linear-blocked"

    def __init__(self, fn, version):
        self.fn, self.version = fn, version

    def describe(self):
        return f"{self.name} ({self.version}: lightning_attn2(q, k, v, s[H,1,1]), [B,H,N,D])"

    def prepare(self, inp, mode):
        s = inp.s.view(-1, 1, 1)
        if mode == "fwd":
            q, k, v = (inp.bhnd[x] for x in "qkv")
            return lambda: self.fn(q, k, v, s)
        q, k, v = (leaf(inp.bhnd[x]) for x in "qkv")
        do = inp.bhnd["do"]

        def step():
            clear_grads(q, k, v)
            o = self.fn(q, k, v, s)
            o.backward(do)
            return o
        step.grads = lambda: (q.grad, k.grad, v.grad)
        step.clear = lambda: clear_grads(q, k, v)
        return step


class SdpaProvider(Provider):
    name, family = "torch-sdpa", "softmax"

    def __init__(self, torch):
        self.torch = torch
        self.version = f"torch {torch.__version__}"

    def describe(self):
        return f"{self.name} ({self.version}: scaled_dot_product_attention(is_causal=True) on " \
               f"[B,H,N,D] views of [B,N,H,D])"

    def prepare(self, inp, mode):
        F = self.torch.nn.functional
        if mode == "fwd":
            q, k, v = (inp.view(x, "bnhd") for x in "qkv")
            return lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)
        qs, ks, vs = (leaf(inp.bnhd[x]) for x in "qkv")
        q, k, v = (t.transpose(1, 2) for t in (qs, ks, vs))
        do = inp.view("do", "bnhd")

        def step():
            clear_grads(qs, ks, vs)
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            o.backward(do)
            return o
        step.grads = lambda: tuple(t.grad.transpose(1, 2) for t in (qs, ks, vs))
        step.clear = lambda: clear_grads(qs, ks, vs)
        return step


class OursProvider(Provider):
    """This project's kernels through the C ABI, on the tensors' device pointers and torch's
    current stream."""

    name, family = "lightning", "linear-blocked"

    def __init__(self, torch, lib, layout, dtype):
        self.torch, self.lib, self.layout, self.dtype = torch, lib, layout, dtype
        self.version = f"liblightning {lib.version}"
        self.modes_unsupported = {}
        self._function = None

    def describe(self):
        return f"{self.name} ({self.version} via ctypes, {self.lib.path}, layout {self.layout})"

    def forward_params(self, q, k, v, o, s):
        return forward_params(self.lib, self.dtype, q, k, v, o, s)

    def workspace_for(self, p, query, what):
        size = ctypes.c_size_t(0)
        self.lib.check(query(ctypes.byref(p), ctypes.byref(size)), what)
        ws = self.torch.empty(max(int(size.value), 1), dtype=self.torch.uint8, device="cuda")
        p.workspace, p.workspace_bytes = ws.data_ptr(), int(size.value)
        return ws

    def run_forward(self, q, k, v, s, s_host):
        """o = forward(q, k, v), o in self.layout; validated with s_host first."""
        o = self.empty_like_layout(v)
        p = self.forward_params(q, k, v, o, s)
        self.lib.check(self.lib.lib.lightning_forward_validate(
            ctypes.byref(p), LightningLib.slopes_arg(s_host)), "lightning_forward_validate")
        ws = self.workspace_for(p, self.lib.lib.lightning_forward_workspace_size,
                                "lightning_forward_workspace_size")
        stream = self.torch.cuda.current_stream().cuda_stream
        self.lib.check(self.lib.lib.lightning_forward(ctypes.byref(p), stream),
                       "lightning_forward")
        del ws  # the caching allocator keeps it alive until the stream has used it
        return o

    def run_backward(self, q, k, v, do, s, s_host):
        dq, dk, dv = (self.empty_like_layout(x) for x in (q, k, v))
        p = backward_params(self.lib, self.dtype, q, k, v, do, dq, dk, dv, s)
        self.lib.check(self.lib.lib.lightning_backward_validate(
            ctypes.byref(p), LightningLib.slopes_arg(s_host)), "lightning_backward_validate")
        ws = self.workspace_for(p, self.lib.lib.lightning_backward_workspace_size,
                                "lightning_backward_workspace_size")
        stream = self.torch.cuda.current_stream().cuda_stream
        self.lib.check(self.lib.lib.lightning_backward(ctypes.byref(p), stream),
                       "lightning_backward")
        del ws
        return dq, dk, dv

    def empty_like_layout(self, x):
        """An empty logical [B, H, N, X] tensor stored in self.layout."""
        b, h, n, e = x.shape
        if self.layout == "bhnd":
            return self.torch.empty((b, h, n, e), dtype=x.dtype, device=x.device)
        return self.torch.empty((b, n, h, e), dtype=x.dtype, device=x.device).transpose(1, 2)

    def function(self):
        if self._function is None:
            torch, ours = self.torch, self

            class LightningAttention(torch.autograd.Function):
                @staticmethod
                def forward(ctx, q, k, v, s, s_host):
                    ctx.save_for_backward(q, k, v, s)
                    ctx.s_host = s_host
                    return ours.run_forward(q, k, v, s, s_host)

                @staticmethod
                def backward(ctx, do):
                    q, k, v, s = ctx.saved_tensors
                    if do.stride(-1) != 1:
                        do = do.contiguous()
                    dq, dk, dv = ours.run_backward(q, k, v, do, s, ctx.s_host)
                    return dq, dk, dv, None, None
            self._function = LightningAttention
        return self._function

    def probe_backward(self, inp_small, s_host):
        """Record why the backward modes cannot run, if they cannot (NOT_BUILT today)."""
        q, k, v, do = (inp_small.view(x, self.layout) for x in ("q", "k", "v", "do"))
        try:
            self.run_backward(q, k, v, do, inp_small.s, s_host)
            self.torch.cuda.synchronize()
        except LightningError as e:
            if e.status == LIGHTNING_ERROR_NOT_BUILT:
                reason = f"lightning: backward not implemented ({e})"
                self.modes_unsupported = {"bwd": reason, "fwdbwd": reason}
            else:  # a real failure: every backward point will try, fail and say why
                note(f"lightning: the backward failed on a small problem: {e}")

    def prepare(self, inp, mode):
        layout = self.layout
        q, k, v = (inp.view(x, layout) for x in "qkv")
        s_host = inp.slopes
        if mode == "fwd":
            o = self.empty_like_layout(v)
            o.fill_(float("nan"))  # an output the kernel never writes shows as NaN
            p = self.forward_params(q, k, v, o, inp.s)
            self.lib.check(self.lib.lib.lightning_forward_validate(
                ctypes.byref(p), LightningLib.slopes_arg(s_host)), "lightning_forward_validate")
            ws = self.workspace_for(p, self.lib.lib.lightning_forward_workspace_size,
                                    "lightning_forward_workspace_size")
            fwd, byref = self.lib.lib.lightning_forward, ctypes.byref(p)
            stream = self.torch.cuda.current_stream().cuda_stream

            def step():
                status = fwd(byref, stream)
                if status:
                    self.lib.check(status, "lightning_forward")
                return o
            step.keep = (p, ws, o)  # alive as long as the step
            return step
        fn = self.function()
        ql, kl, vl = (leaf(x) for x in (q, k, v))
        do = inp.view("do", layout)

        def step():
            clear_grads(ql, kl, vl)
            o = fn.apply(ql, kl, vl, inp.s, s_host)
            o.backward(do)
            return o
        step.grads = lambda: (ql.grad, kl.grad, vl.grad)
        step.clear = lambda: clear_grads(ql, kl, vl)
        return step


# ---------------------------------------------------------------------------------------------
# Float64 references and the verification rules (DESIGN.md section 5)


def linear_reference(torch, q, k, v, s, chunk=256):
    """o for G heads: q, k [G, N, D], v [G, N, E], s [G]; exact blocked form, differentiable.
    o_t = lambda^(i+1) q_t S_in + sum_{j<=i} lambda^(i-j) (q_t . k_j) v_j within a chunk."""
    G, N, D = q.shape
    E = v.shape[-1]
    C = min(chunk, max(1, N))
    nc = -(-N // C)
    pad = nc * C - N
    if pad:
        zq = q.new_zeros(G, pad, D)
        q, k = torch.cat([q, zq], 1), torch.cat([k, zq], 1)
        v = torch.cat([v, v.new_zeros(G, pad, E)], 1)
    qc, kc, vc = q.view(G, nc, C, D), k.view(G, nc, C, D), v.view(G, nc, C, E)
    i = torch.arange(C, device=q.device, dtype=q.dtype)
    log_lam = -s.to(q.dtype).view(G, 1, 1)
    diff = i.view(C, 1) - i.view(1, C)
    mask = torch.where(diff >= 0, torch.exp(log_lam * diff.clamp(min=0)),
                       torch.zeros((), dtype=q.dtype, device=q.device))      # [G, C, C]
    o = (qc @ kc.transpose(-1, -2) * mask.unsqueeze(1)) @ vc               # [G, nc, C, E]
    k_decay = torch.exp(log_lam * (C - 1 - i).view(1, C)).view(G, 1, C, 1)
    local = (kc * k_decay).transpose(-1, -2) @ vc                          # [G, nc, D, E]
    lam_c = torch.exp(log_lam * C).view(G, 1, 1)
    state = q.new_zeros(G, D, E)
    incoming = []
    for c in range(nc):
        incoming.append(state)
        state = lam_c * state + local[:, c]
    q_decay = torch.exp(log_lam * (i + 1).view(1, C)).view(G, 1, C, 1)
    o = o + (qc * q_decay) @ torch.stack(incoming, 1)
    return o.reshape(G, nc * C, E)[:, :N]


def recurrent_reference(torch, q, k, v, s):
    """The recurrence itself, token by token: S_t = lambda S_{t-1} + k_t^T v_t, o_t = q_t S_t.
    Slow (N steps); the check that the blocked form above is right."""
    G, N, D = q.shape
    lam = torch.exp(-s.to(q.dtype)).view(G, 1, 1)
    state = q.new_zeros(G, D, v.shape[-1])
    out = []
    for t in range(N):
        state = lam * state + k[:, t, :, None] * v[:, t, None, :]
        out.append((q[:, t, :, None] * state).sum(1))
    return torch.stack(out, 1)


def softmax_reference(torch, q, k, v):
    """Causal softmax attention with scale 1/sqrt(D), q, k, v [G, N, X] (math in q's dtype)."""
    return torch.nn.functional.scaled_dot_product_attention(
        q.unsqueeze(0), k.unsqueeze(0), v.unsqueeze(0), is_causal=True).squeeze(0)


class Reference:
    """float64 truth and the storage-dtype baseline (fp32 math, rounded) for the verified heads
    of one point, forward and (when asked) gradients for dO."""

    def __init__(self, torch, inp, heads, dtype, softmax, grads):
        self.torch, self.heads, self.dtype = torch, heads, dtype
        self.softmax = softmax
        tdt = torch_dtype(torch, dtype)
        pick = [(b, h) for b, h in heads]

        def gather(name, precision):
            x = inp.bhnd[name]
            return torch.stack([x[b, h] for b, h in pick]).to(precision)
        s = torch.stack([inp.s[h] for _, h in pick])
        self.ref, self.base = {}, {}
        for precision, out in ((torch.float64, self.ref), (torch.float32, self.base)):
            q, k, v = (gather(x, precision) for x in "qkv")
            if grads:
                q, k, v = (t.requires_grad_(True) for t in (q, k, v))
            o = softmax_reference(torch, q, k, v) if softmax else \
                linear_reference(torch, q, k, v, s.to(precision))
            out["o"] = o.detach()
            if grads:
                do = gather("do", precision)
                out["dq"], out["dk"], out["dv"] = (g.detach() for g in torch.autograd.grad(
                    o, (q, k, v), do))
        for key, x in self.base.items():  # the baseline stores in the storage dtype
            self.base[key] = x.to(tdt).to(torch.float64)

    def check(self, name, got_heads, gradient):
        """DESIGN.md section 5, rules 1 and 2, for one tensor over the verified heads."""
        torch = self.torch
        tdt = torch_dtype(torch, self.dtype)
        ref, base = self.ref[name], self.base[name]
        got = got_heads.detach().to(torch.float64)
        nan = int((~torch.isfinite(got)).sum())
        diff = (got - ref).abs()
        diff = torch.where(torch.isfinite(diff), diff, torch.zeros_like(diff))
        max_abs = float(diff.max())
        base_max = float((base - ref).abs().max())

        def rnd(x):
            return x.to(tdt).to(torch.float64)
        slack = 2 * float((rnd(rnd(ref + 0.3) - 0.3) - rnd(ref)).abs().max())
        limit = (3.0 if gradient else 2.0) * base_max + slack
        rel = float(torch.linalg.vector_norm(got.nan_to_num() - ref) /
                    (torch.linalg.vector_norm(ref) + 1e-8))
        rel_limit = 1e-5 if self.dtype == "fp32" else 5e-3
        ok = nan == 0 and max_abs <= limit and rel < rel_limit
        msg = (f"{name}: {'ok' if ok else 'FAILED'} max_abs {max_abs:.6g} (limit {limit:.6g}, "
               f"baseline {base_max:.6g}) rel_l2 {rel:.6g} (limit {rel_limit:g})"
               + (f", {nan} non-finite" if nan else ""))
        return {"name": name, "pass": ok, "max_abs": max_abs, "max_abs_limit": limit,
                "baseline_max_abs": base_max, "rel_l2": rel, "rel_l2_limit": rel_limit,
                "nan_count": nan, "message": msg}


def head_rows(x, heads):
    """Rows of the verified heads from a logical [B, H, N, X] tensor: [G, N, X]."""
    import torch
    return torch.stack([x[b, h] for b, h in heads])


# ---------------------------------------------------------------------------------------------
# Timing


class LaunchHold:
    """How long the stream is held busy before each sample's start event (NVBench's blocking
    kernel, as a fixed spin): long enough that the host has enqueued the start event, the call and
    the end event before the GPU reaches them, so that a sample times the GPU's work and not the
    host's part of the call (Python, ctypes, Triton's launcher). after_sample() judges one
    sample by how long the host took to enqueue it: within 80% of the hold it is kept; beyond, the
    GPU may have waited on the host, so the sample is run again with the hold doubled, up to
    max_ms, past which it is kept and counted as not hidden (a call that waits on the GPU itself
    cannot be hidden). Pure bookkeeping: the spin is Timer's."""

    MIN_MS = 0.5
    MAX_MS = 100.0
    MARGIN = 0.8

    def __init__(self, min_ms=MIN_MS, max_ms=MAX_MS):
        self.min_ms, self.max_ms = min_ms, max_ms
        self.hold_ms = min_ms
        self.redone = 0       # samples run again with a longer hold
        self.not_hidden = 0   # samples kept at max_ms although the host was slower
        self.longest_ms = min_ms

    def start_point(self, host_ms=None):
        """A new point: the hold restarts at the minimum, or at twice a call's host time seen in
        its warm-up."""
        want = 2 * host_ms if host_ms is not None else self.min_ms
        self.hold_ms = min(self.max_ms, max(self.min_ms, want))
        self.longest_ms = max(self.longest_ms, self.hold_ms)

    def after_sample(self, host_ms):
        """True: keep the sample. False: run it again (the hold has grown)."""
        if host_ms <= self.MARGIN * self.hold_ms:
            return True
        if self.hold_ms >= self.max_ms:
            self.not_hidden += 1
            return True
        self.redone += 1
        self.hold_ms = min(self.max_ms, max(2 * self.hold_ms, host_ms / self.MARGIN))
        self.longest_ms = max(self.longest_ms, self.hold_ms)
        return False

    def json(self, cycles_per_ms):
        return {"method": "torch.cuda._sleep before each sample's start event, the host's "
                          "enqueueing of the sample timed against it",
                "min_hold_ms": self.min_ms, "max_hold_ms": self.max_ms,
                "longest_hold_ms": self.longest_ms, "samples_redone": self.redone,
                "samples_not_hidden": self.not_hidden, "spin_cycles_per_ms": cycles_per_ms}


class Timer:
    """CUDA events per sample and a cleared L2 between samples; host clock in a dry run. With
    the launch hold (default on a GPU), a spin kernel between the clearing and the start event
    keeps the GPU busy while the host enqueues the sample (LaunchHold)."""

    def __init__(self, torch, cuda, hold=True, info=None):
        self.torch, self.cuda = torch, cuda
        self.flush = torch.empty(L2_FLUSH_BYTES, dtype=torch.uint8, device="cuda") if cuda \
            else None
        self.hold = LaunchHold() if cuda and hold else None
        self.info = info  # the report's environment.measurement: the hold's counts go there
        self.cycles_per_ms = self._calibrate() if self.hold else None
        self._publish()

    def _calibrate(self):
        """Spin cycles per millisecond of torch.cuda._sleep on this GPU (its clock), after a spin
        long enough for an idle GPU to raise its clock. The faster of two readings: were the
        clock lower later, a hold would only last longer than asked."""
        torch = self.torch
        torch.cuda._sleep(100_000_000)
        rates = []
        for _ in range(2):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            cycles = 20_000_000
            start.record()
            torch.cuda._sleep(cycles)
            end.record()
            end.synchronize()
            rates.append(cycles / start.elapsed_time(end))
        return max(rates)

    def _publish(self):
        if self.info is not None:
            self.info["launch_hold"] = self.hold.json(self.cycles_per_ms) if self.hold else None

    def sample_ms(self, step):
        torch = self.torch
        if not self.cuda:
            t0 = time.perf_counter()
            step()
            return (time.perf_counter() - t0) * 1e3
        while True:
            self.flush.zero_()  # outside the events: evicts the last sample's data from L2
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            if self.hold:
                torch.cuda._sleep(int(self.hold.hold_ms * self.cycles_per_ms))
            t0 = time.perf_counter()
            start.record()
            step()
            end.record()
            host_ms = (time.perf_counter() - t0) * 1e3
            end.synchronize()
            if not self.hold or self.hold.after_sample(host_ms):
                return start.elapsed_time(end)

    def measure(self, step, args, host_ms=None):
        if self.hold:
            self.hold.start_point(host_ms)
        samples, t0 = [], time.perf_counter()
        stop = "max-samples"
        while len(samples) < args.max_samples:
            samples.append(self.sample_ms(step))
            elapsed = time.perf_counter() - t0
            if elapsed > args.timeout and len(samples) >= 2:
                stop = "timeout"
                break
            if len(samples) >= args.min_samples and elapsed >= args.min_time and \
                    relative_median_se(samples) <= args.noise:
                stop = "converged"
                break
        self._publish()
        return samples, stop, time.perf_counter() - t0


def timing_json(samples, stop, wall_s, warmup_ms, cuda):
    med, lo, hi, cov = median_ci(samples)
    mean = statistics.fmean(samples)
    return {"timer": "events" if cuda else "host", "cache": "cold" if cuda else "host",
            "samples": len(samples), "median_ms": med, "ci95_ms": [lo, hi],
            "ci_coverage": cov, "mean_ms": mean,
            "stdev_ms": statistics.stdev(samples) if len(samples) > 1 else 0.0,
            "min_ms": min(samples), "max_ms": max(samples),
            "noise": relative_median_se(samples) if len(samples) > 1 else None,
            "stop_reason": stop, "warmup_ms": warmup_ms, "wall_s": wall_s,
            "discarded_throttled": 0, "reference_clock_mhz": None, "samples_ms": samples,
            "event_samples_ms": samples if cuda else [], "cupti_samples_ms": [],
            "sm_clock_mhz": [], "discarded_clock_mhz": []}


def throughput_json(family, mode, b, h, n, d, e, dtype, median_ms, ci_ms, peak_gbps):
    tokens, nbytes, flops = model_work(family, mode, b, h, n, d, e, DTYPE_BYTES[dtype])
    sec = median_ms / 1e3
    gbps = nbytes / sec / 1e9
    return {"tokens_per_s": tokens / sec,
            "tokens_per_s_ci95": [tokens / (ci_ms[1] / 1e3), tokens / (ci_ms[0] / 1e3)],
            "model_bytes": float(nbytes), "gb_per_s": gbps,
            "pct_peak_bandwidth": 100 * gbps / peak_gbps if peak_gbps else None,
            "model_flops": float(flops), "tflop_per_s": flops / sec / 1e12}


# ---------------------------------------------------------------------------------------------
# The report


class Report:
    def __init__(self, args, tool, environment, peers):
        self.path = args.json
        self.args = args
        planned = args.repeat * len(args.seqlens) * len(args.providers) * len(args.modes)
        self.doc = {
            "$schema": "https://lightning.invalid/reports/schema/report.schema.json",
            "schema": "lightning-bench-report", "schema_version": 1, "tool": tool,
            "command": {"argv": [sys.argv[0]] + list(args.argv)},
            "options": self.options_json(args), "environment": environment,
            "model": MODEL_JSON, "criteria": CRITERIA, "started_at": utc_now(),
            "updated_at": utc_now(), "finished_at": None, "status": "running",
            "points_planned": planned, "points": [],
            "summary": {"counts": {}, "verdicts": []},
            # Beyond lightning-bench's fields (the schema allows them at the top level):
            "peers": peers, "cross_check": None, "dry_run": bool(args.dry_run),
        }
        self.write()

    @staticmethod
    def options_json(a):
        return {"seqlens_spec": a.seqlens_spec, "seqlens": a.seqlens, "tokens": a.tokens,
                "batch": None, "heads": a.heads, "dim": a.dim, "vdim": a.vdim, "dtype": a.dtype,
                "layout": a.layout, "decay": "alibi", "slopes": alibi_slopes(a.heads),
                "scale": 1.0, "providers": a.providers, "modes": a.modes,
                "cache": "cold", "min_samples": a.min_samples, "max_samples": a.max_samples,
                "min_time_s": a.min_time, "noise": a.noise, "timeout_s": a.timeout,
                "throttle": 0.0, "timer": "events", "profile": False, "device": a.device,
                "seed": a.seed, "peak_bandwidth_gbps": a.peak_bandwidth, "verify": a.verify,
                "verify_heads": a.verify_heads, "verify_budget_gflop": 0.0, "repeat": a.repeat,
                "json": a.json, "cpu_defaults": bool(a.dry_run)}

    def add(self, point):
        point["index"] = len(self.doc["points"])
        self.doc["points"].append(point)
        self.summarize()
        self.write()

    def summarize(self):
        pts = self.doc["points"]
        self.doc["summary"]["counts"] = {
            "points": len(pts), "ok": sum(p["status"] == "ok" for p in pts),
            "skipped": sum(p["status"] == "skipped" for p in pts),
            "failed": sum(p["status"] == "failed" for p in pts),
            "verification_failed": sum((p["verification"] or {}).get("status") == "failed"
                                       for p in pts),
            "throttled_samples_discarded": 0}
        verdicts = []
        for provider in self.args.providers:
            for mode in self.args.modes:
                mine = [p for p in pts if p["provider"] == provider and p["mode"] == mode]
                if mine:
                    verdicts.append(verdict_for(provider, mode, mine, self.args.seqlens))
        self.doc["summary"]["verdicts"] = verdicts

    def finish(self, status):
        self.doc["status"] = status
        self.doc["finished_at"] = utc_now() if status == "complete" else None
        self.summarize()
        self.write()

    def write(self):
        self.doc["updated_at"] = utc_now()
        finite(self.doc)
        tmp = f"{self.path}.tmp.{os.getpid()}"
        d = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(d, exist_ok=True)
        with open(tmp, "w") as f:
            json.dump(self.doc, f, indent=1, allow_nan=False)
            f.write("\n")
        os.replace(tmp, self.path)


def finite(node):
    """JSON has no NaN or infinity: such numbers (a NaN error of a broken output, say) become
    null in place, which the schema allows wherever a number may be missing."""
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, list) else ()
    for key, value in items:
        if isinstance(value, float) and not math.isfinite(value):
            node[key] = None
        elif isinstance(value, (dict, list)):
            finite(value)


def base_point(provider, mode, n, b, repeat, gpu):
    return {"index": 0, "repeat": repeat, "provider": provider.name, "family": provider.family,
            "gpu": gpu, "mode": mode, "seqlen": n, "batch": b, "tokens": b * n,
            "status": "ok", "reason": None, "started_at": utc_now(), "elapsed_s": None,
            "timing": None, "throughput": None,
            "memory": {"peak_bytes": None, "source": None}, "verification": None}


def skipped(point, reason, status="skipped"):
    point.update(status=status, reason=reason, timing=None, throughput=None, verification=None)
    return point


# ---------------------------------------------------------------------------------------------
# The real sweep (a GPU and torch)


def choose_heads(b, h, count, seed):
    """(0, 0), (B-1, H-1), then random distinct ones, as lightning-bench does."""
    total = b * h
    if count >= total:
        return [(i, j) for i in range(b) for j in range(h)]
    out, taken = [], set()
    rng = random.Random(seed)
    for flat in [0, total - 1] + [rng.randrange(total) for _ in range(64 * count)]:
        if len(out) >= count:
            break
        if flat not in taken:
            taken.add(flat)
            out.append((flat // h, flat % h))
    return out


def load_providers(args, torch, cuda):
    """Provider objects in --providers order; the unavailable ones carry the reason."""
    providers, peers, lib = [], {}, None
    for name in args.providers:
        if args.dry_run:
            if name == "lightning" and args.lib and lib is None:
                lib = LightningLib(args.lib)
            prov = dry_run_provider(name, args, torch, lib)
            prov.gpu = False
            if name in args.unavailable:
                prov.unavailable = f"peer: {name} could not be imported (simulated by " \
                                   f"--dry-run-unavailable)"
            providers.append(prov)
            peers[name] = {"available": prov.unavailable is None, "what": prov.describe(),
                           "reason": prov.unavailable}
            continue
        if name == "lightning":
            path = args.lib or os.path.join(ROOT, "build", "release", "kernels", "liblightning.so")
            try:
                lib = LightningLib(path)
                prov = OursProvider(torch, lib, args.layout, args.dtype)
            except (OSError, AttributeError) as e:  # missing file, or a symbol missing in it
                prov = Provider()
                prov.name, prov.family = name, FAMILIES[name]
                prov.unavailable = f"lightning: cannot load {path}: {e}"
        elif name == "fla-chunk-simple-gla":
            fn, version, why = import_peer(name, load_fla)
            prov = FlaProvider(fn, version) if fn else None
        elif name == "official-lightning-attn2":
            fn, version, why = import_peer(name, load_official)
            prov = OfficialProvider(fn, version) if fn else None
        else:
            prov = SdpaProvider(torch)
        if prov is None:
            prov = Provider()
            prov.name, prov.family = name, FAMILIES[name]
            prov.unavailable = f"peer: {name} could not be imported ({why})"
        providers.append(prov)
        peers[name] = {"available": prov.unavailable is None,
                       "what": prov.describe() if prov.unavailable is None else name,
                       "reason": prov.unavailable}
    for prov in providers:
        if prov.unavailable:
            note(f"NOT MEASURED: {prov.unavailable}; going on without it")
        else:
            note(f"provider {prov.describe()}")
    return providers, peers, lib


def cross_check(args, torch, providers, device):
    """All linear providers on one small ragged shape against float64 and each other."""
    h = min(args.heads, 4)
    b, n = 2, 1000
    slopes = alibi_slopes(args.heads)[:h]
    want_grads = any(m != "fwd" for m in args.modes)
    inp = Inputs(torch, device, args.dtype, b, h, n, args.dim, args.vdim, args.seed + 7, slopes,
                 need_do=True)
    heads = [(i, j) for i in range(b) for j in range(h)]
    ref = Reference(torch, inp, heads, args.dtype, softmax=False, grads=want_grads)
    # DESIGN.md section 5, rule 3: the references agree with each other first.
    q, k, v = (torch.stack([inp.bhnd[x][0, j] for j in range(h)]).double() for x in "qkv")
    slow = recurrent_reference(torch, q, k, v, inp.s.double())
    fast = linear_reference(torch, q, k, v, inp.s.double())
    ref_rel = float(torch.linalg.vector_norm(fast - slow) / torch.linalg.vector_norm(slow))
    if not ref_rel < 1e-10:
        raise RuntimeError(f"the float64 references disagree: blocked against recurrence "
                           f"rel_l2 {ref_rel:.3g} (> 1e-10)")
    outs, result = {}, {"shape": {"b": b, "h": h, "n": n, "d": args.dim, "e": args.vdim},
                        "references_rel_l2": ref_rel, "against_float64": {},
                        "pairwise_rel_l2": {}, "agree": True}
    for prov in providers:
        if prov.unavailable or prov.family == "softmax":
            continue
        got = {}
        try:
            step = prov.prepare(inp, "fwd")
            got["o"] = head_rows(step(), heads)
            if want_grads and "fwdbwd" not in prov.modes_unsupported:
                step = prov.prepare(inp, "fwdbwd")
                step()
                for name, g in zip(("dq", "dk", "dv"), step.grads()):
                    got[name] = head_rows(g, heads)
        except Exception as e:  # noqa: BLE001 - a provider that breaks is reported, not fatal
            result["against_float64"][prov.name] = {"error": f"{type(e).__name__}: {e}"}
            result["agree"] = False
            note(f"cross-check: {prov.name} FAILED to run: {type(e).__name__}: {e}")
            continue
        outs[prov.name] = got
        checks = {name: ref.check(name, x, name != "o") for name, x in got.items()}
        result["against_float64"][prov.name] = {k: {"rel_l2": c["rel_l2"], "pass": c["pass"]}
                                                for k, c in checks.items()}
        result["agree"] &= all(c["pass"] for c in checks.values())
    names = list(outs)
    for i, a in enumerate(names):
        for bname in names[i + 1:]:
            for t in ("o", "dq", "dk", "dv"):
                if t in outs[a] and t in outs[bname]:
                    x, y = outs[a][t].double(), outs[bname][t].double()
                    rel = float(torch.linalg.vector_norm(x - y) /
                                (torch.linalg.vector_norm(y) + 1e-8))
                    result["pairwise_rel_l2"][f"{a} vs {bname}: {t}"] = rel
    print(f"compare_peers: cross-check on B={b} H={h} N={n} D={args.dim} E={args.vdim} "
          f"{args.dtype} (rel_l2; limit 5e-3 against float64; the float64 blocked reference "
          f"against the recurrence: {ref_rel:.1e}):")
    for name, checks in result["against_float64"].items():
        if "error" in checks:
            print(f"  {name}: error: {checks['error']}")
            continue
        cells = ", ".join(f"{t} {c['rel_l2']:.2e}{'' if c['pass'] else ' DISAGREES'}"
                          for t, c in checks.items())
        print(f"  {name} vs float64: {cells}")
    for key, rel in result["pairwise_rel_l2"].items():
        print(f"  {key} {rel:.2e}")
    if not result["agree"]:
        note("CROSS-CHECK FAILED: a linear provider disagrees with float64 or did not run "
             "(see above); the sweep goes on and verifies every point")
    return result


def run_sweep(args, torch, providers, report, cuda):
    device = "cuda" if cuda else "cpu"
    timer = Timer(torch, cuda, hold=args.launch_hold,
                  info=report.doc["environment"]["measurement"])
    slopes = alibi_slopes(args.heads)
    for repeat in range(args.repeat):
        for n in args.seqlens:
            b = args.tokens // n
            heads = choose_heads(b, args.heads, args.verify_heads, args.seed)
            inp = None
            refs = {}
            try:
                inp = Inputs(torch, device, args.dtype, b, args.heads, n, args.dim, args.vdim,
                             args.seed + repeat * 1000 + n, slopes,
                             need_do=any(m != "fwd" for m in args.modes))
            except Exception as e:  # noqa: BLE001 - inputs that do not fit skip the length
                reason = oom_reason(torch, e)
                for prov in providers:
                    for mode in args.modes:
                        report.add(skipped(base_point(prov, mode, n, b, repeat, cuda), reason))
                continue
            for prov in providers:
                for mode in args.modes:
                    point = base_point(prov, mode, n, b, repeat, cuda and prov.gpu)
                    t0 = time.perf_counter()
                    run_point(args, torch, prov, mode, inp, heads, refs, timer, point, cuda)
                    point["elapsed_s"] = time.perf_counter() - t0
                    report.add(point)
                    print(progress_line(point), flush=True)
            del inp, refs
            if cuda:
                torch.cuda.empty_cache()


def oom_reason(torch, e):
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    if isinstance(e, getattr(torch.cuda, "OutOfMemoryError", ())) or "out of memory" in text:
        return f"out of memory: {text}"
    return f"{type(e).__name__}: {text}"


def progress_line(p):
    head = f"{p['provider']:<25} {p['mode']:<6} N={fmt_count(p['seqlen']):>5}"
    if p["status"] != "ok":
        return f"{head} {p['status']}: {p['reason']}"
    t = p["throughput"]
    v = p["verification"]
    ver = f" verify {v['status']}" if v else ""
    return (f"{head} {t['tokens_per_s'] / 1e6:10.3f} Mtok/s  {p['timing']['median_ms']:9.3f} ms"
            f"  {t['gb_per_s']:8.1f} GB/s  peak {fmt_bytes(p['memory']['peak_bytes'] or 0)}"
            f"{ver}")


def run_point(args, torch, prov, mode, inp, heads, refs, timer, point, cuda):
    if prov.unavailable:
        return skipped(point, prov.unavailable)
    if mode in prov.modes_unsupported:
        return skipped(point, prov.modes_unsupported[mode])
    step = None
    try:
        if cuda:
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
        step = prov.prepare(inp, mode)
        t0 = time.perf_counter()
        for _ in range(args.warmup):   # Triton compiles and autotunes here
            out = step()
        if cuda:
            torch.cuda.synchronize()
        warmup_ms = (time.perf_counter() - t0) * 1e3 / args.warmup
        # Memory of one step, after the warm-up's autotuning: the allocator's peak beyond what
        # was there before (the warm-up's outputs and gradients dropped first), plus the inputs
        # the provider reads.
        out = None
        getattr(step, "clear", lambda: None)()
        host_ms = None
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            out = step()
            host_ms = (time.perf_counter() - t0) * 1e3  # the launch hold's first guess
            torch.cuda.synchronize()
            names = ("q", "k", "v") if mode == "fwd" else ("q", "k", "v", "do")
            point["memory"] = {"peak_bytes": int(torch.cuda.max_memory_allocated() - base +
                                                 inp.nbytes(names)),
                               "source": "tracking-allocator"}
        else:
            out = step()
            point["memory"] = {"peak_bytes": int(prov.host_bytes(inp, mode)),
                               "source": "host-buffers"}
        verification = None
        if args.verify:
            try:
                verification = verify_point(args, torch, prov, mode, inp, heads, refs, out, step)
            except Exception as e:  # noqa: BLE001 - the reference, not the provider, broke
                verification = {"status": "skipped", "reference": "", "baseline": "",
                                "heads": [list(h) for h in heads], "tensors": [],
                                "message": f"verification could not run: "
                                           f"{oom_reason(torch, e)}", "seconds": None}
                note(f"{prov.name} {mode} N={fmt_count(inp.n)}: {verification['message']}")
                refs.clear()
                if cuda:
                    torch.cuda.empty_cache()
        samples, stop, wall = timer.measure(step, args, host_ms)
    except Skip as e:
        return skipped(point, str(e))
    except Exception as e:  # noqa: BLE001 - one broken point must not end the sweep
        reason = oom_reason(torch, e)
        status = "skipped" if reason.startswith("out of memory") else "failed"
        note(f"{prov.name} {mode} N={fmt_count(inp.n)}: {reason}")
        return skipped(point, reason, status)
    finally:
        step = out = None
        if cuda:
            torch.cuda.empty_cache()
    point["timing"] = timing_json(samples, stop, wall, warmup_ms, cuda)
    point["throughput"] = throughput_json(prov.family, mode, inp.b, inp.h, inp.n, inp.d, inp.e,
                                          args.dtype, point["timing"]["median_ms"],
                                          point["timing"]["ci95_ms"],
                                          args.peak_bandwidth if cuda else None)
    point["verification"] = verification
    return point


def verify_point(args, torch, prov, mode, inp, heads, refs, out, step):
    softmax = prov.family == "softmax"
    grads = mode != "fwd"
    t0 = time.perf_counter()
    ref_name = "torch-fp64-softmax" if softmax else "torch-fp64-blocked"
    base_name = ("torch-fp32-softmax" if softmax else "torch-fp32-blocked") + \
        f"-rounded-{args.dtype}"
    verification = {"status": "skipped", "reference": ref_name, "baseline": base_name,
                    "heads": [list(h) for h in heads], "tensors": [], "message": "",
                    "seconds": None}
    if softmax and inp.n > args.verify_softmax_max_n:
        verification["message"] = (f"not verified: the float64 softmax reference is O(N^2), "
                                   f"N > --verify-softmax-max-n {args.verify_softmax_max_n}")
        return verification
    key = (softmax, grads)
    if key not in refs:
        # A fwdbwd reference also serves fwd (its o is the same).
        have = refs.get((softmax, True))
        refs[key] = have if have is not None else Reference(torch, inp, heads, args.dtype,
                                                            softmax, grads)
    ref = refs[key]
    tensors = []
    if mode in ("fwd", "fwdbwd"):
        tensors.append(ref.check("o", head_rows(out, heads), False))
    if grads:
        for name, g in zip(("dq", "dk", "dv"), step.grads()):
            tensors.append(ref.check(name, head_rows(g, heads), True))
    ok = all(t["pass"] for t in tensors)
    names = ", ".join(t["name"] for t in tensors)
    verification.update(
        status="passed" if ok else "failed", tensors=tensors, seconds=time.perf_counter() - t0,
        message=(f"{names} within rules 1 and 2 on {len(heads)} head(s) against {ref_name}" if ok
                 else "; ".join(t["message"] for t in tensors if not t["pass"])))
    return verification


# ---------------------------------------------------------------------------------------------
# Dry run: stand-ins for every provider


class StandIn(Provider):
    """A provider's place in a dry run. With torch (CPU): the linear ones compute the blocked form
    in float32 and store in the storage dtype; torch-sdpa runs the real SDPA on the CPU. For
    "lightning" with --lib, the C ABI's validate runs on the CPU tensors' pointers first (it
    touches no memory), so the struct filling from torch strides is exercised too. Without
    torch, run_synthetic() makes up timings from a fixed model."""

    def __init__(self, name, torch, lib=None, layout="bhnd", dtype="bf16"):
        self.name, self.family, self.torch = name, FAMILIES[name], torch
        self.lib, self.layout, self.dtype = lib, layout, dtype
        self.gpu = False
        self.unavailable = None
        self.modes_unsupported = {}

    def describe(self):
        what = "CPU torch" if self.torch else "synthetic numbers"
        if self.lib:
            what += f", C ABI validate through {self.lib.path}"
        return f"{self.name} (dry-run stand-in: {what})"

    def validate_abi(self, inp, mode):
        q, k, v = (inp.view(x, self.layout) for x in "qkv")
        o = self.torch.empty_like(inp.view("v", self.layout))
        lib, slopes = self.lib, LightningLib.slopes_arg(inp.slopes)
        p = forward_params(lib, self.dtype, q, k, v, o, inp.s)
        lib.check(lib.lib.lightning_forward_validate(ctypes.byref(p), slopes),
                  "lightning_forward_validate (dry run, CPU pointers)")
        if mode != "fwd":
            do = inp.view("do", self.layout)
            grads = [self.torch.empty_like(x) for x in (q, k, v)]
            p = backward_params(lib, self.dtype, q, k, v, do, *grads, inp.s)
            lib.check(lib.lib.lightning_backward_validate(ctypes.byref(p), slopes),
                      "lightning_backward_validate (dry run, CPU pointers)")

    def prepare(self, inp, mode):
        torch = self.torch
        if self.lib:
            self.validate_abi(inp, mode)
        B, H, N = inp.b, inp.h, inp.n
        tdt = inp.bhnd["q"].dtype
        s = inp.s.repeat(B)  # per (b, h), b major

        def compute(q, k, v):
            if self.family == "softmax":
                return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            o = linear_reference(torch, *(x.float().reshape(B * H, N, -1) for x in (q, k, v)), s)
            return o.reshape(B, H, N, -1).to(tdt)
        if mode == "fwd":
            q, k, v = (inp.bhnd[x] for x in "qkv")
            return lambda: compute(q, k, v)
        q, k, v = (leaf(inp.bhnd[x]) for x in "qkv")
        do = inp.bhnd["do"]

        def step():
            clear_grads(q, k, v)
            o = compute(q, k, v)
            o.backward(do)
            return o
        step.grads = lambda: (q.grad, k.grad, v.grad)
        step.clear = lambda: clear_grads(q, k, v)
        return step


def fake_chunk_simple_gla(torch):
    """fla-core's chunk_simple_gla as its docstring defines it (q, k [B, T, H, K], v [B, T, H, V],
    g_gamma [H] the log decay, scale), computed by the float32 blocked form on the CPU: a dry run
    drives the real FlaProvider through it, so a wrong layout or argument shows as an error."""
    def chunk_simple_gla(q, k, v, g=None, g_gamma=None, scale=None, **kwargs):
        assert g is None and g_gamma is not None and g_gamma.dim() == 1
        b, t, h, _ = q.shape
        scale = q.shape[-1] ** -0.5 if scale is None else scale

        def heads(x):
            return x.float().transpose(1, 2).reshape(b * h, t, -1)
        o = linear_reference(torch, heads(q) * scale, heads(k), heads(v),
                             (-g_gamma).float().repeat(b))
        return o.reshape(b, h, t, -1).transpose(1, 2).to(q.dtype), None
    return chunk_simple_gla


def fake_lightning_attn2(torch):
    """The official lightning_attn2(q, k, v, s) as its kernel reads them (q, k, v [B, H, N, X]
    contiguous, s[h] at offset h), float32 blocked form on the CPU."""
    def lightning_attn2(q, k, v, s):
        b, h, n, _ = q.shape
        assert s.numel() == h
        o = linear_reference(torch, *(x.float().reshape(b * h, n, -1) for x in (q, k, v)),
                             s.reshape(h).float().repeat(b))
        return o.reshape(b, h, n, -1).to(q.dtype)
    return lightning_attn2


def dry_run_provider(name, args, torch, lib):
    """With CPU torch: the real provider classes around CPU fakes of the peers' kernels, the real
    SDPA, and a stand-in for this project's kernel (whose C ABI validate still runs). Without
    torch: synthetic stand-ins."""
    if torch is None:
        return StandIn(name, None)
    if name == "lightning":
        return StandIn(name, torch, lib, args.layout, args.dtype)
    if name == "fla-chunk-simple-gla":
        return FlaProvider(fake_chunk_simple_gla(torch), "dry-run CPU fake of fla-core")
    if name == "official-lightning-attn2":
        return OfficialProvider(fake_lightning_attn2(torch), "dry-run CPU fake of lightning-attn")
    return SdpaProvider(torch)


def run_synthetic(args, providers, report):
    """No torch: made-up but plausible points, so the report, its schema and the plots can be
    exercised anywhere. Deterministic (seeded)."""
    rng = random.Random(args.seed)
    base_rate = {"lightning": 5e7, "fla-chunk-simple-gla": 4e7,
                 "official-lightning-attn2": 1.3e7, "torch-sdpa": 5e7}
    for repeat in range(args.repeat):
        for n in args.seqlens:
            b = args.tokens // n
            for prov in providers:
                for mode in args.modes:
                    point = base_point(prov, mode, n, b, repeat, False)
                    if prov.unavailable:
                        report.add(skipped(point, prov.unavailable))
                        continue
                    rate = base_rate[prov.name] / (1 if mode == "fwd" else 4)
                    if prov.family == "softmax":
                        rate *= 1024 / max(n, 1024)
                    tokens = b * n
                    med = tokens / rate * 1e3
                    samples = [med * (1 + 0.01 * rng.uniform(-1, 1)) for _ in range(12)]
                    stats = timing_json(samples, "converged", sum(samples) / 1e3, med, False)
                    point["timing"] = stats
                    point["throughput"] = throughput_json(
                        prov.family, mode, b, args.heads, n, args.dim, args.vdim, args.dtype,
                        stats["median_ms"], stats["ci95_ms"], None)
                    elem = DTYPE_BYTES[args.dtype]
                    point["memory"] = {"peak_bytes": tokens * args.heads * elem *
                                       (2 * args.dim + 2 * args.vdim),
                                       "source": "host-buffers"}
                    point["elapsed_s"] = stats["wall_s"]
                    report.add(point)


# ---------------------------------------------------------------------------------------------


def main(argv):
    try:
        args = parse_args(argv)
    except UsageError as e:
        die(str(e))
    args.argv = argv
    if args.check_abi:
        return check_abi(args)

    try:
        import torch
    except ImportError:
        torch = None
    if torch is None and not args.dry_run:
        die("torch is not importable here; run on the GPU machine, or use --dry-run")
    cuda = bool(torch) and not args.dry_run and torch.cuda.is_available()
    if not args.dry_run and not cuda:
        die("no CUDA device visible to torch; run on the GPU machine, or use --dry-run")
    if cuda:
        torch.cuda.set_device(args.device)

    versions = {"CPython": platform.python_version()}
    if torch:
        versions["torch"] = torch.__version__
        try:
            import triton
            versions["triton"] = triton.__version__
        except Exception:  # noqa: BLE001 - triton is optional in a dry run
            pass
    providers, peers, lib = load_providers(args, torch, cuda)
    env = {"host": host_json(),
           "device": device_json(torch, args.device) if cuda else None,
           "gpu_unavailable_reason": None if cuda else
           "dry run: no GPU used (" + ("CPU torch stand-ins" if torch else "synthetic numbers") +
           ")",
           "measurement": {
               "timer": "events" if cuda else "host",
               "note": ("CUDA events around each call on torch's current stream; a 256 MB buffer "
                        "cleared between samples" +
                        ("; then a spin kernel that keeps the GPU busy while the host enqueues "
                         "the sample (launch_hold)" if args.launch_hold else
                         "; no launch hold (--no-launch-hold): a sample includes whatever the "
                         "GPU waited for the host's part of the call") +
                        "; memory from torch.cuda.max_memory_allocated during one step plus the "
                        "provider's inputs" if cuda else
                        "DRY RUN: stand-ins, not the providers; "
                        + ("host clock around CPU torch calls" if torch else
                           "synthetic timings from a fixed model") +
                        "; these numbers measure nothing"),
               "l2_flush_bytes": L2_FLUSH_BYTES if cuda else 0}}
    if cuda and lib:
        ours = next(p for p in providers if p.name == "lightning")
        if not ours.unavailable and any(m != "fwd" for m in args.modes):
            small = Inputs(torch, "cuda", args.dtype, 1, args.heads, 128, args.dim, args.vdim,
                           args.seed, alibi_slopes(args.heads), need_do=True)
            ours.probe_backward(small, small.slopes)
            del small
            for mode, reason in ours.modes_unsupported.items():
                note(f"lightning {mode}: {reason}")
    tool = tool_json(args, versions, lib)
    report = Report(args, tool, env, peers)
    status, error = "interrupted", None
    try:
        if torch is None:
            run_synthetic(args, providers, report)
        else:
            report.doc["cross_check"] = cross_check(args, torch, providers,
                                                    "cuda" if cuda else "cpu")
            run_sweep(args, torch, providers, report, cuda)
        status = "complete"
    except KeyboardInterrupt:
        note("interrupted; the report holds the points so far")
    except Exception as e:  # noqa: BLE001 - the traceback for whoever debugs, then one line
        import traceback
        traceback.print_exc()
        error = f"{type(e).__name__}: {e}"
    finally:
        report.finish(status)
    if error:
        note(f"stopped by an error ({error}); the report holds the points so far: {args.json}")
        return 1
    for v in report.doc["summary"]["verdicts"]:
        print(v["line"])
    c = report.doc["summary"]["counts"]
    print(f"compare_peers: {c['points']} points ({c['ok']} ok, {c['skipped']} skipped, "
          f"{c['failed']} failed, {c['verification_failed']} failed verification); report: "
          f"{args.json}")
    missing = [name for name, p in peers.items() if not p["available"]]
    if missing:
        print(f"compare_peers: not measured (could not be loaded): {', '.join(missing)}")
    if status != "complete":
        return 130
    cc = report.doc.get("cross_check") or {}
    if args.dry_run and (c["failed"] or c["verification_failed"] or cc.get("agree") is False):
        # The stand-ins share one set of semantics: any disagreement is a bug in this script.
        print("compare_peers: DRY RUN FAILED: a point failed, failed verification, or the "
              "cross-check disagreed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
