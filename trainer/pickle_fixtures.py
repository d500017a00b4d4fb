"""Writes tests/fixtures/janus-tiny-pickle/: janus-tiny's state_dict as `torch.save` writes a released
`pytorch_model.bin` (the zip container of PyTorch 1.6 and later), once in float32 (the fixture's own values)
and once in bfloat16 (Janus-Pro-1B's released dtype), so the engine's pickle loading is tested without Python.

    trainer/.venv/bin/python trainer/pickle_fixtures.py
"""

import os

import torch
from safetensors.torch import load_file

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
state = load_file(os.path.join(root, "janus-tiny", "model.safetensors"))
out = os.path.join(root, "janus-tiny-pickle")
os.makedirs(out, exist_ok=True)
for name, dtype in [("f32", torch.float32), ("bf16", torch.bfloat16)]:
    torch.save({k: v.to(dtype) for k, v in state.items()}, os.path.join(out, f"pytorch_model_{name}.bin"))
print("wrote", out, "with torch", torch.__version__)
