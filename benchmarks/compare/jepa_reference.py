"""Reference implementation of physworld's JEPA world model (model/src/jepa.rs, layers.rs)
in Python, on NumPy or PyTorch.

It reads a physworld checkpoint's safetensors as they are (same names, no conversion) and
  1. checks that its encoder, target encoder, predictor and loss reproduce Candle's outputs
     on the batch that `export_reference` wrote (a correctness check, run in CI on NumPy,
     and the way to use physworld checkpoints outside Rust), then, with --time on the
     torch backend,
  2. times a training step (loss, backward, AdamW, EMA) on the same batch, for the side by
     side comparison with `cargo bench -p physworld-model --bench train_step`.

    cargo run --release -p physworld-model --example export_reference -- /tmp/ref tiny 32
    python benchmarks/compare/jepa_reference.py /tmp/ref                      # NumPy check
    python benchmarks/compare/jepa_reference.py /tmp/ref --backend torch --time --threads 2

Needs numpy; torch for --backend torch. The model takes normalised object tokens
`obs [B, T, S, 20]`, a validity mask `valid [B, T, S]` and actions `[B, T, 3]`; how a
dataset becomes those is `model/src/batch.rs` (Batch::new). Prints a JSON report; exits 1
when an output differs by more than --tolerance.
"""

import argparse
import json
import math
import struct
import sys
import time

import numpy as np

NEG = -1e9
LN_EPS = 1e-6


def load_safetensors(path):
    """Tensors of a .safetensors file as float32 NumPy arrays (no dependency)."""
    dtypes = {"F32": np.float32, "F64": np.float64, "U8": np.uint8, "U32": np.uint32, "I64": np.int64}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=dtypes[meta["dtype"]]).reshape(meta["shape"])
        out[name] = arr.astype(np.float32)
    return out


class NumpyOps:
    """The few tensor operations the model needs, on NumPy (float32)."""

    name = "numpy"
    _erf = np.vectorize(math.erf, otypes=[np.float64])

    def tensor(self, a):
        return np.asarray(a, dtype=np.float32)

    def linear(self, x, w, b):
        y = x @ w.T
        return y if b is None else y + b

    def layer_norm(self, x, g=None, b=None):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        y = (x - mean) / np.sqrt(var + np.float32(LN_EPS))
        return y if g is None else y * g + b

    def softmax(self, x):
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    def gelu(self, x):
        return (0.5 * x * (1.0 + self._erf(x / math.sqrt(2.0)))).astype(np.float32)

    def cat(self, xs, axis):
        return np.concatenate(xs, axis)

    def permute(self, x, dims):
        return np.transpose(x, dims)

    def swap_last(self, x):
        return np.swapaxes(x, -1, -2)

    def relu(self, x):
        return np.maximum(x, 0)

    def sqrt(self, x):
        return np.sqrt(x)

    def abs(self, x):
        return np.abs(x)

    def eye(self, n):
        return np.eye(n, dtype=np.float32)

    def value(self, x):
        return float(x)


class TorchOps:
    """The same operations on PyTorch (autograd-capable)."""

    name = "torch"

    def __init__(self):
        import torch
        import torch.nn.functional as F

        self.torch, self.F = torch, F

    def tensor(self, a):
        return self.torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    def linear(self, x, w, b):
        return self.F.linear(x, w, b)

    def layer_norm(self, x, g=None, b=None):
        return self.F.layer_norm(x, (x.shape[-1],), g, b, eps=LN_EPS)

    def softmax(self, x):
        return x.softmax(-1)

    def gelu(self, x):
        return self.F.gelu(x)

    def cat(self, xs, axis):
        return self.torch.cat(xs, axis)

    def permute(self, x, dims):
        return x.permute(*dims)

    def swap_last(self, x):
        return x.transpose(-1, -2)

    def relu(self, x):
        return self.F.relu(x)

    def sqrt(self, x):
        return self.torch.sqrt(x)

    def abs(self, x):
        return x.abs()

    def eye(self, n):
        return self.torch.eye(n)

    def value(self, x):
        return float(x)


