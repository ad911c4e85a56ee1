"""Nonlinear probes on the features `physworld probe --features-out DIR` writes.

`physworld probe` fits ridge probes only (what the issue's "learning is real" criterion
asks for). This script asks two further questions of the same rows:

  * is a hidden property in a representation at all, linearly or not? Ridge (penalty by
    5-fold cross-validation, as in physworld) and a 2-layer MLP (torch; the one in
    property_ceiling.py) on each named feature plus the raw last state, R² for log mass
    and friction on the moving objects of the evaluation split;
  * with --usefulness: would knowing the property help predict the future? An MLP
    predicts each moving object's displacement over the probe horizon from the raw context
    frames, alone and with the true log mass and/or friction appended; the mean error
    (m) on the evaluation split, best over epochs (checked every 10 and at the end; the
    choice is made on the evaluation split, so the errors are optimistic alike for every
    input set, which is what the comparison needs).

    physworld probe --data /tmp/propds --run /tmp/pj5k --fit-split readout --eval-split val --features-out /tmp/feat5k
    python benchmarks/compare/probe_features.py /tmp/feat5k --fit readout --eval val --usefulness

Needs numpy and pyarrow (property_ceiling.py's imports), and torch for the MLPs.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from property_ceiling import mlp, r2, ridge_cv  # noqa: E402


def load_file(path):
    """The float32 tensors of a safetensors file (8-byte header length, JSON header, data)."""
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            raise SystemExit(f"{path}: tensor {name} is {t['dtype']}, expected F32")
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a : 8 + n + b], dtype="<f4").reshape(t["shape"])
    return out


def moving_rows(feats):
    return feats["moving"][:, 0] > 0


def standardise(xf, xe):
    mu, sd = xf.mean(0), xf.std(0) + 1e-6
    return (xf - mu) / sd, (xe - mu) / sd


def property_probes(fit, ev, names, epochs, seed):
    mf, me = moving_rows(fit), moving_rows(ev)
    yf, ye = fit["log_mass_friction"][mf], ev["log_mass_friction"][me]
    out = {}
    for name in names:
        if name not in fit:
            raise SystemExit(f"--features: no feature `{name}` (have: {', '.join(sorted(fit))})")
        xf, xe = fit[name][mf], ev[name][me]
        if not name.startswith("raw_"):
            xf, xe = np.c_[xf, fit["raw_state"][mf]], np.c_[xe, ev["raw_state"][me]]
        xf, xe = standardise(xf, xe)
        pred, lam = ridge_cv(xf, yf, xe)
        row = {"ridge": r2(pred, ye), "ridge_lambda": lam}
        if epochs > 0:
            row["mlp_curve"] = mlp(xf, yf, xe, ye, epochs, seed)
        out[name] = row
        print(json.dumps({name: row}), flush=True)
    return out


def usefulness(fit, ev, epochs, seed):
    import torch

    mf, me = moving_rows(fit), moving_rows(ev)
    out = {}
    for extra in ["none", "log_mass", "friction", "both"]:
        cols = {"none": [], "log_mass": [0], "friction": [1], "both": [0, 1]}[extra]

        def xy(d, m):
            x = np.c_[d["raw_context"][m], d["log_mass_friction"][m][:, cols]]
            return x.astype(np.float32), (d["target"] - d["last"])[m].astype(np.float32)

        (xf, yf), (xe, ye) = xy(fit, mf), xy(ev, me)
        xf, xe = standardise(xf, xe)
        torch.manual_seed(seed)
        net = torch.nn.Sequential(
            torch.nn.Linear(xf.shape[1], 256), torch.nn.GELU(),
            torch.nn.Linear(256, 256), torch.nn.GELU(), torch.nn.Linear(256, 3),
        )
        opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=0.01)
        x, y, x_ev, y_ev = (torch.tensor(a) for a in (xf, yf, xe, ye))
        best = float("inf")
        for ep in range(epochs):
            perm = torch.randperm(len(x))
            for i in range(0, len(x), 128):
                b = perm[i : i + 128]
                loss = ((net(x[b]) - y[b]) ** 2).sum(1).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            if ep % 10 == 9 or ep == epochs - 1:
                with torch.no_grad():
                    best = min(best, (net(x_ev) - y_ev).norm(dim=1).mean().item())
        out[extra] = round(best, 4)
        print(json.dumps({"displacement_error_m": {extra: out[extra]}}), flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("features", help="folder written by physworld probe --features-out")
    ap.add_argument("--fit", default="readout", help="split the probes are fit on")
    ap.add_argument("--eval", default="test", help="split they are scored on")
    ap.add_argument(
        "--features",
        dest="names",
        default="trained_mean,trained_predictor_state,random_init_predictor_state,raw_context",
        help="comma-separated feature names to probe",
    )
    ap.add_argument("--epochs", type=int, default=100, help="MLP probe epochs (0: ridge only)")
    ap.add_argument("--usefulness", action="store_true", help="also measure how much the true properties help prediction")
    ap.add_argument("--usefulness-epochs", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    try:
        import torch

        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    except ImportError:
        if a.epochs > 0 or a.usefulness:
            raise SystemExit("MLP probes need torch (pip install torch safetensors), or pass --epochs 0")
    fit = load_file(os.path.join(a.features, f"{a.fit}.safetensors"))
    ev = load_file(os.path.join(a.features, f"{a.eval}.safetensors"))
    rows = {"fit": int(moving_rows(fit).sum()), "eval": int(moving_rows(ev).sum())}
    print(json.dumps({"moving_rows": rows}), flush=True)
    property_probes(fit, ev, [n for n in a.names.split(",") if n], a.epochs, a.seed)
    if a.usefulness:
        usefulness(fit, ev, a.usefulness_epochs, a.seed)


if __name__ == "__main__":
    main()
