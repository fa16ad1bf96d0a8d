#!/usr/bin/env python3
"""vit_torch.py — a model exported by vit_train (--export-model; tools/run.sh
keeps one in runs/main/) in plain PyTorch, without timm: the same module tree
and parameter names as timm's VisionTransformer, so the state dict loads with
strict=True, and a safetensors reader that needs only torch (no safetensors
package).

    import sys; sys.path.insert(0, "tools"); import vit_torch
    model = vit_torch.load("runs/main/model.json")        # eval mode, weights loaded
    probs = model(vit_torch.normalize(images_uint8, model.card)).softmax(-1)

With timm installed, the same files load into timm itself:

    import json, timm.models.vision_transformer as tv, vit_torch
    card = json.load(open("runs/main/model.json"))
    m = tv.VisionTransformer(**card["timm"]); m.load_state_dict(vit_torch.read_safetensors("runs/main/model.safetensors"))
"""
import json
import struct
from pathlib import Path

import torch
from torch import nn

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def read_safetensors(path):
    """name -> tensor of a safetensors file (little-endian; F32, F16, BF16)."""
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, t in header.items():
        begin, end = t["data_offsets"]
        raw = bytearray(data[8 + n + begin:8 + n + end])
        out[name] = torch.frombuffer(raw, dtype=DTYPES[t["dtype"]]).reshape(t["shape"]).clone()
    return out


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.qkv(x).reshape(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-2, -1) * (D // self.heads) ** -0.5, dim=-1) @ v
        return self.proj(a.transpose(1, 2).reshape(B, T, D))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, hidden, eps):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=eps), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=eps), Mlp(dim, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, chans, dim, patch):
        super().__init__()
        self.proj = nn.Conv2d(chans, dim, patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(nn.Module):
    """timm's VisionTransformer for global_pool 'token' or 'avg', as vitscale trains it."""

    def __init__(self, card):
        super().__init__()
        t, self.card = card["timm"], card
        dim, eps = t["embed_dim"], card["layer_norm_eps"]
        self.pool = t["global_pool"]
        self.patch_embed = PatchEmbed(t["in_chans"], dim, t["patch_size"])
        tokens = (t["img_size"] // t["patch_size"]) ** 2
        if t["class_token"]:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
            tokens += 1
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, dim))
        self.blocks = nn.Sequential(*[Block(dim, t["num_heads"], card["mlp_dim"], eps) for _ in range(t["depth"])])
        norm = nn.LayerNorm(dim, eps=eps)
        if t["fc_norm"]:
            self.fc_norm = norm
        else:
            self.norm = norm
        self.head = nn.Linear(dim, t["num_classes"])

    def forward(self, x):  # (B, C, H, W) normalised float -> (B, K) logits
        x = self.patch_embed(x)
        if hasattr(self, "cls_token"):
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.blocks(x + self.pos_embed)
        if self.pool == "token":
            return self.head(self.norm(x)[:, 0])
        return self.head(self.fc_norm(x.mean(dim=1)))


def normalize(images_uint8, card):
    """(B, C, H, W) uint8 -> the float input the model was trained on."""
    n = card["normalization"]
    mean = torch.tensor(n["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(n["std"]).view(1, -1, 1, 1)
    return (images_uint8.float() / 255 - mean) / std


def load(card_path):
    """The model of a model.json (its weights beside it), in eval mode."""
    card = json.loads(Path(card_path).read_text())
    model = VisionTransformer(card)
    model.load_state_dict(read_safetensors(Path(card_path).with_suffix(".safetensors")), strict=True)
    return model.eval()
