"""python -m onyx_sample OUT_DIR [--kind normal|360] [--frames N] [--size WxH] [--fps F] [--seed S]"""

from __future__ import annotations

import argparse

from .make import make_sample_video


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m onyx_sample", description=__doc__)
    ap.add_argument("out_dir")
    ap.add_argument("--kind", choices=["normal", "360"], default="normal")
    ap.add_argument("--frames", type=int)
    ap.add_argument("--size", help="WIDTHxHEIGHT")
    ap.add_argument("--fps", type=float)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    width = height = None
    if args.size:
        width, height = (int(x) for x in args.size.lower().split("x"))
    v = make_sample_video(args.out_dir, args.kind, args.frames, width, height, args.fps, args.seed)
    print(f"{v.path} ({v.frames} frames {v.width}x{v.height} @ {v.fps:g} fps, path {v.path_length:.2f} m); "
          f"truth {v.truth_path}; render {v.render_s:.1f} s, encode {v.encode_s:.1f} s")


if __name__ == "__main__":
    main()
