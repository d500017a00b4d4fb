"""Trains Tessera's default model on "Shapes & Signs" shards written by `tessera data --format shard`.

Two phases in one run directory:
  1. vq:  the VQ tokenizer on the shard's images (reconstruction + codebook + commitment losses, dead codes
          re-seeded from encoder outputs);
  2. gpt: the transformer on text→image and image+edit→image sequences, whose image tokens come from the
          phase-1 VQ (teacher forcing, loss on the target image's tokens, 10% of prompts made unconditional so
          classifier-free guidance works). `--text-weight W` weights the tokens under a sign's lettering W
          times: the lettering is ~8 nats of a sign image's ~125 and each glyph's lower rows follow from its
          top, so a plain loss barely asks the model to read the word off the prompt.
`--vq-part decoder` fine-tunes only the decoder of --init's VQ: every image keeps its codes, so the
transformer's training stays valid while what the codes are drawn as improves; with `--gpt-steps 0` such a
run tokenizes nothing and exports --init's transformer as it is.
Each phase runs a fixed number of steps (or, with --*-seconds, a step count fixed from the measured speed of
the first steps and then recorded), checkpoints atomically, and resumes from its checkpoint with --resume.
Progress and losses go to RUN/train.log. `--export DIR` writes the model folder the Rust engine loads.

    python trainer/train.py --shard data/shard --run runs/default --vq-steps 4000 --gpt-steps 20000 --export out
"""

import argparse
import contextlib
import hashlib
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file, load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tessera_ref import Transformer, TransformerConfig, VQ, VqConfig, config_dict, preset, preset_names  # noqa: E402


def log(run, msg):
    line = f"{time.strftime('%H:%M:%S')} {msg}"
    print(line, flush=True)
    with open(os.path.join(run, "train.log"), "a") as f:
        f.write(line + "\n")


def atomic_save(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


class Shard:
    def __init__(self, path):
        self.meta = json.load(open(os.path.join(path, "meta.json")))
        if self.meta.get("format") != "tessera-shard-1":
            raise SystemExit(f"{path}: not a tessera-shard-1 shard")
        s = self.meta["image_size"]
        self.images = np.memmap(os.path.join(path, "images.u8"), dtype=np.uint8, mode="r").reshape(-1, s, s, 3)
        if len(self.images) != self.meta["images"]:
            raise SystemExit(f"{path}: images.u8 holds {len(self.images)} images, meta.json says {self.meta['images']}")
        self.examples = [json.loads(line) for line in open(os.path.join(path, "examples.jsonl"))]

    def image_batch(self, idx, device):
        """uint8 [N, H, W, 3] → float [N, 3, H, W] in [-1, 1] (channels-last in memory, which cuDNN prefers)."""
        x = torch.from_numpy(np.ascontiguousarray(self.images[np.sort(idx)])).to(device)
        return x.permute(0, 3, 1, 2).float() / 127.5 - 1.0


# The step of a run planned from a time budget at which the plan is made again from the steps so far.
REPLAN_AT = 200


def steps_for(seconds, measure, run, name):
    """Run `measure()` (one training step) a few times and turn a time budget into a fixed step count."""
    for _ in range(15):  # warm-up: kernel selection and allocator growth for new shapes are not representative
        measure()
    sync()
    t0 = time.time()
    for _ in range(20):
        measure()
    sync()
    per_step = (time.time() - t0) / 20
    steps = max(10, int(seconds / per_step))
    log(run, f"{name}: {per_step * 1000:.1f} ms/step measured; {seconds:.0f} s budget → {steps} steps")
    return steps


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def lr_at(step, total, peak, warmup):
    if step < warmup:
        return peak * (step + 1) / warmup
    frac = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def autocast(device, bf16=None):
    """bf16 autocast: always on a GPU; on a CPU when asked (`--bf16`, ~2× faster where the CPU has bf16 dot
    products, e.g. AVX512-BF16)."""
    on = device.type == "cuda" if bf16 is None else bf16
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=on)


# ------------------------------------------------------------------------------------------------ phase 1

