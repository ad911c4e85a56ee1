"""PyTorch reference of physworld's JEPA world model (model/src/jepa.rs, layers.rs).

It loads a physworld checkpoint's safetensors weights as they are (same names, no
conversion) and
  1. checks that its encoder, target encoder, predictor and loss reproduce Candle's outputs
     on the batch that `export_reference` wrote (a correctness check, and the way to use
     physworld checkpoints outside Rust), then
  2. times a training step (loss, backward, AdamW, EMA) on the same batch, for the side by
     side comparison with `cargo bench -p physworld-model --bench train_step`.

    cargo run --release -p physworld-model --example export_reference -- /tmp/ref tiny 32
    python benchmarks/compare/torch_reference.py /tmp/ref [--threads 2] [--steps 10]

Needs torch, numpy and safetensors (pip). The model takes normalised object tokens
`obs [B, T, S, 20]`, a validity mask `valid [B, T, S]` and actions `[B, T, 3]`; how a
dataset becomes those is `model/src/batch.rs` (Batch::new).
"""

import argparse
import json
import math
import sys
import time

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

NEG = -1e9
LN_EPS = 1e-6


def ln_plain(x):
    return F.layer_norm(x, (x.shape[-1],), eps=LN_EPS)


class Weights:
    """A view of the flat checkpoint under a prefix."""

    def __init__(self, flat, prefix):
        self.flat, self.prefix = flat, prefix

    def __getitem__(self, name):
        return self.flat[f"{self.prefix}.{name}"]

    def sub(self, name):
        return Weights(self.flat, f"{self.prefix}.{name}")


def linear(w, x):
    return F.linear(x, w["weight"], w.flat.get(f"{w.prefix}.bias"))


def layer_norm(w, x):
    return F.layer_norm(x, (x.shape[-1],), w["weight"], w["bias"], eps=LN_EPS)


def attention(w, x, mask, heads):
    b, n, d = x.shape
    hd = d // heads
    qkv = linear(w.sub("qkv"), x).reshape(b, n, 3, heads, hd).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    att = q @ k.transpose(-1, -2) / math.sqrt(hd)
    if mask is not None:
        att = att + mask
    att = att.softmax(-1)
    y = (att @ v).transpose(1, 2).reshape(b, n, d)
    return linear(w.sub("proj"), y)


def block(w, x, mask, heads):
    x = x + attention(w.sub("attn"), layer_norm(w.sub("ln1"), x), mask, heads)
    h = F.gelu(linear(w.sub("mlp.fc1"), layer_norm(w.sub("ln2"), x)))
    return x + linear(w.sub("mlp.fc2"), h)


def sinusoidal(pos, dim):
    half = dim // 2
    k = (torch.arange(dim) % half).float()
    freq = torch.pow(torch.tensor(10000.0), -k / half)
    arg = torch.tensor(pos, dtype=torch.float32)[:, None] * freq[None, :]
    return torch.where(torch.arange(dim)[None, :] < half, torch.sin(arg), torch.cos(arg))


def encoder(w, cfg, obs, valid, t0=0):
    b, t, s, _ = obs.shape
    d = cfg["dim"]
    te = sinusoidal(list(range(t0, t0 + t)), d).reshape(1, t, 1, d)
    x = (linear(w.sub("embed"), obs) + te).reshape(b * t, s, d)
    # Key padding: absent or invisible objects are never attended to.
    mask = (1.0 - valid.reshape(b * t, 1, 1, s)) * NEG
    for i in range(cfg["depth"]):
        x = block(w.sub(f"blocks.{i}"), x, mask, cfg["heads"])
    return layer_norm(w.sub("norm"), x).reshape(b, t, s, d)


def predictor_mask(ctx_valid, tc, tf, s):
    b = ctx_valid.shape[0]
    t = tc + tf
    n = t * (s + 1)
    idx = torch.arange(n)
    frame, slot = idx // (s + 1), idx % (s + 1)
    causal = frame[None, :] > frame[:, None]  # key frame after query frame
    m = causal.expand(b, n, n).clone()
    # Invalid context objects as keys.
    kv = torch.ones(b, n, dtype=torch.bool)
    ctx_key = (frame < tc) & (slot < s)
    kv[:, ctx_key] = ctx_valid.reshape(b, tc * s) > 0
    m |= ~kv[:, None, :]
    return torch.where(m, torch.tensor(NEG), torch.tensor(0.0)).reshape(b, 1, n, n)


def predictor(w, cfg, ctx, ctx_valid, actions, tf):
    b, tc, s, _ = ctx.shape
    t = tc + tf
    p = cfg["pred_dim"]
    te = sinusoidal(list(range(t)), p)
    ctx_tok = linear(w.sub("input"), ctx) + te[:tc].reshape(1, tc, 1, p)
    last = linear(w.sub("input"), ctx[:, tc - 1 : tc])
    fut_tok = last + w["mask_token"].reshape(1, 1, 1, p) + te[tc:].reshape(1, tf, 1, p)
    obj = torch.cat([ctx_tok, fut_tok], 1)
    act = (linear(w.sub("action"), actions) + te.reshape(1, t, p)).reshape(b, t, 1, p)
    x = torch.cat([obj, act], 2).reshape(b, t * (s + 1), p)
    mask = predictor_mask(ctx_valid, tc, tf, s)
    for i in range(cfg["pred_depth"]):
        x = block(w.sub(f"blocks.{i}"), x, mask, cfg["pred_heads"])
    x = layer_norm(w.sub("norm"), x).reshape(b, t, s + 1, p)
    return linear(w.sub("output"), x[:, tc:, :s])


