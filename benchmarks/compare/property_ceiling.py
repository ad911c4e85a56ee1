"""How identifiable are a dataset's hidden properties from the true observed states?

`physworld probe` asks whether a trained model's representations decode log mass and
friction better than the same ridge probe on the raw observed state. This script measures
the ceiling the data itself allows: probes on the *true* states of the context frames (and
the context's actions), fit on one split and scored on another, with the rows
`physworld probe` uses (objects present and visible at the last context frame, present
`--horizon` frames later, moving during the context; `voe-*` families skipped):

  * ridge on the last observed state and on every context frame (the report's controls);
  * with torch installed, a 2-layer MLP on every context frame plus actions (a nonlinear
    probe that can form speeds, decelerations and force/acceleration ratios); its R² is
    printed every 20 epochs, so that over-fitting shows.

    pip install numpy pyarrow torch   # torch optional (CPU wheel is enough)
    python benchmarks/compare/property_ceiling.py data/tiny --fit train --eval readout
    python benchmarks/compare/property_ceiling.py data/properties --fit readout --eval val

On `datasets/properties.toml` (boxes on springs of known stiffness) the MLP reaches R²
0.88 for log mass and 0.49 for friction while ridge stays near 0 (BENCHMARKS.md, "Hidden properties: what the data allows").

Inputs are normalised by the fit split's mean and std. Prints one JSON object.
"""

import argparse
import glob
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FEATURES = ["object.position", "object.rotation", "object.linvel", "object.angvel", "object.size"]
LAMBDAS = [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]


def load(root, split):
    """Per episode: states [T, S, 20] (16 continuous + shape one-hot), validity, actions
    [T, 3], masses and frictions [S], family."""
    frames = pa.concat_tables([pq.read_table(f) for f in sorted(glob.glob(f"{root}/data/{split}-*.parquet"))])
    meta = pa.concat_tables(
        [pq.read_table(f) for f in sorted(glob.glob(f"{root}/meta/episodes/{split}-*.parquet"))]
    ).to_pydict()
    f = frames.to_pydict()
    slots = len(f["object.present"][0])
    episodes = {}
    for k, e in enumerate(f["episode_index"]):
        parts = [np.asarray(f[name][k], np.float32).reshape(slots, -1) for name in FEATURES]
        shape = np.eye(4, dtype=np.float32)[np.clip(np.asarray(f["object.shape"][k]), 0, 3)]
        valid = np.asarray(f["object.present"][k]) & np.asarray(f["object.visible"][k])
        action = f["action"][k]
        episodes.setdefault(e, []).append(
            (
                f["frame_index"][k],
                np.concatenate(parts + [shape], 1),
                valid,
                np.asarray(f["object.present"][k]),
                np.zeros(3, np.float32) if action is None else np.asarray(action, np.float32),
            )
        )
    out = []
    for i, e in enumerate(meta["episode_index"]):
        rows = sorted(episodes[e], key=lambda r: r[0])
        out.append(
            dict(
                x=np.stack([r[1] for r in rows]),
                valid=np.stack([r[2] for r in rows]),
                present=np.stack([r[3] for r in rows]),
                action=np.stack([r[4] for r in rows]),
                mass=np.asarray(meta["object.mass"][i], np.float64),
                friction=np.asarray(meta["object.friction"][i], np.float64),
                family=meta["family"][i],
            )
        )
    return out


def rows(episodes, ctx, horizon, stride):
    last, context, y = [], [], []
    for ep in episodes:
        if ep["family"].startswith("voe-"):
            continue
        t, s = ep["x"].shape[:2]
        end = ctx
        while end + horizon <= t:
            for o in range(s):
                if not (ep["valid"][end - 1, o] and ep["present"][end - 1 + horizon, o]) or ep["mass"][o] <= 0:
                    continue
                c = ep["x"][end - ctx : end, o]
                if not (np.linalg.norm(c[:, 7:10], axis=1) > 0.05).any():
                    continue
                last.append(c[-1])
                context.append(np.concatenate([c.reshape(-1), ep["action"][end - ctx : end].reshape(-1)]))
                y.append([np.log(ep["mass"][o]), ep["friction"][o]])
            end += stride
    return np.array(last, np.float32), np.array(context, np.float32), np.array(y, np.float64)


