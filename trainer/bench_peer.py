"""The native speed peer of `tessera bench`: the same model folder, run by the PyTorch reference implementation
(tessera_ref.py) the way a researcher would: eager mode, float32 on the CPU, a KV cache, classifier-free
guidance as a batch of two (cond, uncond), temperature/top-p sampling, and one VQ decode of the finished token
grid. Prints one JSON object: medians over --runs runs after one warm-up run.

    trainer/.venv/bin/python trainer/bench_peer.py MODEL_DIR --runs 5 --threads 2 --guidance 2 --prompt "…"
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from parity import flat, rows  # noqa: E402
from tessera_ref import load_model_dir  # noqa: E402


def load(model_dir):
    gpt, vq, cfg = load_model_dir(model_dir)
    return gpt, vq, cfg["image_size"] // 2 ** (len(vq.c.dec_channels) - 1)


def sample(logits, cfg, temperature, top_p, generator):
    """logits [2, K] (cond, uncond) → one token id."""
    guided = logits[1] + cfg * (logits[0] - logits[1])
    if temperature <= 0:
        return int(guided.argmax())
    probs = torch.softmax(guided / temperature, dim=-1)
    sorted_probs, order = probs.sort(descending=True)
    keep = sorted_probs.cumsum(0) - sorted_probs < top_p  # the smallest prefix reaching top_p
    sorted_probs = sorted_probs * keep
    return int(order[torch.multinomial(sorted_probs / sorted_probs.sum(), 1, generator=generator)])


@torch.no_grad()
def generate(gpt, vq, grid, prompt, cfg, temperature, top_p, seed):
    """One image; returns (seconds to the whole image, seconds to the first finished token row)."""
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    cond, uncond = rows(prompt)
    (ci, cm), (ui, um) = flat(cond), flat(uncond)
    caches = [{} for _ in gpt.layers]
    h = gpt.hidden(gpt.embed(torch.stack([ci, ui]), torch.stack([cm, um])), 0, caches)
    logits = gpt.img_head(h[:, -1])
    pos, tokens, first_row = ci.shape[0], [], None
    is_img = torch.ones(2, 1, dtype=torch.bool)
    for i in range(grid * grid):
        t = sample(logits, cfg, temperature, top_p, generator)
        tokens.append(t)
        if len(tokens) == grid:
            first_row = time.perf_counter() - start
        if i + 1 == grid * grid:
            break
        x = gpt.embed(torch.tensor([[t], [t]]), is_img)
        logits = gpt.img_head(gpt.hidden(x, pos, caches)[:, -1])
        pos += 1
    vq.decode_indices(torch.tensor(tokens).view(1, grid, grid))
    return time.perf_counter() - start, first_row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", default="a big red circle in the center on a white background")
    ap.add_argument("--guidance", "--cfg", type=float, default=2.0, help="classifier-free guidance scale")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-p", type=float, default=1.0)
    a = ap.parse_args()
    if a.runs < 1:
        sys.exit("error: --runs must be at least 1")
    torch.set_num_threads(a.threads)
    gpt, vq, grid = load(a.model_dir)
    times = [generate(gpt, vq, grid, a.prompt, a.guidance, a.temperature, a.top_p, run) for run in range(a.runs + 1)][1:]
    total = statistics.median(t for t, _ in times)
    print(json.dumps({
        "peer": f"PyTorch {torch.__version__} eager, float32, KV cache, CFG batch 2",
        "threads": torch.get_num_threads(),
        "runs": a.runs,
        "tokens_per_s": grid * grid / total,
        "first_row_ms": 1e3 * statistics.median(f for _, f in times),
        "image_ms": 1e3 * total,
    }))


if __name__ == "__main__":
    main()
