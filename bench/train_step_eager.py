#!/usr/bin/python3
"""The training step of bench/train_step_bench.cpp as plain eager PyTorch.

Same shapes, same step: forward, cross-entropy, backward, AdamW step, on a
Llama-shaped decoder with a frozen base and LoRA (r=8, alpha 16) on all seven
projections (q, k, v, o, gate, up, down) of every block.

What it does, exactly:
- Base weights are random (normal 0.02; timing does not depend on values, so
  stories260K is random weights of its shape too), requires_grad=False.
- RMSNorm: x * rsqrt(mean(x^2) + eps) * w. RoPE on adjacent pairs (GGUF llama).
- Attention, --form tuned (the default: the step as a careful PyTorch 1.13 user
  writes it; 1.13 has no scaled_dot_product_attention):
    * the RoPE rotation as a complex product with cos + i sin tables, and the
      additive causal mask, built once per model, not every forward (Meta's
      reference Llama code applies RoPE this way);
    * 1/sqrt(d) folded into q ([B, T, H, d]) instead of the [B, H, T, T] scores;
    * scores by one torch.baddbmm(mask, q, k^T): the mask added inside the
      product, no masked_fill pass;
    * GQA without repeat_interleave: the G query heads that share a kv head
      are stacked along the rows, [B * Hkv, G * T, d] @ [B * Hkv, d, T], so k
      and v are never copied G times (nor their gradients summed back).
  --form textbook (the script's first version, kept to measure against):
    tables and mask built every forward, RoPE by stacking the rotated halves,
    scores = q k^T / sqrt(d) materialised as [B, H, T, T], masked_fill,
    softmax, probs @ v, GQA by repeat_interleave of k/v (Hugging Face's
    repeat_kv). Both forms give the same loss and gradients (--check).
- SwiGLU: down(silu(gate(x)) * up(x)).
- LoRA: A Kaiming-uniform, B zeros. tuned: torch.addmm(base(x), x A^T, (B s)^T),
  the scale s = alpha / r on the [out, r] factor and the add inside the
  product; textbook: base(x) + (x @ A^T @ B^T) * s, as PEFT writes it.
- Base quantization:
    none: F.linear(x, W) with the float32 W (autograd keeps a reference, no copy).
    int8: int8 weight with one float scale per output row; q4: 4-bit blocks of
      32 inputs with a float scale per block (two nibbles per byte, value
      (nibble - 8) * scale, like cleave's q4). Both go through a custom
      torch.autograd.Function that dequantizes the whole weight in forward
      (y = x W^T) and again in backward (dx = dy W), saving no float copy: the
      natural eager way to train on a quantized frozen base.
- Loss: F.cross_entropy over [B*T, vocab] logits, mean.
- Optimizer: torch.optim.AdamW(lr=1e-4, weight_decay=0) over the LoRA tensors;
  optimizer.zero_grad(set_to_none=True) after each step.
- Threads: PyTorch's float32 products go to libblas.so.3, here OpenBLAS with
  its own thread pool, which torch.set_num_threads does not set. --threads N
  sets both to N, N/M PyTorch to N and OpenBLAS to M (openblas_set_num_threads
  through ctypes; cleave sets OpenBLAS's count the same way). --threads best
  (the default) times two steps at each of 1..cores for both, and at OpenBLAS 1
  beside more PyTorch threads, and measures at the fastest; the setting is
  reported. With OpenBLAS's pool at 2 threads the float32 attention products
  ([B*H] small products per torch.bmm, each waking the pool) took 28.7 s of a
  46 s profiled pair of stories260K steps on a loaded machine, 1.1 s of 3.9 s
  with OpenBLAS at 1 thread.
- --autocast: forward and loss under torch.autocast("cpu", dtype=torch.bfloat16),
  PyTorch's own CPU mixed precision (linear and matmul in bf16 through oneDNN),
  the eager counterpart of cleave's runtime.matmul bf16. Off by default: the
  issue's baseline is the plain float32 step.

- Allocator: --malloc tcmalloc (the default) runs each child with Debian's
  tcmalloc (libtcmalloc-minimal4) in LD_PRELOAD, as PyTorch's CPU tuning
  guides advise; --malloc glibc keeps glibc's malloc. Eager PyTorch frees and
  allocates every activation each step, and glibc returns what is above its
  mmap threshold (at most 32 MiB: stories260K's [32, 8, 256, 256] scores are
  64 MiB) to the system, so every step faults it in again. On the 2-core VM
  of BENCHMARKS.md a stories260K autocast step under glibc took 1.39 million
  minor faults and 9.9 s of system time in 25 s, at 4,702 tokens/s; under
  tcmalloc 0.17 million faults, 1.4 s, 32,855 tokens/s.

CLEAVE_BENCH_OP_TRACE=FILE in the environment runs one more step after the
timed ones under PyTorch's profiler and writes it to FILE as a Chrome trace,
which bench/op_profile.py sums by op, as for train_step_bench.

Each configuration runs in its own child process (this script with --child), so
the reported peak RSS (ru_maxrss of the child) is its own.

Usage: /usr/bin/python3 bench/train_step_eager.py [--only NAME:QUANT,...]
       [--steps N] [--warmup N] [--threads N|best] [--tsv FILE] [--autocast]
       [--form tuned|textbook] [--malloc tcmalloc|glibc] [--check]
"""
import argparse
import ctypes
import ctypes.util
import math
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