def r2(pred, y):
    return (1 - ((y - pred) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)).round(3).tolist()


def ridge(xf, yf, xe, lam):
    xf, xe = np.c_[xf, np.ones(len(xf))], np.c_[xe, np.ones(len(xe))]
    w = np.linalg.solve(xf.T @ xf + lam * np.eye(xf.shape[1]), xf.T @ yf)
    return xe @ w


def ridge_cv(xf, yf, xe, folds=5):
    """Ridge with the penalty chosen by 5-fold cross-validation on the fit rows."""
    idx = np.arange(len(xf)) % folds
    def cv_err(lam):
        return sum(((ridge(xf[idx != k], yf[idx != k], xf[idx == k], lam) - yf[idx == k]) ** 2).sum() for k in range(folds))
    lam = min(LAMBDAS, key=cv_err)
    return ridge(xf, yf, xe, lam), lam


def mlp(xf, yf, xe, ye, epochs, seed):
    import torch

    torch.manual_seed(seed)
    xf, yf, xe = (torch.tensor(a, dtype=torch.float32) for a in (xf, yf, xe))
    ym, ys = yf.mean(0), yf.std(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(xf.shape[1], 256), torch.nn.GELU(), torch.nn.Dropout(0.2),
        torch.nn.Linear(256, 256), torch.nn.GELU(), torch.nn.Linear(256, yf.shape[1]),
    )
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=0.05)
    curve = []
    for ep in range(epochs):
        net.train()
        perm = torch.randperm(len(xf))
        for i in range(0, len(xf), 64):
            b = perm[i : i + 64]
            loss = ((net(xf[b]) - (yf[b] - ym) / ys) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        if ep % 20 == 19:
            net.eval()
            with torch.no_grad():
                curve.append([ep + 1, r2((net(xe) * ys + ym).numpy(), ye)])
    return curve


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="physworld dataset folder")
    ap.add_argument("--fit", default="readout", help="split the probes are fit on")
    ap.add_argument("--eval", default="test", help="split they are scored on")
    ap.add_argument("--context", type=int, default=8, help="context frames (the model's data.context)")
    ap.add_argument("--horizon", type=int, default=15, help="frames after the context the object must be present")
    ap.add_argument("--stride", type=int, default=15, help="frames between window ends")
    ap.add_argument("--epochs", type=int, default=200, help="MLP epochs (0 skips the MLP)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    fit = rows(load(a.data, a.fit), a.context, a.horizon, a.stride)
    ev = rows(load(a.data, a.eval), a.context, a.horizon, a.stride)
    if len(fit[2]) < 10 or len(ev[2]) < 2:
        raise SystemExit(f"too few moving objects: {len(fit[2])} to fit, {len(ev[2])} to score")
    report = {"fit_split": a.fit, "eval_split": a.eval, "fit_rows": len(fit[2]), "eval_rows": len(ev[2]),
              "columns": ["log_mass", "friction"]}
    for name, k in [("last_state", 0), ("context_frames_and_actions", 1)]:
        mu, sd = fit[k].mean(0), fit[k].std(0) + 1e-3
        pred, lam = ridge_cv((fit[k] - mu) / sd, fit[2], (ev[k] - mu) / sd)
        report[f"ridge_{name}"] = {"r2": r2(pred, ev[2]), "lambda": lam}
    if a.epochs > 0:
        try:
            mu, sd = fit[1].mean(0), fit[1].std(0) + 1e-3
            report["mlp_context_frames_and_actions"] = mlp(
                (fit[1] - mu) / sd, fit[2], (ev[1] - mu) / sd, ev[2], a.epochs, a.seed
            )
        except ImportError:
            report["mlp_context_frames_and_actions"] = "torch not installed"
    print("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in report.items()) + "\n}")


if __name__ == "__main__":
    main()