class Model:
    """The JEPA over a flat checkpoint (`online.*`, `target.*`, `predictor.*`)."""

    def __init__(self, ops, weights, cfg, scene=None):
        # scene: (tokens [B, K, F], valid [B, K]) of the batch's static boxes, or None.
        self.ops, self.w, self.cfg, self.scene = ops, weights, cfg, scene

    def lin(self, prefix, x):
        return self.ops.linear(x, self.w[f"{prefix}.weight"], self.w.get(f"{prefix}.bias"))

    def ln(self, prefix, x):
        return self.ops.layer_norm(x, self.w[f"{prefix}.weight"], self.w[f"{prefix}.bias"])

    def attention(self, prefix, x, mask, heads):
        o = self.ops
        b, n, d = x.shape
        hd = d // heads
        qkv = o.permute(self.lin(f"{prefix}.qkv", x).reshape(b, n, 3, heads, hd), (2, 0, 3, 1, 4))
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = o.softmax(q @ o.swap_last(k) / math.sqrt(hd) + mask)
        y = o.permute(att @ v, (0, 2, 1, 3)).reshape(b, n, d)  # [B, H, N, hd] -> [B, N, D]
        return self.lin(f"{prefix}.proj", y)

    def block(self, prefix, x, mask, heads):
        x = x + self.attention(f"{prefix}.attn", self.ln(f"{prefix}.ln1", x), mask, heads)
        h = self.ops.gelu(self.lin(f"{prefix}.mlp.fc1", self.ln(f"{prefix}.ln2", x)))
        return x + self.lin(f"{prefix}.mlp.fc2", h)

    def sinusoidal(self, pos, dim):
        half = dim // 2
        k = (np.arange(dim) % half).astype(np.float32)
        freq = np.power(np.float32(10000.0), -k / np.float32(half)).astype(np.float32)
        arg = np.asarray(pos, dtype=np.float32)[:, None] * freq[None, :]
        table = np.where(np.arange(dim)[None, :] < half, np.sin(arg), np.cos(arg)).astype(np.float32)
        return self.ops.tensor(table)

    def encoder(self, which, obs, valid, t0=0):
        b, t, s, _ = obs.shape
        d = self.cfg["dim"]
        te = self.sinusoidal(list(range(t0, t0 + t)), d).reshape(1, t, 1, d)
        x = (self.lin(f"{which}.embed", obs) + te).reshape(b * t, s, d)
        keys, n = valid.reshape(b * t, s), s
        if self.scene is not None and f"{which}.scene_embed.weight" in self.w:
            # The scene's boxes join every frame's objects (no time encoding).
            tokens, svalid = self.scene
            k = tokens.shape[1]
            frames = self.ops.tensor(np.zeros((1, t, 1, 1), dtype=np.float32))
            boxes = (self.lin(f"{which}.scene_embed", tokens).reshape(b, 1, k, d) + frames).reshape(b * t, k, d)
            box_keys = (svalid.reshape(b, 1, k) + frames.reshape(1, t, 1)).reshape(b * t, k)
            x, keys, n = self.ops.cat([x, boxes], 1), self.ops.cat([keys, box_keys], 1), s + k
        # Key padding: absent or invisible objects and padded boxes are never attended to.
        mask = (1.0 - keys.reshape(b * t, 1, 1, n)) * NEG
        for i in range(self.cfg["depth"]):
            x = self.block(f"{which}.blocks.{i}", x, mask, self.cfg["heads"])
        return self.ln(f"{which}.norm", x[:, :s]).reshape(b, t, s, d)

    def predictor_mask(self, ctx_valid, tc, tf, s, scene_valid=None):
        b = ctx_valid.shape[0]
        nf = (tc + tf) * (s + 1)
        k = 0 if scene_valid is None else int(scene_valid.shape[1])
        n = nf + k
        idx = np.arange(n)
        frame, slot = idx // (s + 1), idx % (s + 1)
        is_box = idx >= nf
        # Frame tokens read earlier and same frames and every scene token; scene tokens
        # read only scene tokens.
        m = (frame[None, :] > frame[:, None]) & ~is_box[None, :] & ~is_box[:, None]
        m |= is_box[:, None] & ~is_box[None, :]
        m = np.broadcast_to(m, (b, n, n)).copy()
        kv = np.ones((b, n), dtype=bool)
        kv[:, (frame < tc) & (slot < s) & ~is_box] = np.asarray(ctx_valid).reshape(b, tc * s) > 0  # invalid context keys
        if k:
            kv[:, nf:] = np.asarray(scene_valid) > 0  # padded boxes
        m |= ~kv[:, None, :]
        return self.ops.tensor(np.where(m, np.float32(NEG), np.float32(0.0)).reshape(b, 1, n, n))

    def predictor(self, ctx, ctx_valid, actions, tf):
        o = self.ops
        b, tc, s, _ = ctx.shape
        t, p = tc + tf, self.cfg["pred_dim"]
        te = self.sinusoidal(list(range(t)), p)
        ctx_tok = self.lin("predictor.input", ctx) + te[:tc].reshape(1, tc, 1, p)
        last = self.lin("predictor.input", ctx[:, tc - 1 : tc])
        fut_tok = last + self.w["predictor.mask_token"].reshape(1, 1, 1, p) + te[tc:].reshape(1, tf, 1, p)
        obj = o.cat([ctx_tok, fut_tok], 1)
        act = (self.lin("predictor.action", actions) + te.reshape(1, t, p)).reshape(b, t, 1, p)
        x = o.cat([obj, act], 2).reshape(b, t * (s + 1), p)
        scene_valid = None
        if self.scene is not None and "predictor.scene_input.weight" in self.w:
            # The scene's boxes follow every frame's tokens (no time encoding).
            tokens, svalid = self.scene
            x = o.cat([x, self.lin("predictor.scene_input", tokens)], 1)
            scene_valid = svalid
        mask = self.predictor_mask(ctx_valid, tc, tf, s, scene_valid)
        for i in range(self.cfg["pred_depth"]):
            x = self.block(f"predictor.blocks.{i}", x, mask, self.cfg["pred_heads"])
        x = self.ln("predictor.norm", x[:, : t * (s + 1)]).reshape(b, t, s + 1, p)
        return self.lin("predictor.output", x[:, tc:, :s])

    def predict(self, obs, valid, actions, tf):
        tc = obs.shape[1] - tf
        return self.predictor(self.encoder("online", obs[:, :tc], valid[:, :tc]), valid[:, :tc], actions, tf)

    def variance_covariance(self, x, valid):
        o = self.ops
        d = x.shape[-1]
        flat = x.reshape(-1, d)
        wt = valid.reshape(-1, 1)
        n = wt.sum() + 1e-6
        mean = (flat * wt).sum(0) / n  # [D], broadcast over the rows
        xc = (flat - mean) * wt
        var = (xc**2).sum(0) / n
        hinge = o.relu(1.0 - o.sqrt(var + 1e-4)).mean()
        cov = o.swap_last(xc) @ xc / n
        off = cov * (1.0 - o.eye(d))
        return hinge, (off**2).sum() / d

    def loss(self, obs, valid, actions, tf, lcfg, target=None):
        o = self.ops
        tc = obs.shape[1] - tf
        ctx = self.encoder("online", obs[:, :tc], valid[:, :tc])
        pred = self.predictor(ctx, valid[:, :tc], actions, tf)
        fut_valid = valid[:, tc:].reshape(*valid[:, tc:].shape, 1)
        denom = fut_valid.sum() + 1.0
        if target is None:
            # Frames are encoded independently: only the target frames are needed.
            target = o.layer_norm(self.encoder("target", obs[:, tc:], valid[:, tc:], t0=tc))
        prediction = (o.abs(pred - target) * fut_valid).sum() / self.cfg["dim"] / denom
        variance, covariance = self.variance_covariance(ctx, valid[:, :tc])
        total = prediction + lcfg["var_weight"] * variance + lcfg["cov_weight"] * covariance
        return total, prediction, variance, covariance


