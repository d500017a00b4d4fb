"""The native speed peer of `tessera bench`: the same model folder, run by the PyTorch reference implementation
the way a researcher would: eager mode, float32 on the CPU, a KV cache, classifier-free guidance as a batch of
two (cond, uncond), temperature/top-p sampling. A Tessera folder runs tessera_ref.py and one VQ decode of the
finished token grid; a Janus folder (config.json of `model_type: multi_modality`) runs Hugging Face's
LlamaForCausalLM decoder with Janus's generation heads (gen_embed, gen_aligner, gen_head) on the prompt ids
given, and times the transformer only (its VQ-16 decode is left out: the engine's `decode_steps_per_s` and
`prefill_ms` are what it is compared with). Prints one JSON object: medians over --runs runs after one warm-up.

    trainer/.venv/bin/python trainer/bench_peer.py MODEL_DIR --runs 5 --threads 2 --guidance 2 --prompt "…"
    trainer/.venv/bin/python trainer/bench_peer.py JANUS_DIR --prompt-ids 100000,…,100003 --guidance 5
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


def load_janus(model_dir):
    """A Janus folder's image half as float32 modules: (LlamaModel, gen_embed, gen_aligner, gen_head, grid)."""
    from safetensors.torch import load_file
    from transformers import LlamaConfig, LlamaModel

    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    index = os.path.join(model_dir, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    w = {}
    for f in files:
        w.update({k: v.float() for k, v in load_file(os.path.join(model_dir, f)).items()})
    lm = cfg["language_config"]
    llama = LlamaModel(LlamaConfig(**{k: v for k, v in lm.items() if k != "model_type"}, attn_implementation="eager"))
    llama.load_state_dict({k[len("language_model.model."):]: v for k, v in w.items() if k.startswith("language_model.model.")})
    codes, embed = cfg["gen_vision_config"]["params"]["image_token_size"], cfg["gen_vision_config"]["params"]["n_embed"]
    d = lm["hidden_size"]
    gen_embed = torch.nn.Embedding(codes, embed)
    gen_embed.load_state_dict({"weight": w["gen_embed.weight"]})

    def mlp(prefix_1, prefix_2, d_in, d_hidden, d_out):
        m = torch.nn.Sequential(torch.nn.Linear(d_in, d_hidden), torch.nn.GELU(), torch.nn.Linear(d_hidden, d_out))
        m[0].load_state_dict({"weight": w[prefix_1 + "weight"], "bias": w[prefix_1 + "bias"]})
        m[2].load_state_dict({"weight": w[prefix_2 + "weight"], "bias": w[prefix_2 + "bias"]})
        return m

    aligner = mlp("gen_aligner.layers.0.", "gen_aligner.layers.2.", embed, d, d)
    head = mlp("gen_head.output_mlp_projector.", "gen_head.vision_head.", d, d, codes)
    grid = cfg.get("generation", {}).get("img_size", 384) // 16
    return [m.eval() for m in (llama, gen_embed, aligner, head)] + [grid]


@torch.no_grad()
def generate_janus(modules, prompt_ids, pad_id, cfg, temperature, top_p, seed):
    """One image's tokens; returns (seconds to the first token, decode steps per second)."""
    from transformers import DynamicCache

    llama, gen_embed, aligner, head, grid = modules
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    cond = torch.tensor(prompt_ids)
    uncond = cond.clone()
    uncond[1:-1] = pad_id
    cache = DynamicCache()
    out = llama(inputs_embeds=llama.embed_tokens(torch.stack([cond, uncond])), past_key_values=cache, use_cache=True)
    t = sample(head(out.last_hidden_state[:, -1]), cfg, temperature, top_p, generator)
    first = time.perf_counter() - start
    for _ in range(grid * grid - 1):
        x = aligner(gen_embed(torch.tensor([[t], [t]])))
        out = llama(inputs_embeds=x, past_key_values=out.past_key_values, use_cache=True)
        t = sample(head(out.last_hidden_state[:, -1]), cfg, temperature, top_p, generator)
    steps = grid * grid - 1
    return first, steps / (time.perf_counter() - start - first)


def peak_rss_mb():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main_janus(a):
    modules = load_janus(a.model_dir)
    if not a.prompt_ids:
        sys.exit("error: a Janus folder is benched on --prompt-ids (the engine's tokenizer is not on this side)")
    ids = [int(i) for i in a.prompt_ids.split(",")]
    cfg = json.load(open(os.path.join(a.model_dir, "config.json")))
    pad = cfg.get("generation", {}).get("pad_id", 100002)
    runs = [generate_janus(modules, ids, pad, a.guidance, a.temperature, a.top_p, run) for run in range(a.runs + 1)][1:]
    import transformers
    print(json.dumps({
        "peer": f"PyTorch {torch.__version__} eager, transformers {transformers.__version__} LlamaModel, float32, KV cache, CFG batch 2",
        "threads": torch.get_num_threads(),
        "runs": a.runs,
        "first_token_ms": 1e3 * statistics.median(f for f, _ in runs),
        "decode_steps_per_s": statistics.median(s for _, s in runs),
        "peak_rss_mb": peak_rss_mb(),
    }))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", default="a big red circle in the center on a white background")
    ap.add_argument("--guidance", "--cfg", type=float, default=2.0, help="classifier-free guidance scale")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--prompt-ids", help="Janus folders: the prompt's token ids, comma-separated")
    a = ap.parse_args()
    if a.runs < 1:
        sys.exit("error: --runs must be at least 1")
    torch.set_num_threads(a.threads)
    if json.load(open(os.path.join(a.model_dir, "config.json"))).get("model_type") == "multi_modality":
        return main_janus(a)
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
