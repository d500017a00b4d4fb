"""A model's held-out loss by category, in a minute instead of an eval's four: the teacher-forced loss (nats
per target image, summed over its 256 tokens) of every example of a shard the model never trained on, as the
trainer scores it (`train.Sequences`, image tokens from the model's own VQ in exact float32). Lower is better;
two models compare only on the same shard, written in each model's edit layout (`--edit-layout`; the images
and captions do not depend on it).

    tessera data --format shard --seed 4343 --n 600 --edit-layout text-first --out held-out
    python trainer/val_loss.py MODEL_DIR held-out [--n 600]
prints one JSON object: the mean nats per image of each category (`single`, `multi`, `grid`, `sign`, `edit`),
`model_id` and `n`.
"""

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tessera_ref import load_model_dir, target_nll  # noqa: E402
from train import Sequences, Shard, tokenize  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="model folder (config.json + model.safetensors)")
    p.add_argument("shard", help="a shard the model was not trained on")
    p.add_argument("--n", type=int, default=600, help="examples to score (the shard's first N)")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    gpt, vq, cfg = load_model_dir(a.model)
    shard = Shard(a.shard)
    model_layout = cfg.get("edit_layout", "image-first")
    shard_layout = shard.meta.get("edit_layout", "image-first")
    if model_layout != shard_layout:
        raise SystemExit(f"{a.model} reads {model_layout} edits but {a.shard} is written {shard_layout}: write "
                         f"the shard with --edit-layout {model_layout}")
    shard.examples = shard.examples[:a.n]
    # An example's source image is written just before its target, so the first N examples need only the
    # images up to the last target they name: the rest are not tokenized.
    shard.images = shard.images[:1 + max(e["tgt"] for e in shard.examples)]
    seqs = Sequences(shard, tokenize(shard, vq, torch.device("cpu")), seed=0)
    nats = {}
    for e in shard.examples:
        ids, is_img, n_prompt = seqs.one(e, uncond=False)
        nll = target_nll(gpt, torch.from_numpy(ids), torch.from_numpy(is_img), n_prompt)
        nats.setdefault(e["category"], []).append(nll)
    report = {k: round(sum(v) / len(v), 2) for k, v in sorted(nats.items())}
    print(json.dumps(report | {"model_id": cfg.get("model_id"), "n": len(shard.examples)}))


if __name__ == "__main__":
    main()
