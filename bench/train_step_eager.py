#!/usr/bin/python3
"""The training step of bench/train_step_bench.cpp as plain eager PyTorch.

Same shapes, same step: forward, cross-entropy, backward, AdamW step, on a
Llama-shaped decoder with a frozen base and LoRA (r=8, alpha 16) on all seven
projections (q, k, v, o, gate, up, down) of every block.

What it does, exactly:
- Base weights are random (normal 0.02; timing does not depend on values, so
  stories260K is random weights of its shape too), requires_grad=False.
- RMSNorm: x * rsqrt(mean(x^2) + eps) * w. RoPE on adjacent pairs (GGUF llama).
- Attention: the naive eager form (all eager 1.13 has): scores = q k^T / sqrt(d)
  materialised as [B, H, T, T], masked_fill with the causal mask, softmax,
  probs @ v; GQA by repeat_interleave of k/v heads (Hugging Face's repeat_kv).
- SwiGLU: down(silu(gate(x)) * up(x)).
- LoRA: base(x) + (x @ A^T @ B^T) * alpha / r; A Kaiming-uniform, B zeros.
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
- Threads: torch.set_num_threads(all cores) unless --threads.
- --autocast: forward and loss under torch.autocast("cpu", dtype=torch.bfloat16),
  PyTorch's own CPU mixed precision (linear and matmul in bf16 through oneDNN),
  the eager counterpart of cleave's runtime.matmul bf16. Off by default: the
  issue's baseline is the plain float32 step.

Each configuration runs in its own child process (this script with --child), so
the reported peak RSS (ru_maxrss of the child) is its own.

Usage: /usr/bin/python3 bench/train_step_eager.py [--only NAME:QUANT,...]
       [--steps N] [--warmup N] [--threads N] [--tsv FILE] [--autocast]
"""
import argparse
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
    def __init__(self, out, inp, quant, gen, lora):
        self.base = FrozenWeight(torch.empty(out, inp).normal_(0, 0.02, generator=gen), quant)
        self.lora = lora
        if lora:
            bound = 1.0 / math.sqrt(inp)
            self.a = torch.empty(RANK, inp).uniform_(-bound, bound, generator=gen).requires_grad_()
            self.b = torch.zeros(out, RANK).requires_grad_()

    def __call__(self, x):
        y = self.base.matmul(x)
        if self.lora:
            y = y + (x @ self.a.t() @ self.b.t()) * (ALPHA / RANK)
        return y

    def params(self):
        return [self.a, self.b] if self.lora else []


def rms_norm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def rope(x, cos, sin):  # x: [B, T, H, d], adjacent pairs
    pairs = x.unflatten(3, (-1, 2))
    x0, x1 = pairs[..., 0], pairs[..., 1]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), -1).flatten(3)