WORKLOADS = {
    # name: (config, batch, seq, steps, warmup)
    "stories260K": (dict(vocab=512, dim=64, layers=5, heads=8, kv_heads=4, ffn=172), 32, 256, 5, 2),
    "llama-40M": (dict(vocab=32000, dim=512, layers=8, heads=8, kv_heads=4, ffn=1376), 8, 256, 3, 1),
    "llama-110M": (dict(vocab=32000, dim=768, layers=12, heads=12, kv_heads=12, ffn=2048), 4, 256, 3, 1),
}
QUANTS = ["none", "int8", "q4"]
RANK, ALPHA, EPS, ROPE_BASE = 8, 16.0, 1e-5, 10000.0


def quantize_int8(w):
    scale = (w.abs().amax(1) / 127.0).clamp_min(1e-12)  # [out]
    q = (w / scale[:, None]).round().clamp(-127, 127).to(torch.int8)
    return q, scale


def dequantize_int8(q, scale):
    return q.float() * scale[:, None]


def quantize_q4(w):
    out, inp = w.shape
    padded = (inp + 31) // 32 * 32
    wp = torch.zeros(out, padded)
    wp[:, :inp] = w
    blocks = wp.view(out, padded // 32, 32)
    idx = blocks.abs().argmax(-1, keepdim=True)
    scale = blocks.gather(-1, idx) / -8.0  # [out, n_blocks, 1]
    inv = torch.where(scale != 0, 1.0 / scale, torch.zeros_like(scale))
    q = (blocks * inv + 8.5).clamp(0, 15).to(torch.uint8).view(out, padded)
    packed = q[:, 0::2] | (q[:, 1::2] << 4)  # [out, padded / 2]
    return packed, scale.squeeze(-1), inp


def dequantize_q4(packed, scale, inp):
    out = packed.shape[0]
    lo = (packed & 0x0F).to(torch.int16) - 8
    hi = (packed >> 4).to(torch.int16) - 8
    q = torch.stack((lo, hi), -1).view(out, -1, 32).float()  # [out, n_blocks, 32]
    return (q * scale[:, :, None]).view(out, -1)[:, :inp]


class DequantMatmul(torch.autograd.Function):
    """y = x W^T with W dequantized in forward and again in backward."""

    @staticmethod
    def forward(ctx, x, weight):
        ctx.weight = weight
        return x @ weight.dequantize().t()

    @staticmethod
    def backward(ctx, grad):  # grad is bf16 under --autocast
        return grad @ ctx.weight.dequantize().to(grad.dtype), None


class FrozenWeight:
    def __init__(self, w, quant):
        self.quant = quant
        if quant == "none":
            self.w = w.requires_grad_(False)
        elif quant == "int8":
            self.q, self.scale = quantize_int8(w)
        else:
            self.q, self.scale, self.inp = quantize_q4(w)

    def dequantize(self):
        if self.quant == "int8":
            return dequantize_int8(self.q, self.scale)
        return dequantize_q4(self.q, self.scale, self.inp)

    def matmul(self, x):
        if self.quant == "none":
            return F.linear(x, self.w)
        return DequantMatmul.apply(x, self)


class LoraLinear:
    def __init__(self, out, inp, quant, gen, lora, form):
        self.base = FrozenWeight(torch.empty(out, inp).normal_(0, 0.02, generator=gen), quant)
        self.lora = lora
        self.form = form
        if lora:
            bound = 1.0 / math.sqrt(inp)
            self.a = torch.empty(RANK, inp).uniform_(-bound, bound, generator=gen).requires_grad_()
            self.b = torch.zeros(out, RANK).requires_grad_()

    def __call__(self, x):  # x: [B, T, in] -> [B, T, out]
        y = self.base.matmul(x)
        if not self.lora:
            return y
        if self.form == "textbook":
            return y + (x @ self.a.t() @ self.b.t()) * (ALPHA / RANK)
        xa = F.linear(x, self.a)  # [B, T, r]
        return torch.addmm(y.flatten(0, 1), xa.flatten(0, 1), (self.b * (ALPHA / RANK)).t()).view_as(y)

    def params(self):
        return [self.a, self.b] if self.lora else []


def rms_norm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def rope_textbook(x, cos, sin):  # x: [B, T, H, d], adjacent pairs
    pairs = x.unflatten(3, (-1, 2))
    x0, x1 = pairs[..., 0], pairs[..., 1]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), -1).flatten(3)


