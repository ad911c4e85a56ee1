#!/usr/bin/env python3
"""Side-by-side simulator speed comparison: physworld vs PyBullet vs MuJoCo.

Builds the same scene families (`drop`, `dominoes`) in each engine at the same
dt (1/240 s) and duration (3.0 s = 720 steps), reads every object's state every
8 steps (30 fps, 91 frames including t=0), creates a fresh world per episode
(model building is timed), and reports episodes/s per core. See README.md.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    import numpy as np
except ImportError:
    sys.exit("sim_compare.py needs numpy: pip install -r benchmarks/compare/requirements.txt")

DT = 1.0 / 240.0
STEPS = 720                   # 3.0 s
RECORD_EVERY = 8              # 30 fps -> 91 frames including t=0
GRAVITY = 9.81
REPO_ROOT = Path(__file__).resolve().parents[2]
SCENE_COUNTS = {"drop": 8, "dominoes": 12}
# Object slots of the `generate` suites: physworld's dominoes adds the target.
SUITE_SLOTS = {"drop": 8, "dominoes": 13}
# physworld's families draw more varied scenes than the spec below (capsules and
# cylinders too, a patient object, a target after the dominoes); these overrides bring
# its parameters to the spec where a parameter exists.
PHYSWORLD_SETS = {
    "drop": ["count=8", "friction=0.5", "size=[0.05,0.12]", "mass=[0.2,3.0]", "restitution=[0.0,0.6]",
             "height=[0.5,2.0]", "spread=0.5", 'shapes=["sphere","box"]'],
    # spacing is in domino heights (0.6 x 0.2 m = the spec's 0.12 m); push is the first
    # domino's spin (rad/s), with the centre speed of that spin about its base edge
    # (0.4 m/s; the spec gives 0.2). physworld's dominoes are 0.12 x height thick (2.4 cm).
    "dominoes": ["count=12", "friction=0.5", "mass=0.1", "half_height=0.1", "spacing=0.6", "push=4",
                 "gap_probability=0", "twist_probability=0"],
}


# --------------------------------------------------------------------------
# Scene generation, in physworld's Y-up frame. Each object is a dict with
# shape ("sphere"/"box"), size (radius or half extents), mass, friction,
# restitution, pos, linvel, angvel.
# --------------------------------------------------------------------------
def make_drop(rng: np.random.Generator, count: int = 8) -> list[dict]:
    objs: list[dict] = []
    for _ in range(count):
        if rng.random() < 0.5:
            shape, size = "sphere", float(rng.uniform(0.05, 0.12))
            bound = size
        else:
            shape, size = "box", rng.uniform(0.05, 0.12, size=3)
            bound = float(np.linalg.norm(size))
        mass, rest = float(rng.uniform(0.2, 3.0)), float(rng.uniform(0.0, 0.6))
        for _attempt in range(1000):  # resample until bounding spheres are disjoint
            pos = np.array([rng.uniform(-0.5, 0.5), rng.uniform(0.5, 2.0), rng.uniform(-0.5, 0.5)])
            if all(np.linalg.norm(pos - o["pos"]) > bound + o["bound"] for o in objs):
                break
        objs.append(dict(shape=shape, size=size, bound=bound, mass=mass, friction=0.5,
                         restitution=rest, pos=pos, linvel=np.zeros(3), angvel=np.zeros(3)))
    return objs


def make_dominoes(rng: np.random.Generator, count: int = 12) -> list[dict]:
    del rng  # the spec has no random parameters; kept for a uniform signature
    half = np.array([0.01, 0.1, 0.05])
    objs = [dict(shape="box", size=half, bound=float(np.linalg.norm(half)), mass=0.1, friction=0.5,
                 restitution=0.1, pos=np.array([0.12 * i, half[1], 0.0]),
                 linvel=np.zeros(3), angvel=np.zeros(3)) for i in range(count)]
    objs[0]["linvel"] = np.array([0.2, 0.0, 0.0])
    objs[0]["angvel"] = np.array([0.0, 0.0, -4.0])  # about physworld z: tips toward +x
    return objs


SCENES = {"drop": make_drop, "dominoes": make_dominoes}


def to_zup(v) -> list[float]:
    """Polar vector (position, velocity, extents): physworld (x, y, z) -> Z-up (x, z, y)."""
    return [float(v[0]), float(v[2]), float(v[1])]


def to_zup_axial(v) -> list[float]:
    """Axial vector (angular velocity). Swapping two axes is a reflection, which
    flips the sign of pseudovectors: physworld w_z=-4 becomes +4 about Z-up y,
    which still tips the domino toward +x."""
    return [-float(v[0]), -float(v[2]), -float(v[1])]


def box_or_sphere_zup(o: dict):
    return to_zup(o["size"]) if o["shape"] == "box" else [float(o["size"])]


# --------------------------------------------------------------------------
# Engines. Each run_episode(objs) builds a fresh world, steps it `steps` times
# (default STEPS), records (frames, objects, 13) = pos(3) quat(4) linvel(3)
# angvel(3) every `record_every` steps (default RECORD_EVERY), and returns the
# frame buffer (Z-up, engine conventions). `floor` is the floor's (friction,
# restitution), each engine's own numbers (accuracy.py sets them per engine).
# --------------------------------------------------------------------------
class PyBulletEngine:
    name = "pybullet"

    def __init__(self):
        import pybullet as p
        self.p = p
        self.cid = p.connect(p.DIRECT)  # connection set-up is not timed (like process start-up)

    def run_episode(self, objs: list[dict], steps: int = STEPS, record_every: int = RECORD_EVERY,
                    floor: tuple[float, float] = (1.0, 1.0), damping: float | None = None) -> np.ndarray:
        """`damping`: the bodies' linear and angular velocity damping (PyBullet's default,
        0.04 per second, when None; accuracy.py sets 0, as the other engines have none)."""
        p, c = self.p, self.cid
        p.resetSimulation(physicsClientId=c)
        p.setTimeStep(DT, physicsClientId=c)
        p.setGravity(0, 0, -GRAVITY, physicsClientId=c)
        floor_id = p.createMultiBody(0, p.createCollisionShape(p.GEOM_PLANE, physicsClientId=c),
                                     physicsClientId=c)
        # Bullet multiplies the two bodies' friction and restitution; a floor of 1.0
        # makes object-floor contacts use the object's own values (object-object
        # contacts get the product, e.g. 0.25 friction between dominoes).
        p.changeDynamics(floor_id, -1, lateralFriction=floor[0], restitution=floor[1], physicsClientId=c)
        ids = []
        for o in objs:
            if o["shape"] == "sphere":
                col = p.createCollisionShape(p.GEOM_SPHERE, radius=float(o["size"]), physicsClientId=c)
            else:
                col = p.createCollisionShape(p.GEOM_BOX, halfExtents=to_zup(o["size"]), physicsClientId=c)
            b = p.createMultiBody(o["mass"], col, basePosition=to_zup(o["pos"]), physicsClientId=c)
            p.changeDynamics(b, -1, lateralFriction=o["friction"], restitution=o["restitution"],
                             physicsClientId=c)
            if damping is not None:
                p.changeDynamics(b, -1, linearDamping=damping, angularDamping=damping, physicsClientId=c)
            p.resetBaseVelocity(b, to_zup(o["linvel"]), to_zup_axial(o["angvel"]), physicsClientId=c)
            ids.append(b)
        frames = np.empty((steps // record_every + 1, len(ids), 13))

        def record(f: int) -> None:
            for j, b in enumerate(ids):
                pos, orn = p.getBasePositionAndOrientation(b, physicsClientId=c)
                lin, ang = p.getBaseVelocity(b, physicsClientId=c)
                frames[f, j] = (*pos, orn[3], orn[0], orn[1], orn[2], *lin, *ang)  # quat as wxyz

        record(0)
        for s in range(1, steps + 1):
            p.stepSimulation(physicsClientId=c)
            if s % record_every == 0:
                record(s // record_every)
        return frames


class MuJoCoEngine:
    name = "mujoco"

    def __init__(self):
        import mujoco
        self.mj = mujoco

    @staticmethod
    def solref(restitution: float) -> str:
        """MuJoCo has no restitution coefficient; contacts are damped springs. A
        spring with damping ratio z bounces with e = exp(-z*pi/sqrt(1-z^2)), so
        invert that (e=0 -> z=1, MuJoCo's default critically damped contact)."""
        ln_e = math.log(max(restitution, 1e-4))
        return f"0.02 {min(1.0, -ln_e / math.sqrt(math.pi ** 2 + ln_e ** 2)):.4f}"

    def xml(self, objs: list[dict], floor_friction: float = 0.5) -> str:
        bodies = []
        for i, o in enumerate(objs):
            size = " ".join(f"{v:.6f}" for v in box_or_sphere_zup(o))
            pos = " ".join(f"{v:.6f}" for v in to_zup(o["pos"]))
            bodies.append(
                f'<body name="b{i}" pos="{pos}"><freejoint/>'
                f'<geom type="{o["shape"]}" size="{size}" mass="{o["mass"]:.6f}" '
                f'friction="{o["friction"]} 0.005 0.0001" solref="{self.solref(o["restitution"])}"/></body>')
        # solmix=0 on the floor: object-floor contacts use the object's solref alone.
        return (f'<mujoco><option timestep="{DT!r}" gravity="0 0 {-GRAVITY}"/><worldbody>'
                f'<geom name="floor" type="plane" size="10 10 0.1" friction="{floor_friction} 0.005 0.0001" '
                f'solmix="0"/>'
                + "".join(bodies) + "</worldbody></mujoco>")

    def run_episode(self, objs: list[dict], steps: int = STEPS, record_every: int = RECORD_EVERY,
                    floor: tuple[float, float] = (0.5, 0.0)) -> np.ndarray:
        """The floor's restitution is not used: with solmix=0 each contact takes the
        object's solref."""
        mj = self.mj
        model = mj.MjModel.from_xml_string(self.xml(objs, floor[0]))
        data = mj.MjData(model)
        for i, o in enumerate(objs):  # free-joint qvel: world linear velocity, body-frame angular
            data.qvel[6 * i:6 * i + 6] = to_zup(o["linvel"]) + to_zup_axial(o["angvel"])
        n = len(objs)
        frames = np.empty((steps // record_every + 1, n, 13))

        def record(f: int) -> None:
            frames[f, :, :7] = data.qpos.reshape(n, 7)   # pos + quat (wxyz)
            frames[f, :, 7:] = data.qvel.reshape(n, 6)   # linvel (world) + angvel (local)

        record(0)
        for s in range(1, steps + 1):
            mj.mj_step(model, data)
            if s % record_every == 0:
                record(s // record_every)
        return frames


ENGINES = {"pybullet": PyBulletEngine, "mujoco": MuJoCoEngine}


# --------------------------------------------------------------------------
# Sanity checks on the final frame (Z-up, quaternion wxyz, identity at t=0).
# --------------------------------------------------------------------------
def sanity(scene: str, finals: list[np.ndarray]) -> str:
    if not all(np.isfinite(f).all() and np.abs(f[:, :3]).max() < 100 for f in finals):
        return "FAIL: non-finite or exploded state"
    if scene == "drop":
        h = float(np.mean([f[:, 2].mean() for f in finals]))
        return f"final mean height {h:.3f} m ({'ok' if h < 0.3 else 'FAIL'}: < 0.3 expected)"
    # Rotation angle from identity: 2*acos(|w|). A domino "fell" when it turned more than
    # 20 degrees: one leaning on its neighbour or on physworld's target (which the Python
    # scenes lack) rests at 25-60 degrees, an untouched one stays near 0.
    angles = [2 * np.degrees(np.arccos(np.clip(np.abs(f[:, 3]), 0, 1))) for f in finals]
    fell = [a > 20 for a in angles]
    mean_fell = float(np.mean([t.sum() for t in fell]))
    last = sum(bool(t[-1]) for t in fell)
    last_angle = float(np.median([a[-1] for a in angles]))
    status = "ok" if last == len(finals) else "CHAIN DID NOT COMPLETE"
    return (f"{mean_fell:.1f}/{len(fell[0])} dominoes fell on average; last domino fell "
            f"in {last}/{len(finals)} episodes ({status}), median final angle {last_angle:.0f} deg")


def bench_python(engine, scene: str, episodes: int) -> tuple[dict, str]:
    count, make = SCENE_COUNTS[scene], SCENES[scene]
    finals = []
    t0 = time.perf_counter()
    for i in range(episodes):
        objs = make(np.random.default_rng(i), count)  # episode i uses seed i
        finals.append(engine.run_episode(objs)[-1])
    secs = time.perf_counter() - t0
    eps = episodes / secs
    return (dict(scene=scene, engine=engine.name, threads=1, episodes=episodes, seconds=secs,
                 episodes_per_second=eps, episodes_per_second_per_core=eps), sanity(scene, finals))


def bench_physworld(binary: Path, scene: str, episodes: int, threads: int) -> dict | None:
    sets = [a for s in PHYSWORLD_SETS[scene] for a in ("--set", s)]
    cmd = [str(binary), "simulate", "--scenario", scene, *sets,
           "--episodes", str(episodes), "--threads", str(threads), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"  physworld failed ({' '.join(cmd)}): exit {proc.returncode}\n  "
              + proc.stderr.strip()[-500:], file=sys.stderr)
        return None
    try:
        out = json.loads(proc.stdout)
    except json.JSONDecodeError:  # tolerate stray lines: take the last line that parses
        out = next((json.loads(l) for l in reversed(proc.stdout.splitlines())
                    if l.strip().startswith("{")), None)
    if not isinstance(out, dict) or "episodes_per_second" not in out:
        print(f"  physworld printed no usable JSON for {scene}: {proc.stdout[-300:]!r}", file=sys.stderr)
        return None
    eps, thr = float(out["episodes_per_second"]), int(out.get("threads", threads))
    return dict(scene=scene, engine="physworld", threads=thr, episodes=int(out["episodes"]),
                seconds=float(out["seconds"]), episodes_per_second=eps,
                episodes_per_second_per_core=eps / thr, rejected=int(out.get("rejected", 0)),
                physics_steps_per_second=out.get("physics_steps_per_second"))


def generate_suite(scene: str, episodes: int) -> str:
    """A one-family suite of the scene with `episodes` training samples (seed 0, so sample i is
    `simulate`'s episode i) and one sample in each other split."""
    # PHYSWORLD_SETS values are numbers, strings and flat arrays, which read the same in TOML.
    params = ", ".join(f"{k} = {v}" for k, v in (p.split("=", 1) for p in PHYSWORLD_SETS[scene]))
    return (f'[suite]\nname = "{scene}{SCENE_COUNTS[scene]}"\nseed = 0\nsamples_per_file = 1024\n'
            f"max_objects = {SUITE_SLOTS[scene]}\n\n[splits]\ntrain = {episodes}\nval = 1\nreadout = 1\n"
            f'test = 1\n\n[[family]]\nname = "{scene}"\nparams = {{ {params} }}\n')


def generated_finals(data_dir: Path, scene: str) -> list[np.ndarray] | None:
    """Each training episode's last frame from a generated dataset, in sanity()'s layout: the
    scene's objects (not the dominoes' target), Z-up positions, and as the quaternion's w the
    rotation since the first frame (the Python engines start at identity; physworld's rows
    may be yawed). None without pyarrow."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return None
    n, finals = SCENE_COUNTS[scene], []
    for path in sorted((data_dir / "data").glob("train-*.parquet")):
        t = pq.read_table(path, columns=["episode_index", "object.position", "object.rotation"])
        slots = t.schema.field("object.position").type.list_size // 3
        pos = t.column("object.position").combine_chunks().flatten().to_numpy().reshape(-1, slots, 3)
        rot = t.column("object.rotation").combine_chunks().flatten().to_numpy().reshape(-1, slots, 4)
        episode = t.column("episode_index").to_numpy()
        starts = np.flatnonzero(np.r_[True, episode[1:] != episode[:-1]])
        for first, last in zip(starts, np.r_[starts[1:], len(episode)] - 1):
            f = np.zeros((n, 13))
            f[:, :3] = pos[last, :n][:, [0, 2, 1]]                              # Y-up -> Z-up
            f[:, 3] = np.abs((rot[last, :n] * rot[first, :n]).sum(axis=1))     # w of q_last * conj(q_first)
            finals.append(f)
    return finals


def bench_generate(binary: Path, scene: str, episodes: int, threads: int) -> dict | None:
    """`physworld generate`: the same scenes, written as a Parquet dataset (frames, episodes,
    statistics, manifests, card) into a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="physworld-generate-") as tmp:
        suite = Path(tmp) / "suite.toml"
        suite.write_text(generate_suite(scene, episodes))
        cmd = [str(binary), "generate", "--suite", str(suite), "--out", str(Path(tmp) / "data"),
               "--threads", str(threads), "--json"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        finals = generated_finals(Path(tmp) / "data", scene) if proc.returncode == 0 and threads == 1 else None
    if proc.returncode != 0:
        print(f"  physworld generate failed ({' '.join(cmd)}): exit {proc.returncode}\n  "
              + proc.stderr.strip()[-500:], file=sys.stderr)
        return None
    out = next((json.loads(line) for line in reversed(proc.stdout.splitlines())
                if line.strip().startswith("{")), None)
    if not isinstance(out, dict) or "episodes_per_second" not in out:
        print(f"  physworld generate printed no usable JSON for {scene}: {proc.stdout[-300:]!r}", file=sys.stderr)
        return None
    eps, thr = float(out["episodes_per_second"]), int(out["threads"])
    stages = out.get("stage_seconds", {})
    shard = sum(stages.get(k, 0.0) for k in ("simulate", "render", "write"))
    return dict(scene=scene, engine="physworld-generate", threads=thr, episodes=int(out["episodes"]),
                seconds=float(out["seconds"]), episodes_per_second=eps, episodes_per_second_per_core=eps / thr,
                bytes=int(out["bytes"]), rejected=sum(out.get("rejected", {}).values()),
                write_share=stages.get("write", 0.0) / shard if shard else None,
                sanity=sanity(scene, finals) if finals else None)


def main() -> int:
    ap = argparse.ArgumentParser(
        description="Compare physworld's simulation speed (episodes/s per core) with PyBullet and "
                    "MuJoCo on the same scenes (drop with 8 objects, dominoes with 12), dt=1/240 s, "
                    "3.0 s episodes, state read at 30 fps, one fresh world per episode.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--episodes", type=int, default=50, help="episodes per scene for the Python engines")
    ap.add_argument("--physworld-episodes", type=int, default=1600,
                    help="episodes per physworld run (generate writes 1 024-sample shards, so use at least that)")
    ap.add_argument("--scenes", default="drop,dominoes", help="comma-separated: drop,dominoes")
    ap.add_argument("--engines", default="pybullet,mujoco,physworld,physworld-generate",
                    help="comma-separated: pybullet,mujoco,physworld (simulate, no file output),"
                         "physworld-generate (a Parquet dataset written)")
    ap.add_argument("--physworld-bin", type=Path, default=Path("target/release/physworld"),
                    help="physworld binary; relative paths are resolved against the repo root")
    ap.add_argument("--physworld-fast-bin", type=Path, metavar="PATH",
                    help="also run this physworld binary, built without bitwise cross-machine determinism "
                         "(`cargo build --release --no-default-features`), at 1 thread beside the default one")
    ap.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON here")
    args = ap.parse_args()
    scenes = [s for s in args.scenes.split(",") if s]
    engines = [e for e in args.engines.split(",") if e]
    known = (*ENGINES, "physworld", "physworld-generate")
    for bad in [s for s in scenes if s not in SCENES] + [e for e in engines if e not in known]:
        ap.error(f"unknown scene or engine: {bad}")

    rows, checks = [], []
    for name in [e for e in engines if e in ENGINES]:
        try:
            engine = ENGINES[name]()
        except ImportError as err:
            print(f"[skip] {name}: cannot import ({err}); pip install -r benchmarks/compare/requirements.txt")
            continue
        for scene in scenes:
            print(f"running {name} / {scene}: {args.episodes} episodes ...", flush=True)
            row, check = bench_python(engine, scene, args.episodes)
            rows.append(row)
            checks.append(f"{scene:9s} {name:9s} {check}")

    ours = [e for e in engines if e.startswith("physworld")]
    if ours:
        binary = args.physworld_bin if args.physworld_bin.is_absolute() else REPO_ROOT / args.physworld_bin
        fast = args.physworld_fast_bin
        if fast is not None and not fast.is_absolute():
            fast = REPO_ROOT / fast
        if not binary.is_file():
            print(f"[skip] physworld: binary not found at {binary}; build it with `cargo build --release` "
                  f"or pass --physworld-bin")
        elif fast is not None and not fast.is_file():
            print(f"[skip] physworld: --physworld-fast-bin {fast} not found")
        else:
            for scene in scenes:
                for threads in (1, 2):
                    # Alternating, so all see the same machine state; the fast build at 1 thread.
                    builds = [("", binary)] + ([("-fast", fast)] if fast is not None and threads == 1 else [])
                    for engine in ours:
                        for suffix, exe in builds:
                            print(f"running {engine}{suffix} / {scene}: {args.physworld_episodes} episodes, "
                                  f"{threads} thread(s) ...", flush=True)
                            run = bench_physworld if engine == "physworld" else bench_generate
                            if (row := run(exe, scene, args.physworld_episodes, threads)):
                                row["engine"] += suffix
                                rows.append(row)
                                if (check := row.pop("sanity", None)):
                                    checks.append(f"{scene:9s} {'physworld' + suffix:9s} {check}")

    # Ratio: physworld's single-thread episodes/s per core over the engine's.
    pw = {r["scene"]: r["episodes_per_second_per_core"] for r in rows
          if r["engine"] == "physworld" and r["threads"] == 1}
    gen = {r["scene"]: r["episodes_per_second_per_core"] for r in rows
           if r["engine"] == "physworld-generate" and r["threads"] == 1}
    for r in rows:
        ref, ref_gen = pw.get(r["scene"]), gen.get(r["scene"])
        python = r["engine"] in ENGINES
        r["ratio_physworld_over_engine"] = ref / r["episodes_per_second_per_core"] if ref and python else None
        r["ratio_generate_over_engine"] = ref_gen / r["episodes_per_second_per_core"] if ref_gen and python else None

    rows.sort(key=lambda r: (scenes.index(r["scene"]), r["engine"], r["threads"]))
    header = f"{'scene':9s} {'engine':23s} {'threads':>7s} {'episodes':>8s} {'episodes/s':>11s} " \
             f"{'eps/s/core':>11s} {'simulate/engine':>15s} {'generate/engine':>15s}"
    print("\n" + header + "\n" + "-" * len(header))
    ratio = lambda x: f"{x:.2f}x" if x else "-"  # noqa: E731
    for r in rows:
        print(f"{r['scene']:9s} {r['engine']:23s} {r['threads']:7d} {r['episodes']:8d} "
              f"{r['episodes_per_second']:11.2f} {r['episodes_per_second_per_core']:11.2f} "
              f"{ratio(r['ratio_physworld_over_engine']):>15s} {ratio(r['ratio_generate_over_engine']):>15s}")
        if r.get("rejected"):
            print(f"{'':9s} (physworld rejected {r['rejected']} episodes)")
        if r.get("write_share") is not None:
            print(f"{'':9s} (Parquet written: {r['bytes'] / 1e6:.1f} MB; the write stage took "
                  f"{100 * r['write_share']:.1f}% of shard time)")
    print("\nNote: physworld does more work per episode than the Python engines: per frame it also "
          "casts visibility rays,\nextracts contacts and runs health checks. The Python engines only "
          "step and read state.")
    if checks:
        print("\nPhysics sanity checks:\n  " + "\n  ".join(checks))
    if args.json:
        args.json.write_text(json.dumps(dict(dt=DT, steps=STEPS, record_every=RECORD_EVERY,
                                             results=rows, sanity=checks), indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
