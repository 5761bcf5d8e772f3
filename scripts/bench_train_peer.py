#!/usr/bin/python3
"""Benchmark peer for scripts/bench_train.sh: the MIDI generator of
configs/midi_generator.yaml written in Python PyTorch (Debian's python3-torch),
trained on the same prepared shard, reporting tokens/s and peak RSS.
`--autocast bf16` runs the forward and the loss under
torch.autocast("cpu", dtype=torch.bfloat16), as a Python user turns on mixed
precision (weights, gradients and AdamW state stay fp32).

Launched by torchrun (WORLD_SIZE > 1), it trains with PyTorch's own
DistributedDataParallel over Gloo, each rank on its own random windows: the
reference that scripts/bench_ddp.sh --peer compares kmidi's data parallelism
with.

Same architecture as models/MidiGenerator: pre-LayerNorm decoder, rotary
positions, per-layer emotion prefix keys/values, tied embeddings, GELU MLP,
AdamW, label-smoothed cross-entropy ignoring PAD. Not part of the product.
"""
import argparse
import contextlib
import json
import math
import os
import resource
import statistics
import time

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def rotate(x, cos, sin):
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self, d, heads, ff, prefix, emotion_dim, dropout):
        super().__init__()
        self.heads, self.prefix = heads, prefix
        self.attn_norm, self.mlp_norm = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.prefix_kv = nn.Linear(emotion_dim, 2 * prefix * d)
        self.fc1, self.fc2 = nn.Linear(d, ff), nn.Linear(ff, d)
        self.drop = nn.Dropout(dropout)
        self.p = dropout

    def forward(self, x, emotion, cos, sin, mask):
        b, t, d = x.shape
        h, dh = self.heads, d // self.heads
        q, k, v = self.qkv(self.attn_norm(x)).view(b, t, 3, h, dh).permute(2, 0, 3, 1, 4)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        pk, pv = self.prefix_kv(emotion).view(b, 2, self.prefix, h, dh).permute(1, 0, 3, 2, 4)
        k, v = torch.cat([pk, k], 2), torch.cat([pv, v], 2)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.p if self.training else 0.0) \
            if hasattr(F, "scaled_dot_product_attention") else self.attend(q, k, v, mask)
        x = x + self.drop(self.out(a.transpose(1, 2).reshape(b, t, d)))
        return x + self.drop(self.fc2(self.drop(F.gelu(self.fc1(self.mlp_norm(x))))))

    def attend(self, q, k, v, mask):
        s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        s = s.masked_fill(~mask, float("-inf"))
        return self.drop(s.softmax(-1)) @ v


class Generator(nn.Module):
    def __init__(self, vocab, d, layers, heads, ff, prefix, dropout, emotion_dim=64):
        super().__init__()
        self.heads, self.prefix = heads, prefix
        self.embed = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(Block(d, heads, ff, prefix, emotion_dim, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(d)

    def forward(self, ids, emotion, real):
        b, t = ids.shape
        dh = self.embed.embedding_dim // self.heads
        pos = (real.long().cumsum(1) - 1).clamp(min=0).float()
        inv = 1.0 / (10000.0 ** (torch.arange(0, dh, 2).float() / dh))
        angle = pos[:, None, :, None] * inv
        cos, sin = angle.cos(), angle.sin()
        causal = torch.ones(t, t, dtype=torch.bool).tril()
        keys = torch.cat([torch.ones(b, self.prefix, dtype=torch.bool), real], 1)
        mask = torch.cat([torch.ones(t, self.prefix, dtype=torch.bool), causal], 1)[None, None] & keys[:, None, None, :]
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x, emotion, cos, sin, mask)
        return self.norm(x) @ self.embed.weight.t()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shard", required=True)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--length", type=int, default=256)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--d-ff", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--autocast", choices=["none", "bf16"], default="none",
                    help="bf16: forward and loss under torch.autocast('cpu', dtype=torch.bfloat16)")
    ap.add_argument("--bucket-mb", type=float, default=25.0, help="DDP's bucket_cap_mb (PyTorch's default: 25)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        import torch.distributed as dist
        dist.init_process_group("gloo")
    rng = np.random.default_rng(rank)

    with h5py.File(args.shard, "r") as f:
        tokens = f["tokens"][:].astype(np.int64)
        offsets = f["offsets"][:]
        vocab, pad = int(f.attrs["vocab_size"]), int(f.attrs["pad_id"])
    pieces = [tokens[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]

    def batch():
        rows = []
        for i in rng.integers(0, len(pieces), args.batch):
            p = pieces[i]
            start = rng.integers(0, max(1, len(p) - args.length))
            rows.append(p[start:start + args.length + 1])
        width = max(len(r) for r in rows)
        ids = np.full((args.batch, width), pad)
        for j, r in enumerate(rows):
            ids[j, :len(r)] = r
        ids = torch.from_numpy(ids)
        return ids[:, :-1], ids[:, 1:]

    model = Generator(vocab, args.d_model, args.layers, args.heads, args.d_ff, 4, args.dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=0.05)
    step_model = model
    if world > 1:
        step_model = torch.nn.parallel.DistributedDataParallel(model, bucket_cap_mb=args.bucket_mb)
    emotion = torch.zeros(args.batch, 64)
    rates, step_ms = [], []
    for step in range(args.warmup + args.steps):
        x, y = batch()
        start = time.perf_counter()
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if args.autocast == "bf16" else contextlib.nullcontext()
        with autocast:
            logits = step_model(x, emotion, x != pad)
            loss = F.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1), ignore_index=pad, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        elapsed = time.perf_counter() - start
        if step >= args.warmup:
            rates.append(int((x != pad).sum()) / elapsed)
            step_ms.append(elapsed * 1000)
    params = sum(p.numel() for p in model.parameters())
    if rank == 0:
        print(json.dumps({"peer": "python", "torch": torch.__version__, "tokens_per_s": statistics.median(rates),
                          "median_step_ms": statistics.median(step_ms), "world_size": world,
                          "autocast": args.autocast, "parameters": params, "loss": float(loss),
                          "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
