"""Resumable training checkpoints: weights, optimizer state, step and the validation log in one safetensors file
(never pickle), written through a temporary file so a killed run leaves the previous checkpoint whole."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def save_checkpoint(path: Path, net, opt, step: int, log: list) -> None:
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in net.state_dict().items()}
    state = opt.state_dict()
    for idx, st in state["state"].items():
        for name, val in st.items():
            if torch.is_tensor(val):
                tensors[f"opt.{idx}.{name}"] = (
                    val.detach().contiguous().reshape(-1) if val.dim() == 0 else val.detach().contiguous()
                )
    meta = {"step": str(step), "param_groups": json.dumps(state["param_groups"]), "log": json.dumps(log[-200:])}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def load_checkpoint(path: Path, net, opt) -> tuple[int, list]:
    from safetensors import safe_open

    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    net.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    opt_state: dict = {"state": {}, "param_groups": json.loads(meta["param_groups"])}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, idx, name = k.split(".", 2)
            opt_state["state"].setdefault(int(idx), {})[name] = v.reshape(()) if name == "step" else v
    opt.load_state_dict(opt_state)
    return int(meta["step"]), json.loads(meta["log"])
