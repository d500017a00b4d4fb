"""Writes reference outputs of a model folder for the Rust engine's parity test (tests/native/parity.rs).

Everything runs in float32 on the CPU with the reference implementation (tessera_ref.py), so the Rust engine
must match to float32 rounding. The cases:
  prompt_ids / uncond_ids   [T] the sequence format (Rust's Prompt must build the same ids)
  prefill_logits            [2, K] cond and uncond logits at the last prompt position
  greedy_tokens             [N] greedy CFG tokens (scale CFG) for the whole image, with the KV cache
  greedy_logits             [N, 2, K] cond/uncond logits at every step of that run
  greedy_image              [3, H, W] the VQ decode of greedy_tokens, about [-1, 1]
  nocache_logits            [2, K] the last step's logits recomputed without a cache (cache == recompute)
  encode_input              [3, H, W] an image in [-1, 1]; encode_indices [N] its codes
  edit_tokens, edit_logits  [E], [E, 2, K] the first E greedy CFG steps of an edit of that image

    python trainer/parity.py MODEL_DIR OUT_DIR
"""

import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tessera_ref import load_model_dir  # noqa: E402

PAD, BOS, USER, GEN, IMG, IMG_END = 256, 257, 258, 259, 260, 261
PROMPT = "a big red circle in the center on a white background"
EDIT = "make the circle blue"
CFG = 3.0
EDIT_STEPS = 24  # a row and a half of the token grid


def rows(text, context=None, layout="image-first"):
    """(cond, uncond) as lists of (ids, is_img) segments; the format of engine/src/generation/prompt.rs, an
    edit (`context`: the source image's codes) in the model's `edit_layout`."""
    user = list(text.encode())
    def row(u):
        if context is None:
            return [([BOS, USER] + u + [GEN, IMG], False)]
        if layout == "text-first":
            return [([BOS, USER] + u + [IMG], False), (list(context), True), ([IMG_END, GEN, IMG], False)]
        return [([BOS, IMG], False), (list(context), True), ([IMG_END, USER] + u + [GEN, IMG], False)]
    return row(user), row([PAD] * len(user))


def flat(segs):
    ids = torch.tensor([i for s, _ in segs for i in s])
    img = torch.tensor([m for s, m in segs for _ in s])
    return ids, img


@torch.no_grad()
def main():
    model_dir, out = sys.argv[1], sys.argv[2]
    torch.set_num_threads(2)
    gpt, vq, cfg = load_model_dir(model_dir)
    size = cfg["image_size"]
    grid = size // 2 ** (len(vq.c.dec_channels) - 1)
    n = grid * grid

    layout = cfg.get("edit_layout", "image-first")

    def prefill(text, context=None):
        cond, uncond = rows(text, context, layout)
        (ci, cm), (ui, um) = flat(cond), flat(uncond)
        ids, img = torch.stack([ci, ui]), torch.stack([cm, um])
        caches = [{} for _ in gpt.layers]
        h = gpt.hidden(gpt.embed(ids, img), 0, caches)
        return gpt.img_head(h[:, -1]), caches, ids, img

    def greedy(text, steps, context=None):
        """Greedy CFG with the KV cache → (tokens, logits [steps, 2, K], prompt ids, prompt is_img)."""
        logits, caches, ids, img = prefill(text, context)
        pos = ids.shape[1]
        tokens, all_logits = [], []
        for i in range(steps):
            all_logits.append(logits)
            guided = logits[1] + CFG * (logits[0] - logits[1])
            t = int(guided.argmax())
            tokens.append(t)
            if i + 1 == steps:
                break
            x = gpt.embed(torch.tensor([[t], [t]]), torch.ones(2, 1, dtype=torch.bool))
            logits = gpt.img_head(gpt.hidden(x, pos, caches)[:, -1])
            pos += 1
        return tokens, all_logits, ids, img

    tokens, all_logits, ids, img = greedy(PROMPT, n)
    prefill_logits = all_logits[0]
    # The same last step recomputed from scratch, without a cache.
    full_ids = torch.cat([ids, torch.tensor([tokens[:-1], tokens[:-1]])], 1)
    full_img = torch.cat([img, torch.ones(2, n - 1, dtype=torch.bool)], 1)
    nocache = gpt.img_head(gpt.hidden(gpt.embed(full_ids, full_img))[:, -1])
    image = vq.decode_indices(torch.tensor(tokens).view(1, grid, grid))[0]

    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    disc = ((yy - size / 2 + 0.5) ** 2 + (xx - size / 2 + 0.5) ** 2) < (size * 0.15) ** 2
    enc_in = torch.ones(3, size, size)
    enc_in[:, disc] = torch.tensor([220, 40, 40], dtype=torch.float32)[:, None] / 127.5 - 1
    enc_idx = vq.encode(enc_in[None])[0].flatten()
    edit_tokens, edit_logits, *_ = greedy(EDIT, EDIT_STEPS, enc_idx.tolist())

    cond, uncond = rows(PROMPT)
    tensors = {
        "prompt_ids": flat(cond)[0].to(torch.int64), "uncond_ids": flat(uncond)[0].to(torch.int64),
        "prefill_logits": prefill_logits, "greedy_tokens": torch.tensor(tokens, dtype=torch.int64),
        "greedy_logits": torch.stack(all_logits), "greedy_image": image, "nocache_logits": nocache,
        "encode_input": enc_in, "encode_indices": enc_idx.to(torch.int64),
        "edit_tokens": torch.tensor(edit_tokens, dtype=torch.int64), "edit_logits": torch.stack(edit_logits),
    }
    os.makedirs(out, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, "cases.safetensors"))
    margins = []
    for lg in all_logits:
        g = (lg[1] + CFG * (lg[0] - lg[1])).sort(descending=True).values
        margins.append(float(g[0] - g[1]))
    meta = {"prompt": PROMPT, "edit": EDIT, "cfg": CFG, "torch": torch.__version__,
            "smallest_greedy_margin": min(margins),
            "cache_vs_recompute_max_abs": float((nocache - all_logits[-1]).abs().max())}
    json.dump(meta, open(os.path.join(out, "cases.json"), "w"), indent=1)
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
