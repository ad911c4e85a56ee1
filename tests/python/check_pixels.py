"""Read a physworld pixel dataset the way researchers do: Hugging Face `datasets` decodes
the `pixels` config's image columns (from the folder's card and from the Parquet files'
schema metadata), pyarrow reads the PNG bytes. Usage: check_pixels.py DATASET_DIR HEIGHT.
Prints one line per client and "all checks passed"."""

import glob
import io
import sys

import datasets
import pyarrow.parquet as pq
from PIL import Image

root, height = sys.argv[1], int(sys.argv[2])
files = sorted(glob.glob(f"{root}/pixels/*.parquet"))
assert files, f"no pixels files under {root}/pixels"

# The card's `pixels` config, as `load_dataset(folder, "pixels")` sees it.
ds = datasets.load_dataset(root, "pixels", split="train")
assert isinstance(ds.features["image"], datasets.Image), ds.features
row = ds[0]
for name, mode in [("image", "RGB"), ("segmentation", "L"), ("depth", None)]:
    img = row[name]
    assert isinstance(img, Image.Image), (name, type(img))
    assert img.size[1] == height, (name, img.size)
    assert mode is None or img.mode == mode, (name, img.mode)
assert row["depth"].mode in ("I;16", "I;16B", "I"), row["depth"].mode
print(f"datasets {datasets.__version__}: {len(ds)} train frames, image {row['image'].size} {row['image'].mode}")

# The Parquet files alone (no card): the schema metadata declares the images.
plain = datasets.load_dataset("parquet", data_files=files, split="train")
assert isinstance(plain.features["segmentation"], datasets.Image), plain.features

# pyarrow: PNG bytes that decode, masks whose ids match the per-slot pixel counts.
t = pq.read_table(files[0])
for k in range(min(len(t), 8)):
    seg = Image.open(io.BytesIO(t.column("segmentation")[k]["bytes"].as_py()))
    counts = t.column("object.pixels")[k].as_py()
    hist = seg.histogram()
    for slot, n in enumerate(counts):
        assert hist[slot + 1] == n, (k, slot, hist[slot + 1], n)
print(f"pyarrow: {len(t)} rows in {files[0].split('/')[-1]}, masks agree with object.pixels")

# The stored camera puts each visible object's recorded centre on (or next to) its own mask.
def centre_pixels(table, frames):
    """(slot, u, v, mask) for every object with a few mask pixels, in every row."""
    for k in range(len(table)):
        K = table.column("camera.intrinsics")[k].as_py()
        M = table.column("camera.to_world")[k].as_py()
        row = frames.loc[table.column("index")[k].as_py()]
        seg = Image.open(io.BytesIO(table.column("segmentation")[k]["bytes"].as_py()))
        for slot, n in enumerate(table.column("object.pixels")[k].as_py()):
            if n < 4:
                continue
            p = row["object.position"][3 * slot : 3 * slot + 3]
            d = [p[i] - M[4 * i + 3] for i in range(3)]
            # The camera's axes are the pose's columns; it looks down -z.
            x, y, z = (sum(d[i] * M[4 * i + c] for i in range(3)) for c in range(3))
            assert -z > 0, (k, slot, z)
            yield slot, K[2] + K[0] * x / -z, K[5] - K[4] * y / -z, seg


checked = 0
for file in files:
    table = pq.read_table(file)
    frames = pq.read_table(file.replace("/pixels/", "/data/")).to_pandas().set_index("index")
    for slot, u, v, seg in centre_pixels(table, frames):
        w, h = seg.size
        near = {seg.getpixel((min(max(int(u) + du, 0), w - 1), min(max(int(v) + dv, 0), h - 1)))
                for du in (-1, 0, 1) for dv in (-1, 0, 1)}
        assert slot + 1 in near, (file, slot, u, v, near)
        checked += 1
assert checked >= 10, checked
print(f"camera: {checked} object centres project onto their masks")
print("all checks passed")
