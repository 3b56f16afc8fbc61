"""The Thermodynamic Bridge Model (TBM): two small temporal-convolution encoders, one per modality.

``ObsEncoder`` maps the observed per-frame features (``features.observe_clip``) and ``PlanEncoder`` the planned
per-step features (``features.planned_features``) to unit vectors in one latent space (dimension ``latent``),
one vector per step, each seeing ±30 steps (four residual dilated convolutions, kernel 5, dilations 1-2-4-8).
They are trained contrastively (symmetric InfoNCE, CLIP-style; Radford et al. 2021) on twin-rendered pairs, so
that cos(z_obs[i], z_plan[j]) is high when clip frame i shows planned step j. A third head scores each aligned
(frame, step) pair for erratic motion (jitter the plan does not contain), trained on the twins' ground truth.

Weights ship as a small ``.pt`` file (``DEFAULT_MODEL_PATH``); ``save``/``load`` keep the feature
normalisation and the training provenance with them.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from .features import OBS_DIM, PLAN_DIM

DEFAULT_MODEL_PATH = Path(__file__).with_name("weights") / "tbm.pt"
FORMAT = "atlas-tbm-1"


class SeqEncoder(nn.Module):
    """(B, T, F) → (B, T, latent) unit vectors and (B, T, hidden) features."""

    def __init__(self, d_in: int, hidden: int = 64, latent: int = 32, dilations=(1, 2, 4, 8)):
        super().__init__()
        self.inp = nn.Conv1d(d_in, hidden, 1)
        self.blocks = nn.ModuleList(nn.Conv1d(hidden, hidden, 5, dilation=d, padding=2 * d) for d in dilations)
        self.out = nn.Conv1d(hidden, latent, 1)
        self.register_buffer("mean", torch.zeros(d_in))
        self.register_buffer("std", torch.ones(d_in))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = ((x - self.mean) / self.std).transpose(1, 2)
        h = self.inp(x)
        for conv in self.blocks:
            h = h + nn.functional.gelu(conv(h))
        z = nn.functional.normalize(self.out(h), dim=1)
        return z.transpose(1, 2), h.transpose(1, 2)


class BridgeModel(nn.Module):
    def __init__(self, hidden: int = 64, latent: int = 32):
        super().__init__()
        self.hparams = {"hidden": hidden, "latent": latent}
        self.obs = SeqEncoder(OBS_DIM, hidden, latent)
        self.plan = SeqEncoder(PLAN_DIM, hidden, latent)
        self.erratic = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))
        self.log_temp = nn.Parameter(torch.tensor(-2.3))  # InfoNCE temperature exp(-2.3) ≈ 0.1
        self.meta: dict = {}

    def erratic_logit(self, h_obs: torch.Tensor, h_plan: torch.Tensor) -> torch.Tensor:
        return self.erratic(torch.cat([h_obs, h_plan], dim=-1)).squeeze(-1)

    @torch.no_grad()
    def encode_obs(self, feats):
        z, h = self.obs(torch.as_tensor(feats, dtype=torch.float32)[None])
        return z[0], h[0]

    @torch.no_grad()
    def encode_plan(self, feats):
        z, h = self.plan(torch.as_tensor(feats, dtype=torch.float32)[None])
        return z[0], h[0]

    @torch.no_grad()
    def erratic_prob(self, h_obs, h_plan):
        return torch.sigmoid(self.erratic_logit(h_obs, h_plan))


def save(model: BridgeModel, path: Path) -> None:
    """Write weights + hyper-parameters + provenance atomically (float32 state dict)."""
    import io

    from atlas_core.atomic import atomic_write_bytes

    buf = io.BytesIO()
    torch.save({"format": FORMAT, "hparams": model.hparams, "meta": json.dumps(model.meta, allow_nan=False),
                "state": {k: v.detach().cpu().float() for k, v in model.state_dict().items()}}, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def load(path: Path | str | None = None) -> BridgeModel:
    """Load a model file (default: the shipped weights). ValueError with one line for a bad file."""
    path = Path(path) if path is not None else DEFAULT_MODEL_PATH
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such model file") from None
    except Exception as exc:  # torch raises many types for a corrupt file
        raise ValueError(f"{path}: not a TBM model file ({type(exc).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        fmt = blob.get("format") if isinstance(blob, dict) else "?"
        raise ValueError(f"{path}: not a TBM model file (format {fmt})")
    model = BridgeModel(**blob["hparams"])
    try:
        model.load_state_dict(blob["state"])
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not match the model ({str(exc).splitlines()[0]})") from None
    model.meta = json.loads(blob.get("meta") or "{}")
    model.eval()
    return model
