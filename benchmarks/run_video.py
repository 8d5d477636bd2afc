"""Video benchmark: every registered video detector on UCSD Ped2 under
$ODDITY_DATA/video/ucsd_ped2 (default ../shared/data), written to
benchmarks/results/video.{md,json}; with --figures N, heat maps of the N top-scoring test
frames (one per clip) and a score timeline go to docs/images/.

Usage: python benchmarks/run_video.py [--detectors motion_patch] [--set key=value ...]
       [--figures 4] [--keep]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import oddity
from oddity.bench.common import parse_settings
from oddity.core.persistence import atomic_write
from oddity.plots import save_figure
from oddity.video.detector import VideoDetector
from oddity.video.evaluate import VideoEvaluation, evaluate, top_frames
from oddity.video.plots import annotated_frame, map_range, timeline_figure
from oddity.viz import save_png, side_by_side

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
IMAGES = HERE.parent / "docs" / "images"
# Published frame-level micro AUROC on Ped2 (no per-clip normalisation stated by the papers).
PUBLISHED = [("future-frame prediction (Liu et al., CVPR 2018)", 0.954),
             ("CT-D2GAN (Feng et al., ACM MM 2021)", 0.972)]


def run(detector_name: str, data: Path, params: dict, verbose: bool) -> tuple[dict, VideoDetector, VideoEvaluation]:
    detector = oddity.create(detector_name, **params)
    assert isinstance(detector, VideoDetector)
    start, start_cpu = time.perf_counter(), time.process_time()
    detector.fit(data, verbose=verbose)
    fit_seconds, fit_cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    evaluation = evaluate(detector, data, verbose=verbose)
    row = {"detector": detector_name, "settings": params, **evaluation.to_dict(),
           "fit_seconds": round(fit_seconds, 1), "fit_cpu_seconds": round(fit_cpu_seconds, 1),
           "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2)}
    return row, detector, evaluation


def write_scores(name: str, params: dict, evaluation: VideoEvaluation) -> Path:
    """Per-frame labels and scores of a run, for analysis and the docs' figures."""
    suffix = "".join(f"-{k}={v}" for k, v in params.items())
    path = RESULTS / "video_scores" / f"ped2-{name}{suffix}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = pd.concat([p.to_frame().assign(clip=p.clip, label=c.labels.astype(int))
                        for c, p in zip(evaluation.clips, evaluation.predictions)], ignore_index=True)
    columns = ["clip", "frame", "label", "score", "raw_score", "anomalous"]
    atomic_write(path, lambda tmp: frames[columns].to_csv(tmp, index=False, float_format="%.5g"))
    return path


