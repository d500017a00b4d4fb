"""Copies a trained model folder into its shipped form: float16 weights, config.json with the model id,
model.sha256.

    python trainer/ship.py runs/gpu2 models/tessera-shapes --model-id tessera-shapes-v1
"""

import argparse
import hashlib
import json
import os

import torch
from safetensors.torch import load_file, save_file


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--model-id", required=True)
    a = p.parse_args()
    os.makedirs(a.dst, exist_ok=True)
    w = load_file(os.path.join(a.src, "model.safetensors"))
    path = os.path.join(a.dst, "model.safetensors")
    save_file({k: v.to(torch.float16).contiguous() for k, v in w.items()}, path, metadata={"format": "tessera-1"})
    cfg = json.load(open(os.path.join(a.src, "config.json")))
    cfg["model_id"] = a.model_id
    json.dump(cfg, open(os.path.join(a.dst, "config.json"), "w"), indent=1)
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    open(os.path.join(a.dst, "model.sha256"), "w").write(f"{digest}  model.safetensors\n")
    print(digest)


if __name__ == "__main__":
    main()
