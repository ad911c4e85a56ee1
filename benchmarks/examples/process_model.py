#!/usr/bin/env python3
"""A physworld model in Python, scored through `physworld bench --model process:...`.

It speaks the `physworld-process/6` JSON Lines protocol (see benchmarks/src/adapters/
process.rs): a hello, then one answer line per item line. Each item carries what every
model observes: the static scene (floors, walls, ramps, occluders...), goal zones, and per
observed frame the visible objects, under per-item slot labels. This one is a constant-velocity
(ballistic) model in plain Python; replace `answer` with calls into your PyTorch model.

It also plans (`plan-launch`): each `plan` request carries the scene, the outcomes of its
earlier attempts and its refused placements, and it answers with a placement. `place` is a
heuristic (the largest ball dropped just behind the target, away from the goal, sweeping the
offset and height over its attempts); replace it with your planner. On `plan-push` each
request is one control step (the scene, the puck now, the steps so far) and `push` answers
with a force: a saturated PD controller toward the goal's centre (`greedy`'s gains).

    physworld bench --data data/tiny --out results \
        --model "process:python3 benchmarks/examples/process_model.py"
    physworld bench --data data/planning --tasks plan-launch,plan-push --out results \
        --model "process:python3 benchmarks/examples/process_model.py"
"""

import json
import math
import sys

G = 9.81


def airborne(p, v, h):
    return p[1] - h[1] > 0.02 or abs(v[1]) > 0.2


def ballistic(p, v, h, t):
    y = p[1] + v[1] * t
    if airborne(p, v, h):
        y -= 0.5 * G * t * t
    return [p[0] + v[0] * t, max(y, min(h[1], p[1])), p[2] + v[2] * t]


def last_seen(frames, slot):
    """State of `slot` in the last observed frame, if it is visible there."""
    for o in frames[-1]["objects"]:
        if o["slot"] == slot:
            return o
    return None


def forecast(item):
    frames = item["episodes"][0]["frames"]
    dt = 1.0 / item["fps"]
    out = []
    for h in item["horizons"]:
        row = []
        for slot in item["objects"]:
            o = last_seen(frames, slot)
            row.append(ballistic(o["position"], o["linvel"], o["size"], h * dt))
        out.append(row)
    return {"positions": out}


def inside(p, zone):
    return all(abs(p[i] - zone["center"][i]) <= zone["half_extents"][i] for i in range(3))


def yes_no(item, yes):
    """Choices come in a seeded order per item: answer by label, never by position."""
    return {"choice": item["choices"].index("yes" if yes else "no")}


def contact(item):
    ep = item["episodes"][0]
    frames = ep["frames"]
    dt = 1.0 / item["fps"]
    horizon = ep["episode_frames"] - len(frames)
    if item["zone"] is not None:
        zone = next(z for z in ep["zones"] if z["index"] == item["zone"])
        a = last_seen(frames, item["objects"][0])
        if a is None:
            return yes_no(item, False)
        hit = any(inside(ballistic(a["position"], a["linvel"], a["size"], k * dt), zone) for k in range(1, horizon + 1))
        return yes_no(item, hit)
    if len(item["objects"]) < 2:
        return yes_no(item, False)
    a, b = (last_seen(frames, s) for s in item["objects"][:2])
    if a is None or b is None:
        return yes_no(item, False)
    reach = math.dist([0, 0, 0], a["size"]) + math.dist([0, 0, 0], b["size"])
    for k in range(1, horizon + 1):
        pa = ballistic(a["position"], a["linvel"], a["size"], k * dt)
        pb = ballistic(b["position"], b["linvel"], b["size"], k * dt)
        if math.dist(pa, pb) <= reach:
            return yes_no(item, True)
    return yes_no(item, False)


def surprise(item):
    dt = 1.0 / item["fps"]
    out = []
    for ep in item["episodes"]:
        per_frame = []
        frames = ep["frames"]
        for f in range(1, len(frames)):
            prev = {o["slot"]: o for o in frames[f - 1]["objects"]}
            errs = []
            for o in frames[f]["objects"]:
                p = prev.get(o["slot"])
                if p is not None:
                    guess = ballistic(p["position"], p["linvel"], p["size"], dt)
                    errs.append(math.dist(guess, o["position"]))
            per_frame.append(sum(errs) / len(errs) if errs else 0.0)
        out.append({"max": max(per_frame, default=0.0), "mean": sum(per_frame) / max(len(per_frame), 1)})
    return {"surprise": out}


OFFSETS = [0.5, 0.7, 0.3, 0.9, 0.1, 1.1, 0.6, 0.4]
HEIGHTS = [0.1, 0.3, 0.5, 0.2]


def place(msg):
    """A placement for a `plan-launch` request: the k-th of a fixed sweep behind the target."""
    scene = msg["scene"]
    target, goal = scene["target"], scene["goal"]
    r = scene["radius"][1]
    k = len(msg["outcomes"]) + len(msg["refused"])
    away = -1.0 if goal["center"][0] >= target["position"][0] else 1.0
    dx = OFFSETS[k % len(OFFSETS)] * (target["radius"] + r)
    h = HEIGHTS[(k // len(OFFSETS)) % len(HEIGHTS)]
    x = target["position"][0] + away * dx
    y = target["position"][1] + target["radius"] + r + h
    return {"placement": {"x": x, "y": y, "radius": r}}


K_P, K_D = 8.0, 1.6


def push(msg):
    """A force for a `plan-push` control step: PD toward the goal's centre (the harness
    clips it to the bound); no force while the puck is not visible."""
    p = msg["puck"]
    if p is None:
        return {"force": [0.0, 0.0]}
    g = msg["scene"]["goal"]["center"]
    pos, vel = p["position"], p["velocity"]
    return {"force": [K_P * (g[0] - pos[0]) - K_D * vel[0], K_P * (g[2] - pos[2]) - K_D * vel[2]]}


def answer(item):
    if item["type"] == "plan":
        return push(item) if item["task"] == "plan-push" else place(item)
    task = item["task"]
    if task == "forecast":
        return forecast(item)
    if task == "contact":
        return contact(item)
    if task == "voe":
        return surprise(item)
    return {"choice": 0}


def main():
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["type"] == "hello":
            tasks = ["forecast", "contact", "outcome", "voe", "plan-launch", "plan-push"]
            reply = {"type": "hello", "name": "python-constant-velocity", "tasks": tasks}
        else:
            try:
                reply = {"id": msg["id"], **answer(msg)}
            except Exception as e:  # an answer the harness counts as invalid
                reply = {"id": msg["id"], "error": repr(e)}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
