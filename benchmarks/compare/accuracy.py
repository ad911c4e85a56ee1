#!/usr/bin/env python3
"""Accuracy parity: physworld, PyBullet and MuJoCo on the same closed-form scenes.

The scenes of physworld's own physics tests (sim/tests/physics.rs) — free fall, a block
sliding to a stop, a head-on collision, a bounce, a six-box tower standing 5 s — built in
each engine at dt = 1/240 s, every step recorded, and measured by the same code here
against the closed form. physworld runs them through `physworld simulate --scene FILE
--json` (a scene file, no family). See README.md, "Accuracy parity".
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import numpy as np
except ImportError:
    sys.exit("accuracy.py needs numpy: pip install -r benchmarks/compare/requirements.txt")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sim_compare import DT, ENGINES, GRAVITY, REPO_ROOT, to_zup  # noqa: E402

HZ = 240

# --------------------------------------------------------------------------
# Scenes, in physworld's Y-up frame (objects as sim_compare.py writes them).
# `mu` and `e` are the coefficients the scene's contacts should have (`floor_e`
# the floor's); each engine's combine rule decides what to give each body (see
# bodies()). Not every contact can match in every engine: in `collision` the
# resting spheres meet the floor with e 0.4 in physworld (the average of 0.8 and
# 0) and 0.8 in MuJoCo (each contact takes the object's solref), which does not
# matter while they roll on it.
# --------------------------------------------------------------------------


def ball(r, m, pos, v=(0.0, 0.0, 0.0)):
    return dict(shape="sphere", size=r, mass=m, pos=np.array(pos, float), linvel=np.array(v, float),
                angvel=np.zeros(3))


def box(half, m, pos, v=(0.0, 0.0, 0.0)):
    return dict(shape="box", size=np.array(half, float), mass=m, pos=np.array(pos, float),
                linvel=np.array(v, float), angvel=np.zeros(3))


SCENES = {
    # Sphere (r 0.1 m) released with its bottom 1 m above the floor.
    "free_fall": dict(seconds=1.0, mu=0.5, e=0.0, floor_e=0.0, objects=[ball(0.1, 1.0, (0, 1.1, 0))]),
    # Cube (half 0.05 m) sliding at 2 m/s with friction 0.5.
    "slide": dict(seconds=1.5, mu=0.5, e=0.0, floor_e=0.0,
                  objects=[box((0.05, 0.05, 0.05), 1.0, (0, 0.05, 0), (2.0, 0, 0))]),
    # Spheres of 1 and 3 kg meeting head on (2 and -0.5 m/s), frictionless, e 0.8 between them.
    "collision": dict(seconds=1.0, mu=0.0, e=0.8, floor_e=0.0,
                      objects=[ball(0.1, 1.0, (-0.5, 0.1, 0), (2.0, 0, 0)),
                               ball(0.1, 3.0, (0.5, 0.1, 0), (-0.5, 0, 0))]),
    # Sphere (r 0.05 m) released from 1 m onto a floor, e 0.6.
    "bounce": dict(seconds=1.5, mu=0.5, e=0.6, floor_e=0.6, objects=[ball(0.05, 0.5, (0, 1.05, 0))]),
    # Six 0.16 x 0.1 x 0.16 m boxes of 0.5 kg stacked, friction 0.6, standing 5 s.
    "tower": dict(seconds=5.0, mu=0.6, e=0.0, floor_e=0.0,
                  objects=[box((0.08, 0.05, 0.08), 0.5, (0, 0.05 + 0.1 * i, 0)) for i in range(6)]),
}


def bodies(scene: dict, engine: str) -> tuple[list[dict], tuple[float, float]]:
    """The scene's objects with per-body coefficients and the floor's (friction, restitution)
    that give every contact `mu` and `e` under the engine's combine rule."""
    mu, e, fe = scene["mu"], scene["e"], scene["floor_e"]
    if engine == "pybullet":
        # Bullet multiplies the two bodies' values: sqrt on each body gives mu between
        # objects and, with the floor at sqrt too, mu against the floor.
        objs = [dict(o, friction=math.sqrt(mu), restitution=math.sqrt(e)) for o in scene["objects"]]
        floor_e = fe / math.sqrt(e) if e > 0 else 0.0
        return objs, (math.sqrt(mu), min(floor_e, 1.0))
    # physworld averages the two values and MuJoCo takes the larger friction (restitution:
    # each object's solref, the floor's ignored): the same value on every body.
    objs = [dict(o, friction=mu, restitution=e) for o in scene["objects"]]
    return objs, (mu, fe)


def physworld_scene(scene: dict) -> dict:
    objs, (floor_mu, floor_e) = bodies(scene, "physworld")
    out = []
    for i, o in enumerate(objs):
        shape = ({"kind": "sphere", "radius": float(o["size"])} if o["shape"] == "sphere"
                 else {"kind": "box", "half_extents": [float(v) for v in o["size"]]})
        out.append({"name": f"o{i}", "shape": shape, "mass": {"kg": o["mass"]},
                    "friction": o["friction"], "restitution": o["restitution"],
                    "position": [float(v) for v in o["pos"]], "linvel": [float(v) for v in o["linvel"]]})
    return {"sim": {"physics_hz": HZ, "fps": HZ, "duration_s": scene["seconds"]},
            "statics": [{"name": "floor", "role": "floor", "half_extents": [10.0, 0.5, 10.0],
                         "position": [0.0, -0.5, 0.0], "friction": floor_mu, "restitution": floor_e}],
            "objects": out}