def train_vq(a, shard, run, device, vcfg):
    ck_path = os.path.join(run, "vq.pt")
    vq = VQ(vcfg).to(device)
    if device.type == "cuda":
        vq = vq.to(memory_format=torch.channels_last)
    # Decoder only: the encoder and codebook stay as they were, so every image keeps its codes and a
    # transformer trained on them needs no retraining; only what the codes are drawn as changes.
    params = vq.decoder.parameters() if a.vq_part == "decoder" else vq.parameters()
    opt = torch.optim.AdamW(params, lr=a.vq_lr, betas=(0.9, 0.95), weight_decay=0.0)
    step, total = 0, a.vq_steps
    if os.path.exists(ck_path):
        ck = torch.load(ck_path, map_location=device)
        check_config(ck, "vq", vcfg)
        vq.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, total = ck["step"], ck["total"]
        log(run, f"vq: resumed at step {step}/{total}")
        if step >= total:
            return vq
    elif a.init:
        warm_start(vq, a.init, "vq.", run)
        if total == 0:  # keep the shipped VQ as it is, so a warm-started transformer sees the same codes
            atomic_save({"model": vq.state_dict(), "opt": opt.state_dict(), "step": 0, "total": 0,
                         "config": vars(vcfg)}, ck_path)
            return vq
    g = torch.Generator().manual_seed(a.seed)
    n_img = len(shard.images)

    def one_step(step, lr):
        for grp in opt.param_groups:
            grp["lr"] = lr
        idx = torch.randint(0, n_img, (a.vq_batch,), generator=g).numpy()
        x = shard.image_batch(idx, device)
        if a.vq_part == "decoder":
            # The codes the engine's f32 encoder gives these images (as `tokenize` does): the ones to draw.
            with torch.no_grad(), exact_f32(device):
                codes, quant, _ = vq.quantize(vq.encoder(x))
            with autocast(device):
                recon = vq.decoder(quant)
            cb_loss = commit = 0.0
        else:
            with autocast(device):
                recon, codes, cb_loss, commit = vq(x)
        recon = recon.float()
        rec = F.mse_loss(recon, x) + 0.5 * F.l1_loss(recon, x)
        loss = rec + cb_loss + 0.25 * commit
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss, recon, x, codes

    if total is None:
        total = steps_for(a.vq_seconds, lambda: one_step(0, 0.0), run, "vq")
    usage = torch.zeros(vcfg.codebook_size, device=device)
    t0 = time.time()
    while step < total:
        loss, recon, x, codes = one_step(step, lr_at(step, total, a.vq_lr, 200))
        usage += torch.bincount(codes.flatten(), minlength=vcfg.codebook_size)
        step += 1
        if step % 100 == 0 and step < 0.8 * total and a.vq_part == "all":
            reseed_dead_codes(vq, usage, x)
            usage.zero_()
        if step % 50 == 0 or step == total:
            mse = F.mse_loss(recon.clamp(-1, 1), x).item() / 4  # on a [0, 1] scale
            psnr = 10 * math.log10(1 / max(mse, 1e-10))
            log(run, f"vq step {step}/{total} loss {loss.item():.4f} psnr {psnr:.2f} dB "
                     f"({(time.time() - t0) / 60:.1f} min)")
        if step % a.ckpt_every == 0 or step == total:
            atomic_save({"model": vq.state_dict(), "opt": opt.state_dict(), "step": step, "total": total,
                         "config": vars(vcfg)}, ck_path)
            if a.export:
                export(a, run, vq, None, vcfg, None)
    return vq


@torch.no_grad()
def reseed_dead_codes(vq, usage, x):
    dead = (usage == 0).nonzero().flatten()
    if len(dead) == 0:
        return
    z = F.normalize(vq.encoder(x).float(), dim=1).permute(0, 2, 3, 1).reshape(-1, vq.c.code_dim)
    pick = z[torch.randint(0, len(z), (len(dead),), device=z.device)]
    vq.codebook.data[dead] = pick + 0.01 * torch.randn_like(pick)


