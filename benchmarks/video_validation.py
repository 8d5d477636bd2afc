"""Video validation without test labels: choose defaults on held-out normal UCSD Ped2
training clips with synthetic anomalies inserted, never on the test set.

The detector fits on training clips 01-12 (the first 20 frames of clip 13 calibrate its
threshold; not used here). Validation clips: training clips 14-16 as they are (normal), and
six 60-frame copies of them (two per clip) in which a dark figure crosses the walkway from
frame 10 on (`oddity.video.synth.insert_moving_object`): 12, 20 and 32 pixels tall (far,
middle, near), each at 0.12 and 0.2 of its height per frame (walkers move about 0.08). The
figures: micro AUROC over all validation frames, and per kind of figure (its frames against
every normal frame); beside, on the same raw scores, other smoothing windows and the mean
of the k largest map cells as the frame score. Rows go to benchmarks/results/video_validation.{md,json}.

Usage: python benchmarks/video_validation.py [--detector motion_patch] [--set key=value ...]
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

import oddity
from oddity.bench.common import parse_settings
from oddity.core.persistence import atomic_write
from oddity.video.data import Clip, open_clip, training_clips
from oddity.video.detector import smooth_scores
from oddity.video.synth import insert_moving_object, write_frames

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
FIGURES = [(12, 104), (20, 120), (32, 165)]  # (height, top row): far, middle, near on the walkway
SPEEDS = [0.12, 0.2]  # pixels per frame, as fractions of the figure's height
FRAMES, FIRST = 60, 10
WINDOWS = (1, 5, 9, 15)  # smoothing windows compared on the same raw scores
TOP_K = (1, 3, 9)  # frame score = mean of the k largest map cells (1 = max), compared alike


def validation_set(data: Path, cache: Path) -> tuple[list[Clip], list[Clip], list[tuple[Clip, str]]]:
    """(fit clips, normal validation clips, [(anomalous clip, kind)]), the anomalous clips
    written once under `cache`."""
    clips = training_clips(data)
    if len(clips) != 16:
        raise SystemExit(f"{data}: expected the 16 Ped2 training clips, found {len(clips)}")
    calibration = Clip(clips[12].id, clips[12].source, files=clips[12].files[:20])
    held = clips[13:]
    anomalous = []
    for number, ((height, row), speed) in enumerate((f, s) for s in SPEEDS for f in FIGURES):
        base = held[(number + number // len(FIGURES)) % len(held)]
        kind = f"h{height}_v{speed}"
        folder = cache / f"{base.id}_{kind}"
        labels_path = folder / "labels.npy"
        if not labels_path.is_file():
            frames = np.stack([f for _, f in zip(range(FRAMES), base.frames())])
            video, labels = insert_moving_object(frames, height, speed * height, row, FIRST,
                                                 leftward=number % 2 == 1, seed=number)
            write_frames(folder, video)
            np.save(labels_path, labels)
        clip = open_clip(folder, f"{base.id}_{kind}")
        clip.labels = np.load(labels_path)
        anomalous.append((clip, kind))
    return [*clips[:12], calibration], held, anomalous


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("ODDITY_DATA", "../shared/data")) / "video" / "ucsd_ped2"
    parser.add_argument("--data", default=str(default_data))
    parser.add_argument("--detector", default="motion_patch")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--cache", default="/tmp/oddity_video_validation_v2",
                        help="folder for the generated validation clips")
    args = parser.parse_args()
    params = parse_settings(args.set)
    fit_clips, normal, anomalous = validation_set(Path(args.data), Path(args.cache))
    detector = oddity.create(args.detector, calibration_fraction=0.05, **params)
    start = time.process_time()
    detector.fit(fit_clips, verbose=False)
    fit_cpu = time.process_time() - start
    start = time.process_time()
    normal_results = detector.score(normal, verbose=False)
    normal_scores = np.concatenate([r.scores for r in normal_results])
    clips = [clip for clip, _ in anomalous]
    results = detector.score(clips, verbose=False)
    frames = len(normal_scores) + sum(len(r.scores) for r in results)
    score_cpu = time.process_time() - start
    labels = np.concatenate([np.zeros(len(normal_scores), bool), *[c.labels for c in clips]])
    scores = np.concatenate([normal_scores, *[r.scores for r in results]])
    negatives = np.concatenate([normal_scores, *[r.scores[~c.labels] for c, r in zip(clips, results)]])
    per_kind = {}
    for (clip, kind), result in zip(anomalous, results):
        positives = result.scores[clip.labels]
        per_kind[kind] = round(float(roc_auc_score(
            np.r_[np.zeros(len(negatives)), np.ones(len(positives))], np.r_[negatives, positives])), 3)
    every = [*normal_results, *results]
    raws = [r.raw_scores for r in every]
    smoothing = {w: round(float(roc_auc_score(labels, np.concatenate([smooth_scores(r, w) for r in raws]))), 3)
                 for w in WINDOWS}
    top_k = {}
    for k in TOP_K if all(r.maps is not None for r in every) else ():
        frame_scores = [np.sort(r.maps.reshape(len(r.maps), -1), axis=1)[:, -k:].mean(axis=1) for r in every]
        top_k[k] = round(float(roc_auc_score(labels, np.concatenate(
            [smooth_scores(f, detector.smoothing_window) for f in frame_scores]))), 3)
    row = {"detector": args.detector, "settings": params,
           "micro_auroc": round(float(roc_auc_score(labels, scores)), 3), "per_kind": per_kind,
           "smoothing_windows": smoothing, "top_k_mean": top_k,
           "fit_cpu_s": round(fit_cpu, 1), "score_cpu_ms_per_frame": round(1000 * score_cpu / frames, 1),
           "command": "python benchmarks/video_validation.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])}
    print(json.dumps(row), flush=True)
    path = RESULTS / "video_validation.json"
    rows = json.loads(path.read_text())["rows"] if path.is_file() else []
    rows = [r for r in rows if (r["detector"], r["settings"]) != (args.detector, params)] + [row]
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps({"rows": rows}, indent=2) + "\n"))
    kinds = list(per_kind)
    lines = ["# Video validation (Ped2 training clips 14-16 with synthetic figures)", "",
             ("Not test figures: see benchmarks/video_validation.py for the protocol. Columns "
              "h = figure height in pixels, v = speed in heights per frame."), "",
             "| detector | settings | micro AUROC | " + " | ".join(kinds)
             + " | smoothing window " + " / ".join(map(str, WINDOWS)) + " | top-k mean " + " / ".join(map(str, TOP_K))
             + " | fit CPU s | score CPU ms/frame |",
             "|---|---|---|" + "---|" * len(kinds) + "---|---|---|---|"]
    for r in rows:
        settings = ", ".join(f"{k}={v}" for k, v in r["settings"].items()) or "defaults"
        lines.append(f"| {r['detector']} | {settings} | {r['micro_auroc']:.3f} | "
                     + " | ".join(f"{r['per_kind'].get(k, float('nan')):.3f}" for k in kinds)
                     + " | " + " / ".join(f"{v:.3f}" for v in r.get("smoothing_windows", {}).values())
                     + " | " + " / ".join(f"{v:.3f}" for v in r.get("top_k_mean", {}).values())
                     + f" | {r['fit_cpu_s']} | {r['score_cpu_ms_per_frame']} |")
    lines += ["", "Commands:", ""] + [f"- `{r['command']}`" for r in rows]
    atomic_write(RESULTS / "video_validation.md",
                 lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
