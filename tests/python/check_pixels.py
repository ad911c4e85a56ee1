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
print("all checks passed")