@contextlib.contextmanager
def exact_f32(device):
    """Full float32 (no bf16 autocast, no TF32) for the duration."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with autocast(device, bf16=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def tokens_for(shard, vq, run, device):
    """The shard's tokens under the run's VQ: RUN/tokens.npy when it is newer than vq.pt, else encoded anew."""
    tok_path = os.path.join(run, "tokens.npy")
    if os.path.exists(tok_path) and os.path.getmtime(tok_path) >= os.path.getmtime(os.path.join(run, "vq.pt")):
        return np.load(tok_path)
    t0 = time.time()
    tokens = tokenize(shard, vq, device)
    np.save(tok_path, tokens)
    log(run, f"tokenized {len(tokens)} images in {time.time() - t0:.1f} s; {len(np.unique(tokens))} codes in use")
    return tokens


@torch.no_grad()
def tokenize(shard, vq, device, batch=256):
    """The shard's image tokens [M, 256], encoded in exact float32 as the engine encodes an uploaded or edited
    image. About a third of the tokens have a runner-up code within 1e-3 cosine similarity, and under bf16 or
    TF32 ~2% of all tokens come out as another code: codes the engine would not produce for that image."""
    vq.eval()
    out = []
    with exact_f32(device):
        for i in range(0, len(shard.images), batch):
            idx = np.arange(i, min(i + batch, len(shard.images)))
            codes = vq.encode(shard.image_batch(idx, device))
            out.append(codes.flatten(1).to(torch.int16).cpu())
    vq.train()
    return torch.cat(out).numpy()  # [M, 256]


@torch.no_grad()
def vq_psnr(shard, vq, device, n=512):
    vq.eval()
    idx = np.arange(max(0, len(shard.images) - n), len(shard.images))
    x = shard.image_batch(idx, device)
    with autocast(device):
        y = vq.decode_indices(vq.encode(x)).float().clamp(-1, 1)
    vq.train()
    mse = ((y - x) ** 2).mean().item() / 4
    return 10 * math.log10(1 / max(mse, 1e-10))


# ------------------------------------------------------------------------------------------------ phase 2

class Sequences:
    """Builds padded (ids, is_img, targets, weights) batches from the shard's examples and image tokens."""

    def __init__(self, shard, tokens, seed, text_weight=1.0):
        self.ex = shard.examples
        self.tokens = tokens.astype(np.int64)
        self.slot = shard.meta["image_slot"]
        self.rng = random.Random(seed)
        self.text_weight = text_weight
        self.side = math.isqrt(self.tokens.shape[1])  # token grid side: 16 for 256 tokens
        self.patch = shard.meta["image_size"] // self.side  # pixels per token side

    def weights(self, e):
        """[N] loss weight of each target token: `text_weight` where its patch overlaps the lettering box."""
        w = np.ones(self.tokens.shape[1], np.float32)
        box = e.get("lettering")
        if box is not None and self.text_weight != 1.0:
            x0, y0, x1, y1 = box
            p = self.patch
            grid = w.reshape(self.side, self.side)  # a view: rows are token rows
            grid[y0 // p:(y1 + p - 1) // p, x0 // p:(x1 + p - 1) // p] = self.text_weight
        return w

    def one(self, e, uncond):
        """(ids, is_img, prompt length) of one example; the source image's tokens replace the slot."""
        prompt = np.asarray(e["uncond"] if uncond else e["cond"], dtype=np.int64)
        pieces, kinds = [], []
        at = np.flatnonzero(prompt == self.slot)
        if len(at):
            s = at[0]
            pieces += [prompt[:s], self.tokens[e["src"]], prompt[s + 1:]]
        else:
            pieces += [prompt]
        kinds = [np.zeros(len(p), bool) if i % 2 == 0 else np.ones(len(p), bool) for i, p in enumerate(pieces)]
        n_prompt = sum(len(p) for p in pieces)
        pieces.append(self.tokens[e["tgt"]])
        kinds.append(np.ones(self.tokens.shape[1], bool))
        return np.concatenate(pieces), np.concatenate(kinds), n_prompt

    def batch(self, size, device, p_uncond=0.1):
        picked = [self.ex[self.rng.randrange(len(self.ex))] for _ in range(size)]
        rows = [self.one(e, self.rng.random() < p_uncond) for e in picked]
        t = max(len(r[0]) for r in rows) - 1  # inputs drop the last token
        ids = np.zeros((size, t), np.int64)
        img = np.zeros((size, t), bool)
        tgt = np.full((size, t), -100, np.int64)
        wgt = np.zeros((size, t), np.float32)
        for i, (e, (r_ids, r_img, n_prompt)) in enumerate(zip(picked, rows)):
            n = len(r_ids) - 1
            ids[i, :n] = r_ids[:-1]
            img[i, :n] = r_img[:-1]
            # The hidden state at position p predicts token p+1; only the target image's tokens are learned.
            tgt[i, n_prompt - 1:n] = r_ids[n_prompt:]
            wgt[i, n_prompt - 1:n] = self.weights(e)
        return tuple(torch.from_numpy(x).to(device) for x in (ids, img, tgt, wgt))


def train_gpt(a, shard, tokens, run, device, tcfg):
    ck_path = os.path.join(run, "gpt.pt")
    gpt = Transformer(tcfg).to(device)
    decay = [p for n, p in gpt.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in gpt.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.gpt_lr, betas=(0.9, 0.95), fused=device.type == "cuda")
    step, total = 0, a.gpt_steps
    seqs = Sequences(shard, tokens, a.seed, a.text_weight)
    if os.path.exists(ck_path):
        ck = torch.load(ck_path, map_location=device, weights_only=False)
        check_config(ck, "gpt", tcfg)
        gpt.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, total = ck["step"], ck["total"]
        seqs.rng.setstate(ck["rng"])
        log(run, f"gpt: resumed at step {step}/{total}")
        if step >= total:
            return gpt
    elif a.init:
        warm_start(gpt, a.init, "", run)
    n_params = sum(p.numel() for p in gpt.parameters())
    log(run, f"gpt: {n_params / 1e6:.2f} M parameters")

    def one_step(lr):
        for grp in opt.param_groups:
            grp["lr"] = lr
        ids, img, tgt, wgt = seqs.batch(a.gpt_batch, device)
        with autocast(device, a.bf16):
            logits = gpt(ids, img)
        ce = F.cross_entropy(logits.float().flatten(0, 1), tgt.flatten(), ignore_index=-100, reduction="none")
        loss = (ce * wgt.flatten()).sum() / wgt.sum()  # the mean over target tokens when every weight is 1
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(gpt.parameters(), 1.0)
        opt.step()
        return loss, (ids.numel())

    # A time budget becomes a step count (the schedule needs one), planned from a short measurement and planned
    # again from the first REPLAN_AT steps of the run itself: the measurement can be twice the steady rate.
    budget_start, replan = time.time(), total is None
    if total is None:
        total = steps_for(a.gpt_seconds, lambda: one_step(0.0), run, "gpt")
    t0, seen = time.time(), 0
    while step < total:
        loss, n_tok = one_step(lr_at(step, total, a.gpt_lr, min(300, total // 10)))
        step += 1
        seen += n_tok
        if replan and step == REPLAN_AT:
            sync()
            per_step = (time.time() - t0) / step
            left = a.gpt_seconds - (time.time() - budget_start)
            total = max(step + 1, step + int(left / per_step))
            log(run, f"gpt: {per_step * 1000:.1f} ms/step over the first {step} steps; {left:.0f} s left → {total} steps")
        if step % 50 == 0 or step == total:
            el = time.time() - t0
            log(run, f"gpt step {step}/{total} loss {loss.item():.4f} {seen / el:,.0f} tok/s ({el / 60:.1f} min)")
        if step % a.ckpt_every == 0 or step == total:
            atomic_save({"model": gpt.state_dict(), "opt": opt.state_dict(), "step": step, "total": total,
                         "rng": seqs.rng.getstate(), "config": vars(tcfg)}, ck_path)
            if a.export:
                export(a, run, None, gpt, None, tcfg)
    return gpt


# ------------------------------------------------------------------------------------------------ I/O

def check_config(ck, name, cfg):
    if ck.get("config") != vars(cfg):
        raise SystemExit(f"{name} checkpoint was trained with {ck.get('config')}, this run asks for {vars(cfg)}; "
                         f"refusing to resume (use a new --run directory)")


def warm_start(module, model_dir, prefix, run):
    """Initialise from a shipped model folder when the run has no checkpoint of its own."""
    w = load_file(os.path.join(model_dir, "model.safetensors"))
    own = {k[len(prefix):]: v.float() for k, v in w.items() if k.startswith(prefix) and (prefix or not k.startswith("vq."))}
    module.load_state_dict(own, strict=True)
    log(run, f"warm start from {model_dir} ({len(own)} tensors)")


def export(a, run, vq, gpt, vcfg, tcfg):
    """Write the model folder: config.json, model.safetensors (f32 or f16), model.sha256. Parts not given are
    taken from the run's checkpoints."""
    os.makedirs(a.export, exist_ok=True)
    if vq is None:
        vcfg = VqConfig(**torch.load(os.path.join(run, "vq.pt"), map_location="cpu")["config"])
        vq = VQ(vcfg)
        vq.load_state_dict(torch.load(os.path.join(run, "vq.pt"), map_location="cpu")["model"])
    tensors = {f"vq.{k}": v for k, v in vq.state_dict().items()}
    gpt_ck = os.path.join(run, "gpt.pt")
    if gpt is None and os.path.exists(gpt_ck):
        ck = torch.load(gpt_ck, map_location="cpu", weights_only=False)
        tcfg = TransformerConfig(**ck["config"])
        gpt = Transformer(tcfg)
        gpt.load_state_dict(ck["model"])
    if gpt is not None:
        tensors.update(gpt.state_dict())
    dtype = torch.float16 if a.export_dtype == "f16" else torch.float32
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in tensors.items()}
    path = os.path.join(a.export, "model.safetensors")
    save_file(tensors, path + ".tmp", metadata={"format": "tessera-1"})
    os.replace(path + ".tmp", path)
    cfg = config_dict(tcfg or preset(a.preset)[0], vcfg)
    cfg["model_id"] = a.model_id
    cfg["trained"] = gpt is not None
    # The engine must lay out edit prompts as the shard did (`tessera data --edit-layout`).
    cfg["edit_layout"] = a.edit_layout
    # ... and prompt new pictures with a sign with the sign drawn alone when the shard did (`--sign-glyphs`).
    if a.sign_glyphs:
        cfg["sign_glyphs"] = True
    with open(os.path.join(a.export, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    with open(os.path.join(a.export, "model.sha256"), "w") as f:
        f.write(f"{digest}  model.safetensors\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shard", required=True, help="directory written by `tessera data --format shard`")
    p.add_argument("--run", required=True, help="run directory: checkpoints, tokens, train.log")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    p.add_argument("--preset", choices=preset_names(), default="default",
                   help="the architecture: one of the engine's presets (engine/presets/)")
    p.add_argument("--vq-steps", type=int)
    p.add_argument("--vq-seconds", type=float, default=120)
    p.add_argument("--vq-batch", type=int, default=32)
    p.add_argument("--vq-lr", type=float, default=4e-4)
    p.add_argument("--vq-part", choices=["all", "decoder"], default="all",
                   help="decoder: fine-tune only the decoder of --init's VQ, keeping every image's codes")
    p.add_argument("--gpt-steps", type=int)
    p.add_argument("--gpt-seconds", type=float, default=300)
    p.add_argument("--gpt-batch", type=int, default=32)
    p.add_argument("--gpt-lr", type=float, default=1e-3)
    p.add_argument("--text-weight", type=float, default=1.0,
                   help="loss weight of target tokens under a sign's lettering (1: every token alike)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction,
                   help="bf16 autocast (default: on a GPU only)")
    p.add_argument("--ckpt-every", type=int, default=500)
    p.add_argument("--init", help="model folder to warm-start from when the run has no checkpoint")
    p.add_argument("--export", help="model folder to write (config.json, model.safetensors, model.sha256)")
    p.add_argument("--export-dtype", choices=["f32", "f16"], default="f32")
    p.add_argument("--model-id", default="tessera-shapes")
    a = p.parse_args()
    if a.vq_part == "decoder" and not a.init:
        p.error("--vq-part decoder fine-tunes a VQ: it needs --init")
    for name in ("vq_batch", "gpt_batch", "ckpt_every", "text_weight"):
        if getattr(a, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(a.seed)
    os.makedirs(a.run, exist_ok=True)
    device = torch.device(a.device)
    tcfg, vcfg, _ = preset(a.preset)

    shard = Shard(a.shard)
    a.edit_layout = shard.meta.get("edit_layout", "image-first")
    a.sign_glyphs = shard.meta.get("sign_glyphs", False)
    log(run := a.run, f"shard {a.shard}: {len(shard.examples)} examples, {len(shard.images)} images; device {device}")
    vq = train_vq(a, shard, run, device, vcfg)
    log(run, f"vq psnr on the last 512 images: {vq_psnr(shard, vq, device):.2f} dB")
    if a.gpt_steps == 0 and not os.path.exists(os.path.join(run, "gpt.pt")):
        # A VQ-only run: nothing to tokenize; the transformer exported is --init's as it is, or none.
        gpt = Transformer(tcfg) if a.init else None
        if gpt is not None:
            warm_start(gpt, a.init, "", run)
    else:
        gpt = train_gpt(a, shard, tokens_for(shard, vq, run, device), run, device, tcfg)
    if a.export:
        export(a, run, vq, gpt, vcfg, tcfg)
        log(run, f"exported to {a.export}")


if __name__ == "__main__":
    main()
