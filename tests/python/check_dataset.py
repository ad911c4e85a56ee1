#!/usr/bin/env python3
"""Read a physworld dataset with pyarrow, polars, duckdb and Hugging Face `datasets`.

    python check_dataset.py DATASET_DIR EXPECTATIONS_JSON

EXPECTATIONS_JSON:
    {"splits": {"train": {"frames": 7638, "episodes": 78}, ...},
     "max_objects": 12,
     "probe": {"split": "train", "episode_index": 0, "frame_index": 5,
               "position": [3*S floats], "present": [S bools], "timestamp": 0.1666},
     "episodes_probe": {"episode_index": 0, "family": "drop", "seed": 123, "label.contact": true}}

Every key of "episodes_probe" other than episode_index is compared with that episode's
column of the same name. Prints one line per check; exits 1 on the first failure.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np


def fail(client, msg):
    print(f"FAIL {client}: {msg}", file=sys.stderr)
    sys.exit(1)


def ok(client, msg):
    print(f"{client}: {msg} ok", flush=True)


def check(cond, client, msg):
    if not cond:
        fail(client, msg)


def compare_probe(client, got, probe):
    """got: dict with position, present, timestamp as read by the client."""
    want_pos = np.asarray(probe["position"], dtype=np.float32)
    got_pos = np.asarray(got["position"], dtype=np.float32)
    check(got_pos.shape == want_pos.shape, client, f"probe position has {got_pos.size} values, want {want_pos.size}")
    bad = np.nonzero(got_pos != want_pos)[0]
    check(bad.size == 0, client, f"probe position differs at {bad[:5].tolist()}: got {got_pos[bad[:5]].tolist()} want {want_pos[bad[:5]].tolist()}")
    check([bool(v) for v in got["present"]] == list(probe["present"]), client,
          f"probe present: got {list(got['present'])} want {probe['present']}")
    check(np.float32(got["timestamp"]) == np.float32(probe["timestamp"]), client,
          f"probe timestamp: got {got['timestamp']!r} want {probe['timestamp']!r}")
    ok(client, "probe frame values")


def compare_episode(client, row, eprobe):
    if row is None:
        fail(client, f"episode {eprobe['episode_index']} not found in the episodes config")
    for key, want in eprobe.items():
        got = row[key]
        same = np.float32(got) == np.float32(want) if isinstance(want, float) and got is not None else got == want
        check(same, client, f"episode {eprobe['episode_index']} {key}: got {got!r} want {want!r}")
    ok(client, "episodes probe values")


def files(root, config, split):
    sub = "data" if config == "default" else "meta/episodes"
    found = sorted((root / sub).glob(f"{split}-*.parquet"))
    if not found:
        fail("layout", f"no files {sub}/{split}-*.parquet")
    return found


def check_pyarrow(root, exp):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    S, c = exp["max_objects"], f"pyarrow {pa.__version__}"
    fsl = lambda t, n: pa.list_(pa.field("item", t, nullable=False), n)
    want = {"episode_index": pa.int64(), "frame_index": pa.int64(), "timestamp": pa.float32(), "index": pa.int64(),
            "object.present": fsl(pa.bool_(), S), "object.visible": fsl(pa.bool_(), S),
            "object.position": fsl(pa.float32(), 3 * S), "object.rotation": fsl(pa.float32(), 4 * S),
            "object.linvel": fsl(pa.float32(), 3 * S), "object.angvel": fsl(pa.float32(), 3 * S),
            "object.size": fsl(pa.float32(), 3 * S), "object.shape": fsl(pa.int8(), S),
            "action": fsl(pa.float32(), 3),
            "contacts": pa.list_(pa.struct([("a", pa.int16()), ("b", pa.int16()), ("impulse", pa.float32())])),
            "zone_contacts": pa.list_(pa.struct([("zone", pa.int16()), ("object", pa.int16())]))}

    def same(a, b):  # structural type equality, ignoring list child field names and nullability
        if pa.types.is_fixed_size_list(b):
            return pa.types.is_fixed_size_list(a) and a.list_size == b.list_size and same(a.value_type, b.value_type)
        if pa.types.is_list(b):
            return pa.types.is_list(a) and same(a.value_type, b.value_type)
        if pa.types.is_struct(b):
            return (pa.types.is_struct(a) and [f.name for f in a] == [f.name for f in b]
                    and all(same(x.type, y.type) for x, y in zip(a, b)))
        return a == b

    for split, counts in exp["splits"].items():
        for config, key in (("default", "frames"), ("episodes", "episodes")):
            n = pads.dataset([str(f) for f in files(root, config, split)], format="parquet").count_rows()
            check(n == counts[key], c, f"{split} {config} has {n} rows, want {counts[key]}")
        for f in files(root, "default", split):
            schema = pq.read_schema(f)
            check(schema.names == list(want), c, f"{f.name} columns {schema.names}, want {list(want)}")
            for name, t in want.items():
                check(same(schema.field(name).type, t), c, f"{f.name} column {name} is {schema.field(name).type}, want {t}")
    ok(c, "row counts")
    ok(c, f"column types (e.g. object.position: {schema.field('object.position').type})")

    p = exp["probe"]
    ds = pads.dataset([str(f) for f in files(root, "default", p["split"])], format="parquet")
    t = ds.to_table(filter=(pc.field("episode_index") == p["episode_index"]) & (pc.field("frame_index") == p["frame_index"]))
    check(t.num_rows == 1, c, f"probe row matched {t.num_rows} rows, want 1")
    row = t.select(["object.position", "object.present", "timestamp"]).to_pylist()[0]
    compare_probe(c, {"position": row["object.position"], "present": row["object.present"], "timestamp": row["timestamp"]}, p)

    ep = exp["episodes_probe"]
    eps = pads.dataset([str(f) for s in exp["splits"] for f in files(root, "episodes", s)], format="parquet")
    rows = eps.to_table(filter=pc.field("episode_index") == ep["episode_index"], columns=list(ep)).to_pylist()
    compare_episode(c, rows[0] if len(rows) == 1 else None, ep)


def check_polars(root, exp):
    import polars as pl

    S, c = exp["max_objects"], f"polars {pl.__version__}"
    for split, counts in exp["splits"].items():
        for config, key in (("default", "frames"), ("episodes", "episodes")):
            sub = "data" if config == "default" else "meta/episodes"
            n = pl.scan_parquet(str(root / sub / f"{split}-*.parquet")).select(pl.len()).collect().item()
            check(n == counts[key], c, f"{split} {config} has {n} rows, want {counts[key]}")
    ok(c, "row counts")

    p = exp["probe"]
    lf = pl.scan_parquet(str(root / "data" / f"{p['split']}-*.parquet"))
    schema = lf.collect_schema()
    seen = {}
    for name, inner, width in (("object.position", pl.Float32, 3 * S), ("object.rotation", pl.Float32, 4 * S),
                               ("object.present", pl.Boolean, S), ("object.shape", pl.Int8, S), ("action", pl.Float32, 3)):
        dt = schema[name]
        seen[name] = str(dt)
        check(isinstance(dt, (pl.Array, pl.List)) and dt.inner == inner, c, f"{name} is {dt}, want Array/List of {inner}")
        if isinstance(dt, pl.Array):
            check(dt.shape == (width,), c, f"{name} is {dt}, want width {width}")
        else:  # a variable-length list: check the width of every row instead
            lens = lf.select(pl.col(name).list.len().unique()).collect().to_series().drop_nulls().to_list()
            check(lens == [width], c, f"{name} list lengths {lens}, want [{width}]")
    for name, dt in (("episode_index", pl.Int64), ("timestamp", pl.Float32)):
        check(schema[name] == dt, c, f"{name} is {schema[name]}, want {dt}")
    ok(c, f"column types (object.position: {seen['object.position']})")

    df = lf.filter((pl.col("episode_index") == p["episode_index"]) & (pl.col("frame_index") == p["frame_index"])).collect()
    check(df.height == 1, c, f"probe row matched {df.height} rows, want 1")
    row = df.row(0, named=True)
    compare_probe(c, {"position": row["object.position"], "present": row["object.present"], "timestamp": row["timestamp"]}, p)

    ep = exp["episodes_probe"]
    eps = pl.concat([pl.scan_parquet(str(root / "meta" / "episodes" / f"{s}-*.parquet")) for s in exp["splits"]])
    df = eps.filter(pl.col("episode_index") == ep["episode_index"]).select(list(ep)).collect()
    compare_episode(c, df.row(0, named=True) if df.height == 1 else None, ep)


def check_duckdb(root, exp):
    import duckdb

    S, c = exp["max_objects"], f"duckdb {duckdb.__version__}"
    con = duckdb.connect()
    q = lambda sql, *args: con.execute(sql, list(args)).fetchall()
    glob = lambda sub, split: str(root / sub / f"{split}-*.parquet")
    for split, counts in exp["splits"].items():
        for sub, key in (("data", "frames"), ("meta/episodes", "episodes")):
            n = q("SELECT count(*) FROM read_parquet(?)", glob(sub, split))[0][0]
            check(n == counts[key], c, f"{split} {sub} has {n} rows, want {counts[key]}")
    ok(c, "row counts")

    p = exp["probe"]
    frames = glob("data", p["split"])
    types = {r[0]: r[1] for r in q("DESCRIBE SELECT * FROM read_parquet(?)", frames)}
    for name, base, width in (("object.position", "FLOAT", 3 * S), ("object.rotation", "FLOAT", 4 * S),
                              ("object.present", "BOOLEAN", S), ("object.shape", "TINYINT", S), ("action", "FLOAT", 3)):
        t = types[name]
        check(t in (f"{base}[{width}]", f"{base}[]"), c, f"{name} is {t}, want {base}[{width}] or {base}[]")
        if t.endswith("[]"):  # a variable-length list: check the width of every row instead
            lens = [r[0] for r in q(f'SELECT DISTINCT len("{name}") FROM read_parquet(?) WHERE "{name}" IS NOT NULL', frames)]
            check(lens == [width], c, f"{name} list lengths {lens}, want [{width}]")
    for name, t in (("episode_index", "BIGINT"), ("timestamp", "FLOAT")):
        check(types[name] == t, c, f"{name} is {types[name]}, want {t}")
    ok(c, f"column types (object.position: {types['object.position']}, contacts: {types['contacts']})")

    rows = q('SELECT "object.position", "object.present", timestamp FROM read_parquet(?) '
             "WHERE episode_index = ? AND frame_index = ?", frames, p["episode_index"], p["frame_index"])
    check(len(rows) == 1, c, f"probe row matched {len(rows)} rows, want 1")
    compare_probe(c, {"position": rows[0][0], "present": rows[0][1], "timestamp": rows[0][2]}, p)

    ep = exp["episodes_probe"]
    cols = ", ".join(f'"{k}"' for k in ep)
    eps = [glob("meta/episodes", s) for s in exp["splits"]]
    rows = q(f"SELECT {cols} FROM read_parquet(?) WHERE episode_index = ?", eps, ep["episode_index"])
    compare_episode(c, dict(zip(ep, rows[0])) if len(rows) == 1 else None, ep)


def check_datasets(root, exp):
    # Offline, with a throwaway cache; must be set before `datasets` is imported.
    with tempfile.TemporaryDirectory(prefix="physworld-hf-") as tmp:
        os.environ.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", HF_HOME=tmp,
                          HF_DATASETS_CACHE=os.path.join(tmp, "datasets"))
        check_datasets_offline(root, exp)


def check_datasets_offline(root, exp):
    import datasets
    from datasets import load_dataset

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    S, c = exp["max_objects"], f"datasets {datasets.__version__}"
    path = str(root)
    frames = load_dataset(path)
    episodes = load_dataset(path, "episodes")
    for config, dd, key in (("default", frames, "frames"), ("episodes", episodes, "episodes")):
        check(set(dd) == set(exp["splits"]), c, f"{config} config splits {sorted(dd)}, want {sorted(exp['splits'])}")
        for split, counts in exp["splits"].items():
            check(dd[split].num_rows == counts[key], c, f"{config}/{split} has {dd[split].num_rows} rows, want {counts[key]}")
    ok(c, "configs, splits and row counts")

    feats = frames[exp["probe"]["split"]].features
    for name, dtype, width in (("object.position", "float32", 3 * S), ("object.present", "bool", S),
                               ("object.shape", "int8", S), ("action", "float32", 3)):
        f = feats[name]
        inner = getattr(f, "feature", None)
        check(getattr(inner, "dtype", None) == dtype and getattr(f, "length", None) == width, c,
              f"feature {name} is {f!r}, want a list of {dtype} with length {width}")
    check(feats["timestamp"].dtype == "float32", c, f"timestamp feature is {feats['timestamp']!r}")
    ok(c, f"feature types (object.position: {feats['object.position']!r})")

    p = exp["probe"]
    ds = frames[p["split"]].with_format("numpy")
    hits = np.nonzero((ds["episode_index"][:] == p["episode_index"]) & (ds["frame_index"][:] == p["frame_index"]))[0]
    check(hits.size == 1, c, f"probe row matched {hits.size} rows, want 1")
    row = frames[p["split"]][int(hits[0])]
    compare_probe(c, {"position": row["object.position"], "present": row["object.present"], "timestamp": row["timestamp"]}, p)

    ep = exp["episodes_probe"]
    found = [d[int(i)] for d in episodes.values()
             for i in np.nonzero(d.with_format("numpy")["episode_index"][:] == ep["episode_index"])[0]]
    compare_episode(c, found[0] if len(found) == 1 else None, ep)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    root, exp = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
    check((root / "README.md").is_file(), "layout", f"{root}/README.md (the dataset card) is missing")
    for client in (check_pyarrow, check_polars, check_duckdb, check_datasets):
        try:
            client(root, exp)
        except Exception as e:  # a client error (missing file, unreadable column...) is a failure too
            fail(client.__name__.removeprefix("check_"), f"{type(e).__name__}: {e}")
    print("all checks passed")


if __name__ == "__main__":
    main()
