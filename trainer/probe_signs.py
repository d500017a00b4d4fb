"""How much a model reads a sign's word off its prompt, in seconds instead of an eval's half hour.

For each sign example of a shard (`tessera data --format shard --mix single=0,multi=0,grid=0,edit=0`), the
target image's tokens are scored teacher-forced twice: after the caption, and after the same caption with the
sign's word swapped for another word of the same length (so every other position stays where it was). A model
that ignores the word scores both alike; one that reads it loses about log(40) ≈ 3.7 nats (one word of 40)
or more on the swapped caption.

    python trainer/probe_signs.py MODEL_DIR SHARD [--n 100]
prints one JSON object: `word_gap` (mean nats per image lost by the swap), `word_gap_median`, `prefers_true`
(share of images scored better with the true word) and `n`.
"""

import argparse
import json
import os
import random
import re
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tessera_ref import load_model_dir, target_nll  # noqa: E402
from train import Shard  # noqa: E402

# Sign words are the only upper-case runs in a caption (English captions are lower case, Chinese has none).
WORD = re.compile(r"[A-Z]{2,}")


def image_nll(gpt, prompt, tokens):
    """Summed teacher-forced loss (nats) of `tokens` [256] after the text-only `prompt` (list of ids)."""
    ids = torch.cat([torch.tensor(prompt), tokens])
    is_img = torch.cat([torch.zeros(len(prompt), dtype=torch.bool), torch.ones(len(tokens), dtype=torch.bool)])
    return target_nll(gpt, ids, is_img, len(prompt))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="model folder (config.json + model.safetensors)")
    p.add_argument("shard", help="a shard with sign examples")
    p.add_argument("--n", type=int, default=100, help="sign examples to score")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    gpt, vq, _ = load_model_dir(a.model)
    shard = Shard(a.shard)
    special = shard.meta["tokens"]
    signs = [e for e in shard.examples if e["category"] == "sign" and len(WORD.findall(e["text"])) == 1][:a.n]
    if not signs:
        raise SystemExit(f"{a.shard}: no sign examples (write one with --mix single=0,multi=0,grid=0,edit=0)")
    words = sorted({WORD.search(e["text"]).group() for e in signs})
    rng = random.Random(0)
    gaps = []
    for e in signs:
        word = WORD.search(e["text"]).group()
        others = [w for w in words if len(w) == len(word) and w != word]
        if not others:
            continue
        swapped = WORD.sub(rng.choice(others), e["text"], count=1)
        tokens = vq.encode(shard.image_batch([e["tgt"]], torch.device("cpu"))).flatten().long()
        true = image_nll(gpt, e["cond"], tokens)
        # The generation prompt (engine/src/generation/prompt.rs): <bos> <user> text… <gen> <img>.
        prompt = [special["bos"], special["user"], *swapped.encode(), special["gen"], special["img"]]
        other = image_nll(gpt, prompt, tokens)
        gaps.append(other - true)
    print(json.dumps({"word_gap": round(float(np.mean(gaps)), 3),
                      "word_gap_median": round(float(np.median(gaps)), 3),
                      "prefers_true": round(float(np.mean([g > 0 for g in gaps])), 3), "n": len(gaps)}))


if __name__ == "__main__":
    main()