def write_figures(name: str, evaluation: VideoEvaluation, count: int) -> list[Path]:
    """Heat maps of the top `count` frames (frame | frame with heat map) and one timeline."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    written = []
    for clip_index, frame_index in top_frames(evaluation, count):
        clip, prediction = evaluation.clips[clip_index], evaluation.predictions[clip_index]
        frame = next(f for i, f in enumerate(clip.frames()) if i == frame_index)
        shown = annotated_frame(frame, prediction, frame_index, map_range(prediction))
        path = IMAGES / f"video_ped2_{name}_clip{clip.id}_frame{frame_index:03d}.png"
        save_png(path, side_by_side(frame.astype(np.float32) / 255, shown.astype(np.float32) / 255),
                 colours=128)
        written.append(path)
    clip_index = top_frames(evaluation, 1)[0][0]
    clip, prediction = evaluation.clips[clip_index], evaluation.predictions[clip_index]
    path = IMAGES / f"video_ped2_{name}_timeline_clip{clip.id}.png"
    save_figure(timeline_figure(prediction, clip.labels, f"Ped2 test clip {clip.id}: {name}"), path,
                colours=32)
    return [*written, path]


def fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def write_results(rows: list[dict], command: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"command": command, "rows": rows}, indent=2) + "\n"
    atomic_write(RESULTS / "video.json", lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    lines = [
        "# Video benchmark (UCSD Ped2)", "",
        f"Reproduce: the command of each row is listed below the table (machine: {platform.machine()}, "
        f"{os.cpu_count()} CPU cores; speeds are end to end, decoding included).", "",
        "Protocol: fit on the 16 normal training clips (the last 15% of them, 3 clips, held out to "
        "calibrate the frame threshold at 1% FPR), score the 12 test clips (2,010 frames, 1,648 "
        "anomalous). **micro** = frame AUROC over all test frames concatenated (the standard "
        "figure), **macro** = mean of per-clip AUROCs (clips with both classes). Range F1 is at "
        "the calibrated threshold. Columns after the bar are labelled variants of the same run: "
        "unsmoothed frame scores, and per-clip min-max normalised scores (needs whole test clips; "
        "many papers report this way).", "",
        "| detector | settings | micro AUROC | macro AUROC | AUPR | EER | range F1 (P / R) | "
        "unsmoothed micro | per-clip norm. micro / macro | fit s | fit CPU s | frames/s | CPU ms/frame | peak RSS GB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        m = row["metrics"]
        s, u, n = m["scores"], m["unsmoothed"], m["per_clip_normalised"]
        settings = ", ".join(f"{k}={v}" for k, v in row["settings"].items()) or "defaults"
        lines.append(
            f"| **{row['detector']}** | {settings} | {fmt(s['micro_auroc'])} | {fmt(s['macro_auroc'])} | "
            f"{fmt(s['aupr'])} | {fmt(s['eer'])} | {fmt(s.get('range_f1'))} ({fmt(s.get('range_precision'))} / "
            f"{fmt(s.get('range_recall'))}) | {fmt(u['micro_auroc'])} | {fmt(n['micro_auroc'])} / "
            f"{fmt(n['macro_auroc'])} | {row['fit_seconds']} | {row.get('fit_cpu_seconds', '–')} | {row['frames_per_second']} | "
            f"{row.get('cpu_ms_per_frame', '–')} | "
            f"{row['peak_rss_gb']} |")
    lines += ["", "Commands:", ""]
    lines += [f"- {row['detector']}, {', '.join(f'{k}={v}' for k, v in row['settings'].items()) or 'defaults'}: "
              f"`{row.get('command', command).strip()}`" for row in rows]
    lines += ["", "Published frame-level micro AUROC on Ped2, for comparison (full-size frames, "
              "GPU training):", ""]
    lines += [f"- {name}: {value:.3f}" for name, value in PUBLISHED]
    text = "\n".join(lines) + "\n"
    atomic_write(RESULTS / "video.md", lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("ODDITY_DATA", "../shared/data")) / "video" / "ucsd_ped2"
    parser.add_argument("--data", default=str(default_data), help="Ped2 folder (training/, testing/)")
    parser.add_argument("--detectors", nargs="+", default=oddity.list_detectors("video"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="detector parameter for this run, value as JSON")
    parser.add_argument("--figures", type=int, default=0, metavar="N",
                        help="write heat maps of the N top frames to docs/images")
    parser.add_argument("--keep", action="store_true", help="keep the rows already in results/video.json")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    data = Path(args.data)
    if not (data / "testing").is_dir():
        print(f"no Ped2 folder at {data}; set ODDITY_DATA", file=sys.stderr)
        return 2
    command = "python benchmarks/run_video.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    rows: list[dict] = []
    params = parse_settings(args.set)
    for name in args.detectors:
        print(f"Ped2 / {name} {params or ''} ...", flush=True)
        row, _, evaluation = run(name, data, params, not args.quiet)
        row["command"] = command
        print(json.dumps(row), flush=True)
        if args.keep and (RESULTS / "video.json").is_file():  # read now: other runs may have added rows
            rows = [{key: value for key, value in r.items() if key != "load_average"}  # older files
                    for r in json.loads((RESULTS / "video.json").read_text())["rows"]]
        rows = [r for r in rows if (r["detector"], r["settings"]) != (name, params)] + [row]
        write_results(rows, command.strip())
        print(f"  scores {write_scores(name, params, evaluation)}")
        if args.figures:
            for path in write_figures(name, evaluation, args.figures):
                print(f"  figure {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