def rope_complex(x, cis):  # x: [B, T, H, d], adjacent pairs as (real, imaginary); cis: [T, 1, d / 2]
    rotated = torch.view_as_real(torch.view_as_complex(x.float().unflatten(3, (-1, 2))) * cis)
    return rotated.flatten(3).type_as(x)


def rope_angles(T, hd):  # [T, d / 2], in float64 then rounded, as cleave builds them
    inv_freq = ROPE_BASE ** (-torch.arange(0, hd // 2, dtype=torch.float64) * 2.0 / hd)
    return torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)


class Model:
    def __init__(self, c, quant, form="tuned", seed=1234):
        gen = torch.Generator().manual_seed(seed)
        self.c = c
        self.form = form
        self.tables = {}  # tuned: T -> (cis, mask), built on the first forward of that length
        dim, hd = c["dim"], c["dim"] // c["heads"]
        kv = c["kv_heads"] * hd
        self.embd = torch.empty(c["vocab"], dim).normal_(0, 0.02, generator=gen)
        self.blocks = []
        for _ in range(c["layers"]):
            lin = lambda o, i: LoraLinear(o, i, quant, gen, True, form)
            self.blocks.append(dict(
                attn_norm=torch.ones(dim), q=lin(dim, dim), k=lin(kv, dim), v=lin(kv, dim),
                o=lin(dim, dim), ffn_norm=torch.ones(dim), gate=lin(c["ffn"], dim),
                up=lin(c["ffn"], dim), down=lin(dim, c["ffn"])))
        self.out_norm = torch.ones(dim)
        self.output = LoraLinear(c["vocab"], dim, quant, gen, False, form)

    def params(self):
        ps = []
        for b in self.blocks:
            for k in ("q", "k", "v", "o", "gate", "up", "down"):
                ps += b[k].params()
        return ps

    def forward(self, tokens):
        attention = self.attention_textbook if self.form == "textbook" else self.attention_tuned
        h = F.embedding(tokens, self.embd)
        for b in self.blocks:
            h = h + b["o"](attention(b, rms_norm(h, b["attn_norm"])))
            y = rms_norm(h, b["ffn_norm"])
            h = h + b["down"](F.silu(b["gate"](y)) * b["up"](y))
        return self.output(rms_norm(h, self.out_norm))

    def attention_textbook(self, b, x):  # x: [B, T, dim] -> [B, T, H * d]
        c = self.c
        B, T, _ = x.shape
        H, Hkv, hd = c["heads"], c["kv_heads"], c["dim"] // c["heads"]
        angle = rope_angles(T, hd).float()
        cos, sin = angle.cos().view(1, T, 1, -1), angle.sin().view(1, T, 1, -1)
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        q = rope_textbook(b["q"](x).view(B, T, H, hd), cos, sin).transpose(1, 2)
        k = rope_textbook(b["k"](x).view(B, T, Hkv, hd), cos, sin).transpose(1, 2)
        v = b["v"](x).view(B, T, Hkv, hd).transpose(1, 2)
        if H != Hkv:
            k = k.repeat_interleave(H // Hkv, dim=1)
            v = v.repeat_interleave(H // Hkv, dim=1)
        scores = (q @ k.transpose(2, 3)) / math.sqrt(hd)
        probs = torch.softmax(scores.masked_fill(mask, float("-inf")), -1)
        return (probs @ v).transpose(1, 2).reshape(B, T, H * hd)

    def attention_tuned(self, b, x):  # x: [B, T, dim] -> [B, T, H * d]
        c = self.c
        B, T, _ = x.shape
        H, Hkv, hd = c["heads"], c["kv_heads"], c["dim"] // c["heads"]
        G = H // Hkv
        if T not in self.tables:
            angle = rope_angles(T, hd)
            cis = torch.polar(torch.ones_like(angle), angle).to(torch.complex64).view(T, 1, -1)
            mask = torch.full((T, T), float("-inf")).triu(1).repeat(G, 1)  # [G * T, T]: row g * T + t is query t
            self.tables[T] = (cis, mask)
        cis, mask = self.tables[T]
        q = rope_complex(b["q"](x).view(B, T, H, hd) * (1.0 / math.sqrt(hd)), cis)
        k = rope_complex(b["k"](x).view(B, T, Hkv, hd), cis)
        v = b["v"](x).view(B, T, Hkv, hd)
        # Query head h reads kv head h // G (repeat_interleave's order): stack a kv head's G query heads.
        q = q.view(B, T, Hkv, G, hd).permute(0, 2, 3, 1, 4).reshape(B * Hkv, G * T, hd)
        k = k.permute(0, 2, 3, 1).reshape(B * Hkv, hd, T)
        v = v.transpose(1, 2).reshape(B * Hkv, T, hd)
        probs = torch.softmax(torch.baddbmm(mask.to(q.dtype), q, k), -1)  # [B * Hkv, G * T, T]
        out = torch.bmm(probs, v.to(probs.dtype))  # [B * Hkv, G * T, d]
        return out.view(B, Hkv, G, T, hd).permute(0, 3, 1, 2, 4).reshape(B, T, H * hd)


def step(model, opt, inputs, targets, autocast):
    """One training step: forward and loss (under autocast if asked), backward, AdamW. Returns the loss."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        logits = model.forward(inputs)
        loss = F.cross_entropy(logits.view(-1, model.c["vocab"]).float(), targets)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()


def batch(c, batch_size, seq):
    gen = torch.Generator().manual_seed(7)
    tokens = torch.randint(c["vocab"], (batch_size * seq + 1,), generator=gen)
    return tokens[:-1].view(batch_size, seq), tokens[1:].reshape(-1)


def check():
    """Both forms give the same loss and LoRA gradients (float32, a short batch of every
    model's shape; B is made nonzero first so that every gradient is)."""
    worst = 0.0
    for name, (c, _, _, _, _) in WORKLOADS.items():
        for quant in ("none", "int8"):
            inputs, targets = batch(c, 2, 48)
            grads = {}
            for form in ("textbook", "tuned"):
                model = Model(c, quant, form)
                with torch.no_grad():
                    for p in model.params():
                        if not p.abs().sum():
                            p.normal_(0, 0.02, generator=torch.Generator().manual_seed(p.numel()))
                loss = F.cross_entropy(model.forward(inputs).view(-1, c["vocab"]), targets)
                loss.backward()
                grads[form] = [loss.detach()] + [p.grad for p in model.params()]
            for a, b in zip(grads["textbook"], grads["tuned"]):
                err = ((a - b).abs().max() / a.abs().max().clamp_min(1e-30)).item()
                worst = max(worst, err)
                if err > 1e-4:
                    sys.exit(f"--check: {name}:{quant}: the tuned form differs from the textbook form "
                             f"by {err:.3g} of the largest value")
    print(f"--check: tuned and textbook forms agree (largest difference {worst:.2g} of the largest value)")


def openblas_set_num_threads():
    """OpenBLAS's thread setter when libblas.so.3 is OpenBLAS (Debian's libopenblas0-pthread), else None.
    PyTorch's float32 products go to that BLAS, whose own thread pool torch.set_num_threads does not set."""
    try:
        return ctypes.CDLL("libblas.so.3").openblas_set_num_threads
    except (OSError, AttributeError):
        return None


def set_threads(config):
    """config: "N" (PyTorch and OpenBLAS N threads) or "N/M" (PyTorch N, OpenBLAS M)."""
    torch_threads, _, blas_threads = config.partition("/")
    torch.set_num_threads(int(torch_threads))
    setter = openblas_set_num_threads()
    if setter:
        setter(int(blas_threads or torch_threads))


def pick_threads(model, opt, inputs, targets, autocast):
    """The fastest thread setting by the median of two steps (after one warmup): PyTorch
    and OpenBLAS at every count from 1 to the cores, and OpenBLAS at 1 beside more PyTorch
    threads (many small float32 products each pay OpenBLAS's thread pool otherwise)."""
    cores = os.cpu_count() or 1
    configs = [str(n) for n in range(1, cores + 1)]
    if openblas_set_num_threads():
        configs += [f"{n}/1" for n in range(2, cores + 1)]
    timings = {}
    for config in configs:
        set_threads(config)
        times = []
        for i in range(3):
            start = time.perf_counter()
            step(model, opt, inputs, targets, autocast)
            if i:
                times.append(time.perf_counter() - start)
        timings[config] = statistics.median(times)
    return min(timings, key=timings.get)


def run_child(name, quant, steps, warmup, autocast, form, threads):
    c, batch_size, seq, _, _ = WORKLOADS[name]
    model = Model(c, quant, form)
    opt = torch.optim.AdamW(model.params(), lr=1e-4, weight_decay=0.0)
    inputs, targets = batch(c, batch_size, seq)
    if threads == "best":
        threads = pick_threads(model, opt, inputs, targets, autocast)
    set_threads(threads)
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        step(model, opt, inputs, targets, autocast)
        elapsed = time.perf_counter() - start
        if i >= warmup:
            times.append(elapsed)
    step_s = statistics.median(times)
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    trace = os.environ.get("CLEAVE_BENCH_OP_TRACE")
    if trace:  # one more step under the profiler, not in the median (as train_step_bench does)
        with torch.autograd.profiler.profile() as prof:
            step(model, opt, inputs, targets, autocast)
        prof.export_chrome_trace(trace)
        print(f"op trace written to {trace}", file=sys.stderr, flush=True)
    print(f"RESULT {batch_size * seq / step_s:.6g} {step_s:.6g} {rss_kib} {threads}", flush=True)


def thread_count(text):
    if text == "best" or all(part.isdigit() and int(part) >= 1 for part in text.split("/", 1)):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is neither a thread count N (1 or more), N/M nor 'best'")


def child_environment(malloc):
    """(environment for the children, the allocator they get): LD_PRELOAD names
    tcmalloc when asked for and installed; otherwise glibc's malloc, with a warning."""
    env = dict(os.environ)
    if malloc == "glibc":
        return env, "glibc"
    library = ctypes.util.find_library("tcmalloc_minimal")
    if library is None:
        print("train_step_eager: libtcmalloc_minimal not found (apt-get install libtcmalloc-minimal4); "
              "eager PyTorch runs on glibc's malloc, a weaker baseline", file=sys.stderr)
        return env, "glibc"
    env["LD_PRELOAD"] = " ".join(x for x in (library, env.get("LD_PRELOAD", "")) if x)
    return env, "tcmalloc"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", default="", help="NAME:QUANT,... (default: all)")
    p.add_argument("--steps", type=int)
    p.add_argument("--warmup", type=int)
    p.add_argument("--threads", type=thread_count, default="best",
                   help="N: PyTorch and OpenBLAS threads; N/M: PyTorch N, OpenBLAS M; best: the fastest "
                        "setting, tried at the start (default: best)")
    p.add_argument("--tsv", help="append results to this file")
    p.add_argument("--autocast", action="store_true",
                   help="forward and loss under torch.autocast(cpu, bfloat16)")
    p.add_argument("--form", choices=("tuned", "textbook"), default="tuned",
                   help="how attention, RoPE and LoRA are written (default: tuned)")
    p.add_argument("--malloc", choices=("tcmalloc", "glibc"), default="tcmalloc",
                   help="the children's allocator: tcmalloc through LD_PRELOAD where installed, "
                        "else glibc (default: tcmalloc)")
    p.add_argument("--check", action="store_true",
                   help="check that both forms give the same loss and gradients, then exit")
    p.add_argument("--child", nargs=2, metavar=("NAME", "QUANT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.check:
        check()
        return 0

    def counts(name):
        _, _, _, steps, warmup = WORKLOADS[name]
        return (args.steps if args.steps is not None else steps,
                args.warmup if args.warmup is not None else warmup)

    if args.child:
        name, quant = args.child
        run_child(name, quant, *counts(name), args.autocast, args.form, args.threads)
        return 0
    only = [s for s in args.only.split(",") if s]
    rows = [(n, q) for n in WORKLOADS for q in QUANTS if not only or f"{n}:{q}" in only]
    if not rows:
        sys.exit(f"--only {args.only!r} selected no configuration; names: "
                 f"{', '.join(WORKLOADS)}; quants: {', '.join(QUANTS)}")
    env, malloc = child_environment(args.malloc)
    print(f"torch {torch.__version__}, {args.form} form, threads: {args.threads}, malloc: {malloc}"
          f"{', autocast bf16' if args.autocast else ''}")
    print(f"{'model':12} {'batch':>6} {'seq':>5} {'quant':>5} {'tokens/s':>12} {'step s':>10} "
          f"{'peak RSS MiB':>14} {'threads':>8}")
    failures = 0
    for name, quant in rows:
        steps, warmup = counts(name)
        cmd = [sys.executable, os.path.abspath(__file__), "--child", name, quant, "--steps", str(steps),
               "--warmup", str(warmup), "--threads", args.threads, "--form", args.form]
        if args.autocast:
            cmd.append("--autocast")
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env)
        line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            print(f"{name}:{quant} failed (exit {proc.returncode})", file=sys.stderr)
            failures += 1
            continue
        tok_s, step_s, rss, threads = line.split()[1:]
        _, batch_size, seq, _, _ = WORKLOADS[name]
        print(f"{name:12} {batch_size:6} {seq:5} {quant:>5} {float(tok_s):12.0f} {float(step_s):10.3f} "
              f"{int(rss) / 1024:14.1f} {threads:>8}", flush=True)
        if args.tsv:
            with open(args.tsv, "a") as f:
                f.write(f"{name}\t{batch_size}\t{seq}\t{quant}\t{tok_s}\t{rss}\t{threads}\t{malloc}\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