def scene_of(ops, batch):
    """The batch's scene tokens and their validity, when it has any."""
    if "scene" not in batch:
        return None
    return ops.tensor(batch["scene"]), ops.tensor(batch["scene_valid"])


def check(model, batch, lcfg, tf):
    o = model.ops
    obs, valid, actions = (o.tensor(batch[k]) for k in ("obs", "valid", "actions"))
    got = {
        "encoder": model.encoder("online", obs, valid),
        "target": model.encoder("target", obs, valid),
        "predict": model.predict(obs, valid, actions, tf),
    }
    losses = dict(zip(("loss_total", "loss_prediction", "loss_variance", "loss_covariance"), model.loss(obs, valid, actions, tf, lcfg)))
    report = {}
    for k, v in got.items():
        ref = batch[k]
        diff = np.abs(np.asarray(v.detach() if o.name == "torch" else v) - ref)
        report[k] = {"max_abs": float(diff.max()), "ref_max": float(np.abs(ref).max()), "shape": list(ref.shape)}
    for k, v in losses.items():
        ref = float(batch[k][0])
        got_v = o.value(v)
        report[k] = {"reference": got_v, "candle": ref, "rel": abs(got_v - ref) / max(abs(ref), 1e-12)}
    return report


def torch_training(flat, cfg, lcfg, batch, tf):
    """The PyTorch training step of the reference model on `batch`, as Candle's trainer
    takes it (loss against the target encoder's layer-normed future, backward, AdamW,
    EMA update of the target): returns `(model, step, (obs, valid, actions))`, `step()`
    running one step. Timed by `--time`, profiled by `profile_reference.py`."""
    ops = TorchOps()
    torch = ops.torch
    params = {k: ops.tensor(v).requires_grad_(not k.startswith("target.")) for k, v in flat.items()}
    model = Model(ops, params, cfg, scene_of(ops, batch))
    trainable = [v for k, v in params.items() if not k.startswith("target.")]
    opt = torch.optim.AdamW(trainable, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.04)
    obs, valid, actions = (ops.tensor(batch[k]) for k in ("obs", "valid", "actions"))
    tc = obs.shape[1] - tf

    def step():
        with torch.no_grad():
            target = ops.layer_norm(model.encoder("target", obs[:, tc:], valid[:, tc:], t0=tc))
        total, *_ = model.loss(obs, valid, actions, tf, lcfg, target=target)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        with torch.no_grad():
            for k, v in params.items():
                if k.startswith("target."):
                    v.mul_(0.996).add_(params["online." + k[len("target.") :]], alpha=0.004)

    return model, step, (obs, valid, actions)