def run_physworld(binary: Path, scene: dict) -> np.ndarray:
    """Frames (steps + 1, objects, 13) in sim_compare's layout: Z-up position, wxyz quaternion
    (axes as recorded: only its w is used), Z-up linear velocity, angular velocity."""
    with tempfile.TemporaryDirectory(prefix="physworld-accuracy-") as tmp:
        path = Path(tmp) / "scene.json"
        path.write_text(json.dumps(physworld_scene(scene)))
        proc = subprocess.run([str(binary), "simulate", "--scene", str(path), "--json"],
                              capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"physworld failed: {proc.stderr.strip()[-500:]}")
    ep = json.loads(proc.stdout)
    frames = np.empty((len(ep["frames"]), len(ep["objects"]), 13))
    for f, fr in enumerate(ep["frames"]):
        for j, o in enumerate(fr["objects"]):
            x, y, z, w = o["rotation"]
            frames[f, j] = (*to_zup(o["position"]), w, x, y, z, *to_zup(o["linvel"]), *o["angvel"])
    return frames


def run_engine(engine, scene: dict) -> np.ndarray:
    objs, floor = bodies(scene, engine.name)
    steps = round(scene["seconds"] * HZ)
    if engine.name == "pybullet":  # no velocity damping, as in the other engines
        return engine.run_episode(objs, steps=steps, record_every=1, floor=floor, damping=0.0)
    return engine.run_episode(objs, steps=steps, record_every=1, floor=floor)


# --------------------------------------------------------------------------
# Measurements: the same code for every engine, on (steps + 1, objects, 13) frames.
# --------------------------------------------------------------------------
def landing_step(vz: np.ndarray) -> int:
    """First step whose vertical velocity fell by less than half a step of gravity: a
    contact pushed back."""
    pushed = np.diff(vz) > -0.5 * GRAVITY * DT
    if not pushed.any():
        raise RuntimeError("the object never landed")
    return int(np.argmax(pushed)) + 1


def measure(name: str, fr: np.ndarray) -> dict:
    if name == "free_fall":
        r, h = 0.1, 1.0
        t = landing_step(fr[:, 0, 9]) * DT
        y03 = fr[round(0.3 * HZ), 0, 2] - r
        exact03 = h - 0.5 * GRAVITY * 0.3 ** 2
        return {"landing time (s)": (t, math.sqrt(2 * h / GRAVITY)),
                "height at 0.3 s (m)": (y03, exact03)}
    if name == "slide":
        return {"stopping distance (m)": (fr[-1, 0, 0], 2.0 ** 2 / (2 * 0.5 * GRAVITY)),
                "final speed (m/s)": (float(np.linalg.norm(fr[-1, 0, 7:10])), 0.0)}
    if name == "collision":
        m = np.array([1.0, 3.0])
        p0, p1 = float(m @ fr[0, :, 7]), float(m @ fr[-1, :, 7])
        e = (fr[-1, 1, 7] - fr[-1, 0, 7]) / (fr[0, 0, 7] - fr[0, 1, 7])
        return {"momentum after (kg m/s)": (p1, p0), "relative-speed ratio": (e, 0.8)}
    if name == "bounce":
        r, h = 0.05, 1.0
        land = landing_step(fr[:, 0, 9])
        apex = float(fr[land + 5:, 0, 2].max()) - r
        return {"apex (m)": (apex, 0.6 ** 2 * h)}
    if name == "tower":
        a, b = fr[0], fr[-1]
        drift = np.sqrt(((b[:, :2] - a[:, :2]) ** 2).sum(axis=1)).max()
        sink = (a[:, 2] - b[:, 2]).max()
        tilt = np.degrees(2 * np.arccos(np.clip(np.abs((a[:, 3:7] * b[:, 3:7]).sum(axis=1)), 0, 1))).max()
        return {"largest drift (mm)": (1000 * drift, 0.0), "largest sink (mm)": (1000 * sink, 0.0),
                "largest tilt (deg)": (float(tilt), 0.0)}
    raise KeyError(name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--engines", default="pybullet,mujoco,physworld", help="comma-separated")
    ap.add_argument("--physworld-bin", type=Path, default=Path("target/release/physworld"),
                    help="physworld binary; relative paths are resolved against the repo root")
    ap.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON here")
    args = ap.parse_args()
    binary = args.physworld_bin if args.physworld_bin.is_absolute() else REPO_ROOT / args.physworld_bin
    engines = [e for e in args.engines.split(",") if e]
    for bad in [e for e in engines if e not in (*ENGINES, "physworld")]:
        ap.error(f"unknown engine: {bad}")
    if "physworld" in engines and not binary.exists():
        ap.error(f"{binary} not found: cargo build --release, or pass --physworld-bin")

    results: dict[str, dict[str, dict[str, float]]] = {}
    expected: dict[str, float] = {}
    ran = []
    for name in engines:
        try:
            engine = None if name == "physworld" else ENGINES[name]()
        except ImportError as err:
            print(f"[skip] {name}: cannot import ({err}); pip install -r benchmarks/compare/requirements.txt")
            continue
        ran.append(name)
        for scene, spec in SCENES.items():
            fr = run_physworld(binary, spec) if engine is None else run_engine(engine, spec)
            for metric, (value, exact) in measure(scene, fr).items():
                key = f"{scene}: {metric}"
                results.setdefault(key, {})[name] = float(value)
                expected[key] = float(exact)
    if not results:
        sys.exit("no engine ran")
    width = max(len(k) for k in results)
    print(f"{'scene: measure':<{width}}  {'closed form':>11}  " + "  ".join(f"{e:>10}" for e in ran))
    for key, row in results.items():
        print(f"{key:<{width}}  {expected[key]:>11.4f}  " + "  ".join(f"{row[e]:>10.4f}" for e in ran))
    if args.json:
        args.json.write_text(json.dumps({"expected": expected, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
