"""Reference implementation of Tessera's model in PyTorch: the trainer's model and the parity/speed peer of
the Rust engine (engine/src/model/transformer.rs, engine/src/model/vq.rs). Tensor names here are the checkpoint's names.

Transformer: LLaMA-style decoder (RMSNorm, rotary positions in the rotate-half form, SwiGLU, no biases) over
one sequence of text and image tokens. Text tokens use `text_embed`; image tokens use `img_embed` followed by
the `img_align` MLP; image tokens are predicted by the `img_head` MLP over the codebook (after Janus-Pro).

VQ: convolutional encoder, L2-normalised codebook (after LlamaGen), and a *vertically causal* decoder: every
3×3 convolution sees the row itself and two rows above, never below, and normalisation is per pixel, so the
pixels of token row r depend only on token rows 0..r and each finished token row is final pixels at once.
"""

import json
import os
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F


# The architectures are the engine's own presets (engine/presets/*.json): the fields of a model folder's
# config.json, read here so the trainer and the engine cannot disagree on them.
PRESETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "engine", "presets")


@dataclass
class TransformerConfig:
    dim: int
    n_layers: int
    n_heads: int
    mlp_hidden: int
    text_vocab: int
    codebook_size: int
    img_embed_dim: int
    max_seq: int
    rope_theta: float
    norm_eps: float


@dataclass
class VqConfig:
    codebook_size: int
    code_dim: int
    # Channels per resolution, finest first: e.g. 128², 64², 32², 16² for a 128² image (downsample 8).
    enc_channels: list
    dec_channels: list
    res_blocks: int
    norm_eps: float


def preset_names():
    return sorted(name[:-len(".json")] for name in os.listdir(PRESETS) if name.endswith(".json"))


def preset(name):
    """(TransformerConfig, VqConfig, image_size) of the engine's preset `name` (engine/presets/NAME.json)."""
    with open(os.path.join(PRESETS, f"{name}.json")) as f:
        c = json.load(f)
    return TransformerConfig(**c["transformer"]), VqConfig(**c["vq"]), c["image_size"]


def config_dict(tcfg: TransformerConfig, vcfg: VqConfig, image_size: int = 128) -> dict:
    return {"image_size": image_size, "transformer": asdict(tcfg), "vq": asdict(vcfg)}


# ---------------------------------------------------------------------------------------------- transformer

class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def rope_tables(head_dim, positions, theta):
    """cos/sin [T, head_dim] for integer positions [T] (HF LLaMA layout: the two halves share frequencies)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=positions.device) / head_dim))
    freqs = positions.float()[:, None] * inv_freq[None, :]  # [T, hd/2]
    emb = torch.cat([freqs, freqs], dim=-1)  # [T, hd]
    return emb.cos(), emb.sin()


def apply_rope(x, cos, sin):
    """x [B, H, T, hd]; cos/sin [T, hd]."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.n_heads = c.n_heads
        self.wq = nn.Linear(c.dim, c.dim, bias=False)
        self.wk = nn.Linear(c.dim, c.dim, bias=False)
        self.wv = nn.Linear(c.dim, c.dim, bias=False)
        self.wo = nn.Linear(c.dim, c.dim, bias=False)

    def forward(self, x, cos, sin, cache=None):
        """x [B, T, D]. cache: None (full causal attention) or a dict with 'k', 'v' [B, H, S, hd] of earlier
        positions, updated in place."""
        b, t, d = x.shape
        hd = d // self.n_heads
        q = self.wq(x).view(b, t, self.n_heads, hd).transpose(1, 2)  # [B, H, T, hd]
        k = self.wk(x).view(b, t, self.n_heads, hd).transpose(1, 2)
        v = self.wv(x).view(b, t, self.n_heads, hd).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            if cache.get("k") is not None:
                k = torch.cat([cache["k"], k], dim=2)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
            s = k.shape[2]
            # New positions s-t..s-1 attend to every cached position and causally among themselves.
            mask = torch.ones(t, s, dtype=torch.bool, device=x.device).tril(diagonal=s - t)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.wo(out.transpose(1, 2).reshape(b, t, d))