class Model:
    def __init__(self, c, quant, seed=1234):
        gen = torch.Generator().manual_seed(seed)
        self.c = c
        dim, hd = c["dim"], c["dim"] // c["heads"]
        kv = c["kv_heads"] * hd
        self.embd = torch.empty(c["vocab"], dim).normal_(0, 0.02, generator=gen)
        self.blocks = []
        for _ in range(c["layers"]):
            lin = lambda o, i: LoraLinear(o, i, quant, gen, True)
            self.blocks.append(dict(
                attn_norm=torch.ones(dim), q=lin(dim, dim), k=lin(kv, dim), v=lin(kv, dim),
                o=lin(dim, dim), ffn_norm=torch.ones(dim), gate=lin(c["ffn"], dim),
                up=lin(c["ffn"], dim), down=lin(dim, c["ffn"])))
        self.out_norm = torch.ones(dim)
        self.output = LoraLinear(c["vocab"], dim, quant, gen, False)

    def params(self):
        ps = []
        for b in self.blocks:
            for k in ("q", "k", "v", "o", "gate", "up", "down"):
                ps += b[k].params()
        return ps

    def forward(self, tokens):
        c = self.c
        B, T = tokens.shape
        H, Hkv, hd = c["heads"], c["kv_heads"], c["dim"] // c["heads"]
        inv_freq = ROPE_BASE ** (-torch.arange(0, hd // 2, dtype=torch.float64) * 2.0 / hd)
        angle = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq).float()
        cos, sin = angle.cos().view(1, T, 1, -1), angle.sin().view(1, T, 1, -1)
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        h = F.embedding(tokens, self.embd)
        for b in self.blocks:
            x = rms_norm(h, b["attn_norm"])
            q = rope(b["q"](x).view(B, T, H, hd), cos, sin).transpose(1, 2)
            k = rope(b["k"](x).view(B, T, Hkv, hd), cos, sin).transpose(1, 2)
            v = b["v"](x).view(B, T, Hkv, hd).transpose(1, 2)
            if H != Hkv:
                k = k.repeat_interleave(H // Hkv, dim=1)
                v = v.repeat_interleave(H // Hkv, dim=1)
            scores = (q @ k.transpose(2, 3)) / math.sqrt(hd)
            probs = torch.softmax(scores.masked_fill(mask, float("-inf")), -1)
            attn = (probs @ v).transpose(1, 2).reshape(B, T, H * hd)
            h = h + b["o"](attn)
            y = rms_norm(h, b["ffn_norm"])
            h = h + b["down"](F.silu(b["gate"](y)) * b["up"](y))
        return self.output(rms_norm(h, self.out_norm))


def run_child(name, quant, steps, warmup, autocast):
    c, batch, seq, _, _ = WORKLOADS[name]
    model = Model(c, quant)
    opt = torch.optim.AdamW(model.params(), lr=1e-4, weight_decay=0.0)
    gen = torch.Generator().manual_seed(7)
    tokens = torch.randint(c["vocab"], (batch * seq + 1,), generator=gen)
    inputs, targets = tokens[:-1].view(batch, seq), tokens[1:].reshape(-1)
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits = model.forward(inputs)
            loss = F.cross_entropy(logits.view(-1, c["vocab"]).float(), targets)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        elapsed = time.perf_counter() - start
        if i >= warmup:
            times.append(elapsed)
    step_s = statistics.median(times)
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"RESULT {batch * seq / step_s:.6g} {step_s:.6g} {rss_kib}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", default="", help="NAME:QUANT,... (default: all)")
    p.add_argument("--steps", type=int)
    p.add_argument("--warmup", type=int)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--tsv", help="append results to this file")
    p.add_argument("--autocast", action="store_true",
                   help="forward and loss under torch.autocast(cpu, bfloat16)")
    p.add_argument("--child", nargs=2, metavar=("NAME", "QUANT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    def counts(name):
        _, _, _, steps, warmup = WORKLOADS[name]
        return (args.steps if args.steps is not None else steps,
                args.warmup if args.warmup is not None else warmup)

    if args.child:
        name, quant = args.child
        run_child(name, quant, *counts(name), args.autocast)
        return 0
    only = [s for s in args.only.split(",") if s]
    rows = [(n, q) for n in WORKLOADS for q in QUANTS if not only or f"{n}:{q}" in only]
    if not rows:
        sys.exit(f"--only {args.only!r} selected no configuration; names: "
                 f"{', '.join(WORKLOADS)}; quants: {', '.join(QUANTS)}")
    print(f"torch {torch.__version__}, threads: {torch.get_num_threads()}"
          f"{', autocast bf16' if args.autocast else ''}")
    print(f"{'model':12} {'batch':>6} {'seq':>5} {'quant':>5} {'tokens/s':>12} {'step s':>10} "
          f"{'peak RSS MiB':>14}")
    failures = 0
    for name, quant in rows:
        steps, warmup = counts(name)
        cmd = [sys.executable, os.path.abspath(__file__), "--child", name, quant,
               "--steps", str(steps), "--warmup", str(warmup), "--threads", str(args.threads)]
        if args.autocast:
            cmd.append("--autocast")
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            print(f"{name}:{quant} failed (exit {proc.returncode})", file=sys.stderr)
            failures += 1
            continue
        tok_s, step_s, rss = line.split()[1:]
        _, batch, seq, _, _ = WORKLOADS[name]
        print(f"{name:12} {batch:6} {seq:5} {quant:>5} {float(tok_s):12.0f} {float(step_s):10.3f} "
              f"{int(rss) / 1024:14.1f}", flush=True)
        if args.tsv:
            with open(args.tsv, "a") as f:
                f.write(f"{name}\t{batch}\t{seq}\t{quant}\t{tok_s}\t{rss}\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