def variance_covariance(x, valid):
    d = x.shape[-1]
    flat = x.reshape(-1, d)
    wt = valid.reshape(-1, 1)
    n = wt.sum() + 1e-6
    mean = (flat * wt).sum(0, keepdim=True) / n
    xc = (flat - mean) * wt
    var = (xc**2).sum(0, keepdim=True) / n
    hinge = F.relu(1.0 - torch.sqrt(var + 1e-4)).mean()
    cov = xc.t() @ xc / n
    off = cov * (1.0 - torch.eye(d))
    return hinge, (off**2).sum() / d


def loss(flat, cfg, lcfg, batch, tf):
    obs, valid, actions = batch["obs"], batch["valid"], batch["actions"]
    tc = obs.shape[1] - tf
    online, target_w, pred_w = (Weights(flat, k) for k in ("online", "target", "predictor"))
    ctx = encoder(online, cfg, obs[:, :tc], valid[:, :tc])
    pred = predictor(pred_w, cfg, ctx, valid[:, :tc], actions, tf)
    fut_valid = valid[:, tc:].unsqueeze(3)
    denom = fut_valid.sum() + 1.0
    with torch.no_grad():
        target = ln_plain(encoder(target_w, cfg, obs, valid)[:, tc:])
    prediction = ((pred - target).abs() * fut_valid).sum() / cfg["dim"] / denom
    variance, covariance = variance_covariance(ctx, valid[:, :tc])
    total = prediction + lcfg["var_weight"] * variance + lcfg["cov_weight"] * covariance
    return total, prediction, variance, covariance


def check(flat, cfg, lcfg, batch, tf):
    online, target_w, pred_w = (Weights(flat, k) for k in ("online", "target", "predictor"))
    obs, valid, actions = batch["obs"], batch["valid"], batch["actions"]
    tc = obs.shape[1] - tf
    with torch.no_grad():
        got = {
            "encoder": encoder(online, cfg, obs, valid),
            "target": encoder(target_w, cfg, obs, valid),
            "predict": predictor(pred_w, cfg, encoder(online, cfg, obs[:, :tc], valid[:, :tc]), valid[:, :tc], actions, tf),
        }
        total, prediction, variance, covariance = loss(flat, cfg, lcfg, batch, tf)
    report = {}
    for k, v in got.items():
        ref = batch[k]
        report[k] = {"max_abs": float((v - ref).abs().max()), "ref_max": float(ref.abs().max()), "shape": list(v.shape)}
    for k, v in {"loss_total": total, "loss_prediction": prediction, "loss_variance": variance, "loss_covariance": covariance}.items():
        ref = float(batch[k][0])
        report[k] = {"torch": float(v), "candle": ref, "rel": abs(float(v) - ref) / max(abs(ref), 1e-12)}
    return report


def time_steps(flat, cfg, lcfg, batch, tf, steps):
    params = {k: v.clone().requires_grad_(not k.startswith("target.")) for k, v in flat.items()}
    trainable = [v for k, v in params.items() if not k.startswith("target.")]
    opt = torch.optim.AdamW(trainable, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.04)
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        total, *_ = loss(params, cfg, lcfg, batch, tf)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        with torch.no_grad():
            for k, v in params.items():
                if k.startswith("target."):
                    v.mul_(0.996).add_(params["online." + k[len("target."):]], alpha=0.004)
        if i >= 2:  # two warm-up steps
            times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def time_predict(flat, cfg, batch, tf, steps):
    online, pred_w = Weights(flat, "online"), Weights(flat, "predictor")
    obs, valid, actions = batch["obs"], batch["valid"], batch["actions"]
    tc = obs.shape[1] - tf
    times = []
    with torch.no_grad():
        for i in range(steps + 2):
            t0 = time.perf_counter()
            predictor(pred_w, cfg, encoder(online, cfg, obs[:, :tc], valid[:, :tc]), valid[:, :tc], actions, tf)
            if i >= 2:
                times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="folder written by the export_reference example")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10, help="timed steps (median reported)")
    ap.add_argument("--tolerance", type=float, default=1e-4, help="largest absolute difference allowed")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    conf = json.load(open(f"{a.dir}/config.json"))
    cfg, lcfg, tf = conf["model"], conf["loss"], conf["future_frames"]
    if cfg.get("objective", "jepa") != "jepa" or cfg.get("inverse_dynamics"):
        sys.exit("the reference covers the JEPA objective without the inverse-dynamics head")
    flat = load_file(f"{a.dir}/model.safetensors")
    batch = load_file(f"{a.dir}/batch.safetensors")
    report = check(flat, cfg, lcfg, batch, tf)
    ok = all(r["max_abs"] <= a.tolerance for k, r in report.items() if "max_abs" in r)
    ok &= all(r["rel"] <= 1e-4 for k, r in report.items() if "rel" in r)
    b = batch["obs"].shape[0]
    step = time_steps(flat, cfg, lcfg, batch, tf, a.steps)
    pred = time_predict(flat, cfg, batch, tf, a.steps)
    out = {
        "torch": torch.__version__,
        "threads": a.threads,
        "batch": b,
        "check": report,
        "matches": ok,
        "train_step_s": step,
        "train_windows_per_s": b / step,
        "predict_s": pred,
        "predict_windows_per_s": b / pred,
    }
    print(json.dumps(out, indent=1))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