def time_torch(flat, cfg, lcfg, batch, tf, steps):
    model, step, (obs, valid, actions) = torch_training(flat, cfg, lcfg, batch, tf)
    torch = model.ops.torch
    step_times, predict_times = [], []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        step()
        if i >= 2:  # two warm-up steps
            step_times.append(time.perf_counter() - t0)
    with torch.no_grad():
        for i in range(steps + 2):
            t0 = time.perf_counter()
            model.predict(obs, valid, actions, tf)
            if i >= 2:
                predict_times.append(time.perf_counter() - t0)
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    b = obs.shape[0]
    return {"torch": torch.__version__, "train_step_s": med(step_times), "train_windows_per_s": b / med(step_times),
            "predict_s": med(predict_times), "predict_windows_per_s": b / med(predict_times)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="folder written by the export_reference example")
    ap.add_argument("--backend", choices=["numpy", "torch"], default="numpy")
    ap.add_argument("--time", action="store_true", help="also time training steps (torch backend)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--steps", type=int, default=10, help="timed steps (median reported)")
    ap.add_argument("--tolerance", type=float, default=1e-4, help="largest absolute difference allowed")
    a = ap.parse_args()
    conf = json.load(open(f"{a.dir}/config.json"))
    cfg, lcfg, tf = conf["model"], conf["loss"], conf["future_frames"]
    if cfg.get("objective", "jepa") != "jepa" or cfg.get("inverse_dynamics"):
        sys.exit("the reference covers the JEPA objective without the inverse-dynamics head")
    flat = load_safetensors(f"{a.dir}/model.safetensors")
    batch = load_safetensors(f"{a.dir}/batch.safetensors")
    if a.time and a.backend != "torch":
        sys.exit("--time needs --backend torch")
    ops = TorchOps() if a.backend == "torch" else NumpyOps()
    if a.backend == "torch":
        ops.torch.set_num_threads(a.threads)
    model = Model(ops, {k: ops.tensor(v) for k, v in flat.items()}, cfg, scene_of(ops, batch))
    if a.backend == "torch":
        with ops.torch.no_grad():
            report = check(model, batch, lcfg, tf)
    else:
        report = check(model, batch, lcfg, tf)
    ok = all(r["max_abs"] <= a.tolerance for r in report.values() if "max_abs" in r)
    ok &= all(r["rel"] <= a.tolerance for r in report.values() if "rel" in r)
    out = {"backend": a.backend, "batch": int(batch["obs"].shape[0]), "check": report, "matches": bool(ok)}
    if a.time:
        out["timing"] = time_torch(flat, cfg, lcfg, batch, tf, a.steps)
        out["timing"]["threads"] = a.threads
    print(json.dumps(out, indent=1))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
