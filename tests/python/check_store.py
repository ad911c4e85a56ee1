"""Read a physworld dataset straight from an S3-compatible store with pyarrow and polars,
and compare every object with a local copy of the same dataset.

usage: check_store.py ENDPOINT s3://BUCKET/PREFIX LOCAL_DIR

Credentials and region come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION.
Prints one JSON object: the object count, the files that differ or are missing on either
side, and the frame rows each client read from data/**/*.parquet.
"""

import json
import os
import pathlib
import sys

import polars as pl
import pyarrow.dataset as pads
import pyarrow.fs as pafs

endpoint, url, local = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
assert url.startswith("s3://"), url
bucket_prefix = url[len("s3://"):].rstrip("/")
scheme, host = endpoint.split("://", 1)
fs = pafs.S3FileSystem(
    endpoint_override=host,
    scheme=scheme,
    access_key=os.environ["AWS_ACCESS_KEY_ID"],
    secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
    region=os.environ.get("AWS_REGION", "us-east-1"),
)

# Every object, byte for byte against the local copy.
infos = fs.get_file_info(pafs.FileSelector(bucket_prefix, recursive=True))
remote = {}
for info in infos:
    if info.type == pafs.FileType.File:
        with fs.open_input_stream(info.path) as f:
            remote[info.path[len(bucket_prefix) + 1:]] = f.read()
local_files = {str(p.relative_to(local)): p.read_bytes() for p in local.rglob("*") if p.is_file()}
differ = sorted(k for k in remote.keys() & local_files.keys() if remote[k] != local_files[k])
only_remote = sorted(remote.keys() - local_files.keys())
only_local = sorted(local_files.keys() - remote.keys())

# Frame rows of every split, read from the store by each client.
frames = [k for k in remote if k.startswith("data/") and k.endswith(".parquet") and "/episodes" not in k]
pyarrow_rows = pads.dataset([f"{bucket_prefix}/{k}" for k in frames], filesystem=fs, format="parquet").count_rows()
opts = {
    "aws_endpoint_url": endpoint,
    "aws_allow_http": "true",
    "aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
    "aws_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"],
    "aws_region": os.environ.get("AWS_REGION", "us-east-1"),
}
polars_rows = sum(
    pl.scan_parquet(f"s3://{bucket_prefix}/{k}", storage_options=opts).select(pl.len()).collect().item()
    for k in sorted(frames)
)
print(json.dumps({
    "objects": len(remote),
    "differ": differ,
    "only_remote": only_remote,
    "only_local": only_local,
    "frame_files": len(frames),
    "pyarrow_rows": pyarrow_rows,
    "polars_rows": polars_rows,
}))
