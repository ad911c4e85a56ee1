#!/usr/bin/env python3
"""Parquet write throughput of pyarrow on a physworld frames table, beside physworld's own.

    python parquet_write.py DATA_FILE [--repeat N] [--threads both|1|default] [--json PATH]

Reads one physworld data file (e.g. data/train-00000-of-00002.parquet) into a pyarrow
Table, then times `pyarrow.parquet.write_table` of that table into an in-memory buffer
with physworld's writer settings (pipeline/src/parquet_io.rs): zstd level 3, row groups
of 65,536 rows, statistics down to the data pages (chunk statistics plus the page
index), no dictionary encoding (physworld turns it off: it only grows float columns), data page v1.

MB/s counts the table's in-memory Arrow size (`table.nbytes`) / 1e6 per second, so the
figure is comparable with a writer fed the same record batch. One untimed warm-up run,
then N timed runs; reports the best and the median. Runs once with
`pa.set_cpu_count(1)` (physworld's encoder is single-threaded per file) and once with
pyarrow's default thread count. Prints one JSON line and one human line per run.
"""

import argparse
import json
import statistics
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq

# physworld's writer settings, in pyarrow's words.
WRITE_OPTIONS = dict(
    compression="zstd",
    compression_level=3,
    row_group_size=65_536,
    write_statistics=True,
    write_page_index=True,  # parquet-rs EnabledStatistics::Page also writes the column/offset index
    use_dictionary=False,
    data_page_version="1.0",
)


def write_once(table):
    sink = pa.BufferOutputStream()
    t0 = time.perf_counter()
    pq.write_table(table, sink, **WRITE_OPTIONS)
    elapsed = time.perf_counter() - t0
    return elapsed, sink.getvalue()


def bench(table, path, repeat, threads):
    default_threads = pa.cpu_count()
    if threads != "default":
        pa.set_cpu_count(int(threads))
    try:
        used = pa.cpu_count()
        _, buf = write_once(table)  # warm-up; also the output we sanity-check
        back = pq.read_table(pa.BufferReader(buf))
        if back.num_rows != table.num_rows or not back.schema.equals(table.schema):
            sys.exit("pyarrow wrote a file that does not read back as the same table")
        times = [write_once(table)[0] for _ in range(repeat)]
    finally:
        pa.set_cpu_count(default_threads)
    best, median = min(times), statistics.median(times)
    mb = table.nbytes / 1e6
    return {
        "engine": "pyarrow",
        "version": pa.__version__,
        "file": str(path),
        "threads": used,
        "rows": table.num_rows,
        "table_bytes": table.nbytes,
        "out_bytes": buf.size,
        "repeat": repeat,
        "best_s": round(best, 6),
        "median_s": round(median, 6),
        "mb_per_s": round(mb / median, 2),
        "best_mb_per_s": round(mb / best, 2),
        "rows_per_s": round(table.num_rows / median, 1),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", help="a physworld data/*.parquet file (a few MB makes a steadier figure)")
    ap.add_argument("--repeat", type=int, default=10, help="timed writes per setting (default 10)")
    ap.add_argument("--threads", choices=["both", "1", "default"], default="both")
    ap.add_argument("--json", help="also write the results as a JSON list to this path")
    args = ap.parse_args()

    table = pq.read_table(args.file)
    print(f"pyarrow {pa.__version__}, pa.cpu_count() = {pa.cpu_count()}, io_thread_count() = {pa.io_thread_count()}")
    print(f"{args.file}: {table.num_rows} rows, {table.num_columns} columns, "
          f"table.nbytes = {table.nbytes} ({table.nbytes / 1e6:.1f} MB in memory)")
    settings = ["1", "default"] if args.threads == "both" else [args.threads]
    results = []
    for threads in settings:
        r = bench(table, args.file, args.repeat, threads)
        results.append(r)
        print(json.dumps(r))
        print(f"pyarrow {r['version']} threads={r['threads']}: median {r['median_s'] * 1e3:.1f} ms "
              f"(best {r['best_s'] * 1e3:.1f} ms) over {r['repeat']} writes = {r['mb_per_s']:.1f} MB/s "
              f"(best {r['best_mb_per_s']:.1f}), {r['rows_per_s']:,.0f} rows/s; "
              f"output {r['out_bytes'] / 1e6:.2f} MB ({table.nbytes / r['out_bytes']:.1f}x smaller)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
