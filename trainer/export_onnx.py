"""Exports a model folder's transformer to ONNX for the in-browser speed peer (ONNX Runtime Web, the engine
under transformers.js): one graph for prefill and KV-cached decode steps, run by bench/peer-bench.mjs.

    trainer/.venv/bin/python trainer/export_onnx.py MODEL_DIR OUT_DIR [--prompt "…"]

Graph `OUT_DIR/transformer.onnx` (float32, opset 17):
  ids [B, T] int64, is_img [B, T] bool, past_k, past_v [L, B, H, P, hd] float32
  → logits [B, K] at the last position, present_k, present_v [L, B, H, P+T, hd]
`OUT_DIR/prompt.json`: the prompt's (cond, uncond) prefill rows in the engine's token format, the image
grid, and the graph's sizes, so the page needs no tokenizer. With onnxruntime installed, the export is checked
against the PyTorch reference (prefill and one decode step) before it is written out.
"""

import argparse
import json
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from parity import IMG, flat, rows  # noqa: E402
from tessera_ref import load_model_dir, rope_tables  # noqa: E402


class Step(nn.Module):
    """The reference transformer over new tokens at positions P..P+T, with the KV cache as tensors."""

    def __init__(self, gpt):
        super().__init__()
        self.gpt = gpt

    def forward(self, ids, is_img, past_k, past_v):
        gpt = self.gpt
        x = gpt.embed(ids, is_img)
        pos = torch.arange(ids.shape[1]) + past_k.shape[3]
        cos, sin = rope_tables(gpt.c.dim // gpt.c.n_heads, pos, gpt.c.rope_theta)
        ks, vs = [], []
        for i, layer in enumerate(gpt.layers):
            cache = {"k": past_k[i], "v": past_v[i]}
            x = layer(x, cos, sin, cache)
            ks.append(cache["k"])
            vs.append(cache["v"])
        logits = gpt.img_head(gpt.norm(x)[:, -1])
        return logits, torch.stack(ks), torch.stack(vs)


def empty_cache(gpt, batch):
    c = gpt.c
    return torch.zeros(c.n_layers, batch, c.n_heads, 0, c.dim // c.n_heads)


@torch.no_grad()
def check(step, path, ids, is_img):
    """The ONNX graph against PyTorch: prefill, then one image-token decode step."""
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    past = empty_cache(step.gpt, ids.shape[0])
    feeds = {"ids": ids.numpy(), "is_img": is_img.numpy(), "past_k": past.numpy(), "past_v": past.numpy()}
    for _ in range(2):
        want = step(torch.from_numpy(feeds["ids"]), torch.from_numpy(feeds["is_img"]),
                    torch.from_numpy(feeds["past_k"]), torch.from_numpy(feeds["past_v"]))
        got = session.run(None, feeds)
        worst = max(float((torch.from_numpy(g) - w).abs().max()) for g, w in zip(got, want))
        if worst > 1e-3:
            sys.exit(f"error: the ONNX graph differs from PyTorch by {worst} (T={feeds['ids'].shape[1]})")
        token = int(got[0][0].argmax())
        feeds = {"ids": torch.full((ids.shape[0], 1), token).numpy(), "is_img": torch.ones(ids.shape[0], 1, dtype=torch.bool).numpy(),
                 "past_k": got[1], "past_v": got[2]}
    print(f"checked against PyTorch: max |difference| {worst:.2e}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--prompt", default="a big red circle in the center on a white background")
    a = ap.parse_args()
    gpt, vq, cfg = load_model_dir(a.model_dir)
    grid = cfg["image_size"] // 2 ** (len(vq.c.dec_channels) - 1)
    cond, uncond = rows(a.prompt)
    (ci, cm), (ui, um) = flat(cond), flat(uncond)
    ids, is_img = torch.stack([ci, ui]), torch.stack([cm, um]).bool()
    step = Step(gpt).eval()
    os.makedirs(a.out_dir, exist_ok=True)
    path = os.path.join(a.out_dir, "transformer.onnx")
    past = empty_cache(gpt, 2)
    cache_axes = {1: "batch", 3: "past"}
    torch.onnx.export(
        step, (ids, is_img, past, past), path, dynamo=False, opset_version=17,
        input_names=["ids", "is_img", "past_k", "past_v"],
        output_names=["logits", "present_k", "present_v"],
        dynamic_axes={"ids": {0: "batch", 1: "new"}, "is_img": {0: "batch", 1: "new"},
                      "past_k": cache_axes, "past_v": cache_axes, "logits": {0: "batch"},
                      "present_k": {1: "batch", 3: "total"}, "present_v": {1: "batch", 3: "total"}},
    )
    try:
        check(step, path, ids, is_img)
    except ImportError:
        print("onnxruntime is not installed: the export was not checked", file=sys.stderr)
    c = gpt.c
    with open(os.path.join(a.out_dir, "prompt.json"), "w") as f:
        json.dump({
            "model_id": cfg.get("model_id"), "prompt": a.prompt, "grid": grid, "image_token": IMG,
            "layers": c.n_layers, "heads": c.n_heads, "head_dim": c.dim // c.n_heads, "codebook_size": c.codebook_size,
            "ids": ids.tolist(), "is_img": is_img.tolist(),
        }, f)
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB) and prompt.json", file=sys.stderr)


if __name__ == "__main__":
    main()