class Mlp(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.w_gate = nn.Linear(c.dim, c.mlp_hidden, bias=False)
        self.w_up = nn.Linear(c.dim, c.mlp_hidden, bias=False)
        self.w_down = nn.Linear(c.mlp_hidden, c.dim, bias=False)

    def forward(self, x):
        return self.w_down(F.silu(self.w_gate(x)) * self.w_up(x))


class Block(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.attn_norm = RMSNorm(c.dim, c.norm_eps)
        self.attn = Attention(c)
        self.mlp_norm = RMSNorm(c.dim, c.norm_eps)
        self.mlp = Mlp(c)

    def forward(self, x, cos, sin, cache=None):
        x = x + self.attn(self.attn_norm(x), cos, sin, cache)
        return x + self.mlp(self.mlp_norm(x))


class Transformer(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.c = c
        self.text_embed = nn.Embedding(c.text_vocab, c.dim)
        self.img_embed = nn.Embedding(c.codebook_size, c.img_embed_dim)
        self.img_align = nn.Sequential(nn.Linear(c.img_embed_dim, c.dim), nn.GELU(), nn.Linear(c.dim, c.dim))
        self.layers = nn.ModuleList([Block(c) for _ in range(c.n_layers)])
        self.norm = RMSNorm(c.dim, c.norm_eps)
        self.img_head = nn.Sequential(nn.Linear(c.dim, c.dim), nn.GELU(), nn.Linear(c.dim, c.codebook_size))
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("wo.weight") or name.endswith("w_down.weight"):
                nn.init.normal_(p, std=0.02 / (2 * c.n_layers) ** 0.5)

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def embed(self, ids, is_img):
        """ids [B, T] int64 (text id or codebook index), is_img [B, T] bool → [B, T, D]."""
        text = self.text_embed(torch.where(is_img, 0, ids))
        img = self.img_align(self.img_embed(torch.where(is_img, ids, 0)))
        return torch.where(is_img[..., None], img, text)

    def hidden(self, x, start_pos=0, caches=None):
        """x [B, T, D] embeddings at positions start_pos..start_pos+T → final-norm hidden states [B, T, D]."""
        pos = torch.arange(start_pos, start_pos + x.shape[1], device=x.device)
        cos, sin = rope_tables(self.c.dim // self.c.n_heads, pos, self.c.rope_theta)
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, None if caches is None else caches[i])
        return self.norm(x)

    def forward(self, ids, is_img):
        """Teacher-forced logits over the codebook at every position: [B, T, K]."""
        return self.img_head(self.hidden(self.embed(ids, is_img)))


# ---------------------------------------------------------------------------------------------------- VQ

class ChannelNorm(nn.Module):
    """LayerNorm over channels at each pixel of [B, C, H, W] (no statistics across pixels, so it streams)."""

    def __init__(self, c, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) * torch.rsqrt(var + self.eps)
        return x * self.weight[None, :, None, None] + self.bias[None, :, None, None]


class CausalConv(nn.Conv2d):
    """3×3 convolution that sees its row and the two rows above (zero rows above the image top), and one
    column either side."""

    def __init__(self, cin, cout):
        super().__init__(cin, cout, 3, padding=0)

    def forward(self, x):
        return super().forward(F.pad(x, (1, 1, 2, 0)))


def conv3(cin, cout, causal):
    return CausalConv(cin, cout) if causal else nn.Conv2d(cin, cout, 3, padding=1)


class ResBlock(nn.Module):
    def __init__(self, c, eps, causal):
        super().__init__()
        self.norm1 = ChannelNorm(c, eps)
        self.conv1 = conv3(c, c, causal)
        self.norm2 = ChannelNorm(c, eps)
        self.conv2 = conv3(c, c, causal)

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        return x + self.conv2(F.silu(self.norm2(h)))


class Encoder(nn.Module):
    def __init__(self, c: VqConfig):
        super().__init__()
        ch = c.enc_channels
        self.conv_in = nn.Conv2d(3, ch[0], 3, padding=1)
        self.levels = nn.ModuleList()
        for i, ci in enumerate(ch):
            level = nn.Module()
            level.res = nn.ModuleList([ResBlock(ci, c.norm_eps, False) for _ in range(c.res_blocks)])
            if i + 1 < len(ch):
                level.down = nn.Conv2d(ci, ch[i + 1], 3, stride=2, padding=1)
            self.levels.append(level)
        self.norm_out = ChannelNorm(ch[-1], c.norm_eps)
        self.conv_out = nn.Conv2d(ch[-1], c.code_dim, 1)

    def forward(self, img):
        """img [B, 3, H, W] in [-1, 1] → z [B, code_dim, H/8, W/8]."""
        x = self.conv_in(img)
        for level in self.levels:
            for r in level.res:
                x = r(x)
            if hasattr(level, "down"):
                x = level.down(x)
        return self.conv_out(F.silu(self.norm_out(x)))


class Decoder(nn.Module):
    def __init__(self, c: VqConfig):
        super().__init__()
        ch = c.dec_channels
        self.conv_in = CausalConv(c.code_dim, ch[-1])
        # levels[i] works at the resolution of channels ch[i]; run coarsest (last) first.
        self.levels = nn.ModuleList()
        for i, ci in enumerate(ch):
            level = nn.Module()
            level.res = nn.ModuleList([ResBlock(ci, c.norm_eps, True) for _ in range(c.res_blocks)])
            if i > 0:
                level.up = CausalConv(ci, ch[i - 1])
            self.levels.append(level)
        self.norm_out = ChannelNorm(ch[0], c.norm_eps)
        self.conv_out = CausalConv(ch[0], 3)

    def forward(self, quant):
        """quant [B, code_dim, h, w] → image [B, 3, 8h, 8w] (about [-1, 1])."""
        x = self.conv_in(quant)
        for level in reversed(self.levels):
            for r in level.res:
                x = r(x)
            if hasattr(level, "up"):
                x = level.up(F.interpolate(x, scale_factor=2, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(x)))


class VQ(nn.Module):
    def __init__(self, c: VqConfig):
        super().__init__()
        self.c = c
        self.encoder = Encoder(c)
        self.codebook = nn.Parameter(F.normalize(torch.randn(c.codebook_size, c.code_dim), dim=1))
        self.decoder = Decoder(c)

    def normalized_codebook(self):
        return F.normalize(self.codebook, dim=1)

    def quantize(self, z):
        """z [B, D, h, w] → (indices [B, h, w], quant [B, D, h, w], z normalised). Always in f32: nearest-code
        search in bf16 picks wrong codes."""
        with torch.autocast(device_type=z.device.type, enabled=False):
            zn = F.normalize(z.float(), dim=1)
            flat = zn.permute(0, 2, 3, 1).reshape(-1, self.c.code_dim)  # [N, D]
            cb = self.normalized_codebook().float()
            # |z|² + |e|² − 2 z·e with unit vectors: argmin distance = argmax similarity.
            idx = (flat @ cb.t()).argmax(dim=1)
            quant = cb[idx].view(z.shape[0], z.shape[2], z.shape[3], -1).permute(0, 3, 1, 2)
            return idx.view(z.shape[0], z.shape[2], z.shape[3]), quant, zn

    def encode(self, img):
        """img [B, 3, H, W] in [-1, 1] → codebook indices [B, h, w]."""
        return self.quantize(self.encoder(img))[0]

    def decode_indices(self, idx):
        """idx [B, h, w] → image [B, 3, 8h, 8w]."""
        quant = self.normalized_codebook()[idx].permute(0, 3, 1, 2)
        return self.decoder(quant)

    def forward(self, img):
        idx, quant, zn = self.quantize(self.encoder(img))
        codebook_loss = F.mse_loss(quant, zn.detach())
        commit_loss = F.mse_loss(zn, quant.detach())
        quant_st = zn + (quant - zn).detach()
        return self.decoder(quant_st), idx, codebook_loss, commit_loss


def load_model_dir(model_dir):
    """A model folder (config.json + model.safetensors) as float32 (Transformer, VQ, config dict), eval mode."""
    import json
    import os
    from safetensors.torch import load_file

    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    tc, vc = TransformerConfig(**cfg["transformer"]), VqConfig(**cfg["vq"])
    w = {k: v.float() for k, v in load_file(os.path.join(model_dir, "model.safetensors")).items()}
    gpt, vq = Transformer(tc).eval(), VQ(vc).eval()
    gpt.load_state_dict({k: v for k, v in w.items() if not k.startswith("vq.")})
    vq.load_state_dict({k[3:]: v for k, v in w.items() if k.startswith("vq.")})
    return gpt, vq, cfg


@torch.no_grad()
def target_nll(gpt, ids, is_img, n_prompt):
    """Summed teacher-forced loss (nats) of the tokens after the first `n_prompt` of one sequence: ids and
    is_img [T], the prompt (text and any source image) followed by the target image's tokens."""
    logits = gpt(ids[None, :-1], is_img[None, :-1])[0, n_prompt - 1:]  # [T - n_prompt, codebook]
    return F.cross_entropy(logits, ids[n_prompt:], reduction="sum").item()
