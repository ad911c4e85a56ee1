#!/usr/bin/env python3
"""Storage options for rendered RGB: PNG in Parquet (physworld's) against per-episode video.

    python pixel_storage.py DATASET [--episodes N] [--json PATH]

DATASET is a physworld dataset generated with `--modality pixels`. The script reads its
pixels files (pixels/*.parquet) with pyarrow, decodes the first N episodes' RGB PNGs with
Pillow, and encodes each episode as one video file with PyAV (FFmpeg) in the settings
LeRobot and common practice use:

- `av1`: libsvtav1, crf 30, GOP 2, yuv420p (LeRobot's defaults for its video datasets);
- `h264`: libx264, crf 23 (FFmpeg's default), yuv420p;
- `h264-lossless`: libx264, qp 0, yuv444p (lossless in YUV, close to lossless in RGB);
- `ffv1`: FFV1, bgr0 (lossless).

For PNG and each codec it prints bytes per frame, encode and decode frames/s (one thread:
`thread_count=1` for FFmpeg, Pillow is single-threaded), and the PSNR of the decoded RGB
against the PNG's, averaged over the frames that differ (inf when every frame is exact). yuv420p needs even sizes: odd widths are padded by
repeating the last column (counted in the video, cropped before PSNR). Segmentation and
depth stay PNG in every option (lossy video cannot carry them), so they are reported once.

Needs: pyarrow, pillow, numpy, av (PyAV wheels bundle FFmpeg with these encoders).
"""

import argparse
import glob
import io
import json
import math
import os
import sys
import time

# SVT-AV1 prints its configuration per stream unless told to log errors only.
os.environ.setdefault("SVT_LOG", "1")

import av  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from PIL import Image  # noqa: E402

CODECS = {
    "av1": dict(codec="libsvtav1", pix_fmt="yuv420p", options={"crf": "30", "g": "2", "preset": "8"}),
    "h264": dict(codec="libx264", pix_fmt="yuv420p", options={"crf": "23"}),
    "h264-lossless": dict(codec="libx264", pix_fmt="yuv444p", options={"qp": "0"}),
    "ffv1": dict(codec="ffv1", pix_fmt="bgr0", options={}),
}


def episodes_of(dataset, limit):
    """{episode_index: {"rgb": [png bytes], "seg": [...], "depth": [...]}} for the first `limit` episodes."""
    out = {}
    for path in sorted(glob.glob(os.path.join(dataset, "pixels", "*.parquet"))):
        t = pq.read_table(path, columns=["episode_index", "frame_index", "image", "segmentation", "depth"])
        eps = t.column("episode_index").to_pylist()
        frames = t.column("frame_index").to_pylist()
        cols = {k: [x["bytes"] for x in t.column(c).to_pylist()] for k, c in
                [("rgb", "image"), ("seg", "segmentation"), ("depth", "depth")]}
        for row, (e, f) in enumerate(zip(eps, frames)):
            if e not in out:
                if len(out) >= limit:
                    return out
                out[e] = {"rgb": [], "seg": [], "depth": []}
            assert f == len(out[e]["rgb"]), f"episode {e}: frame {f} out of order"
            for k in cols:
                out[e][k].append(cols[k][row])
    return out


def encode(frames, spec, fps=30):
    """One episode's RGB frames (H, W, 3 uint8) as a video file's bytes, and the seconds it took."""
    h, w, _ = frames[0].shape
    pad_w, pad_h = w + (w % 2), h + (h % 2)
    buf = io.BytesIO()
    start = time.perf_counter()
    with av.open(buf, "w", format="matroska" if spec["codec"] == "ffv1" else "mp4") as c:
        s = c.add_stream(spec["codec"], rate=fps)
        s.width, s.height, s.pix_fmt = pad_w, pad_h, spec["pix_fmt"]
        s.options = dict(spec["options"])
        s.thread_count = 1
        for f in frames:
            if (pad_w, pad_h) != (w, h):
                f = np.pad(f, ((0, pad_h - h), (0, pad_w - w), (0, 0)), mode="edge")
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return buf.getvalue(), time.perf_counter() - start


def decode(data, h, w):
    """Decoded RGB frames, cropped to (h, w), and the seconds it took."""
    start = time.perf_counter()
    out = []
    with av.open(io.BytesIO(data)) as c:
        s = c.streams.video[0]
        s.thread_count = 1
        for f in c.decode(s):
            out.append(f.to_ndarray(format="rgb24")[:h, :w])
    return out, time.perf_counter() - start


def psnr(a, b):
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255 ** 2 / mse)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset")
    ap.add_argument("--episodes", type=int, default=32)
    ap.add_argument("--json")
    a = ap.parse_args()
    eps = episodes_of(a.dataset, a.episodes)
    if not eps:
        sys.exit(f"{a.dataset}: no pixels/*.parquet (generate it with --modality pixels)")
    n_frames = sum(len(e["rgb"]) for e in eps.values())
    rows = []

    # PNG, as stored: sizes of all three images, and Pillow's decode rate for RGB.
    start = time.perf_counter()
    rgb = {}
    for k, e in eps.items():
        rgb[k] = [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in e["rgb"]]
    png_decode = time.perf_counter() - start
    h, w, _ = next(iter(rgb.values()))[0].shape
    size = {k: sum(len(b) for e in eps.values() for b in e[k]) / n_frames for k in ("rgb", "seg", "depth")}
    rows.append(dict(option="png (stored)", bytes_per_frame=size["rgb"], encode_fps=None,
                     decode_fps=n_frames / png_decode, psnr_db=math.inf))

    for name, spec in CODECS.items():
        total, t_enc, t_dec, errs = 0, 0.0, 0.0, []
        for k, frames in rgb.items():
            data, te = encode(frames, spec)
            back, td = decode(data, h, w)
            if len(back) != len(frames):
                sys.exit(f"{name}: episode {k} decoded {len(back)} frames of {len(frames)}")
            total, t_enc, t_dec = total + len(data), t_enc + te, t_dec + td
            errs.extend(psnr(x, y) for x, y in zip(frames, back))
        finite = [e for e in errs if math.isfinite(e)]
        # Mean over the frames that differ at all; exact frames are counted apart.
        mean_psnr = sum(finite) / len(finite) if finite else math.inf
        rows.append(dict(option=name, bytes_per_frame=total / n_frames, encode_fps=n_frames / t_enc,
                         decode_fps=n_frames / t_dec, psnr_db=mean_psnr, lossless_frames=len(errs) - len(finite)))

    report = dict(dataset=a.dataset, episodes=len(eps), frames=n_frames, height=h, width=w,
                  png_bytes_per_frame=size, options=rows)
    print(f"{len(eps)} episodes, {n_frames} frames, {w}x{h} px; PNG bytes per frame: "
          f"RGB {size['rgb']:.0f}, segmentation {size['seg']:.0f}, depth {size['depth']:.0f}")
    print(f"{'RGB stored as':<16} {'bytes/frame':>11} {'vs PNG':>7} {'encode f/s':>11} {'decode f/s':>11} {'PSNR dB':>8}")
    for r in rows:
        enc = "" if r["encode_fps"] is None else f"{r['encode_fps']:.0f}"
        print(f"{r['option']:<16} {r['bytes_per_frame']:>11.0f} {r['bytes_per_frame'] / size['rgb']:>7.2f} "
              f"{enc:>11} {r['decode_fps']:>11.0f} {r['psnr_db']:>8.1f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1, default=str)


if __name__ == "__main__":
    main()
