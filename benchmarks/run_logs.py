"""Logs benchmark: template parsing on the 16 Loghub-2k sets, parse speed and memory on a
generated session log, detectors on HDFS sessions (the given split), on BGL_2k and
Thunderbird_2k windows, on BGL_2k and Thunderbird_2k lines as categorical events, and CAR
ranking the alerts of detectors on those lines (chronological splits). Writes
benchmarks/results/logs.{md,json}.

Usage: python benchmarks/run_logs.py [--data DIR] [--sections parsing sweep speed hdfs bgl thunderbird events ranking]
       [--detectors NAME ...] [--speed-sessions N]
Data: $ODDITY_DATA/logs (default ../shared/data/logs).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
PUBLISHED_GA = {"Drain (logparser benchmark)": 0.866, "Brain": 0.983,
                "drain3 0.9.11 library defaults, measured here": 0.732}
HDFS_DETECTORS = {"pca_logs": {}, "invariants": {}, "deeplog": {}, "loganomaly": {}, "logrobust": {}}
BGL_DETECTORS = {"pca_logs": {}, "invariants": {}, "deeplog": {"end_event": False},
                 "loganomaly": {"end_event": False}, "glad": {"end_event": False}}
THUNDERBIRD_DETECTORS = {"glad": {"end_event": False}}
BGL_WINDOW = {"size": 20, "step": 5}
EVENT_SETS = ["BGL", "Thunderbird"]
ABLATIONS = {"Drain + masks (before)": {"value_mismatch": 0.0, "merge": False},
             "+ value/word cost only": {"merge": False}, "+ merge of variants only": {"value_mismatch": 0.0}}
SWEEP = {"sim_th": [0.6, 0.7, 0.75, 0.8, 0.85], "depth": [4, 5, 6],
         "extra_delimiters": [(), ("=",), ("=", ",")], "value_mismatch": [0.0, 1.0], "merge": [False, True]}


def section_parsing(data: Path) -> dict:
    """The defaults on the 16 sets, beside Drain with the same masks but neither of the two
    rules of `TemplateParser` (value_mismatch 0, no merge of variants) and each rule alone."""
    from oddity.bench.logs import loghub_parsing

    from oddity.logs.parser import TemplateParser

    rows = loghub_parsing(data / "loghub")
    ablations = {}
    for label, changed in ABLATIONS.items():
        accuracy = {r["dataset"]: r["grouping_accuracy"] for r in loghub_parsing(data / "loghub", changed)}
        ablations[label] = {"settings": changed, "accuracy": accuracy,
                            "mean": float(np.mean(list(accuracy.values())))}
    settings = {k: v for k, v in TemplateParser().settings().items() if k != "masks"}
    return {"rows": rows, "mean": float(np.mean([r["grouping_accuracy"] for r in rows])),
            "settings": ", ".join(f"{k} {v}" for k, v in settings.items()), "ablations": ablations}


def section_sweep(data: Path) -> dict:
    """Grouping accuracy of every setting of SWEEP on the 16 sets: the best single setting (the
    defaults were chosen so) and, reported apart, the best setting of each set (tuned)."""
    from itertools import product

    from oddity.bench.logs import loghub_parsing

    settings = []
    for values in product(*SWEEP.values()):
        chosen = dict(zip(SWEEP, values))
        chosen["extra_delimiters"] = list(chosen["extra_delimiters"])
        rows = loghub_parsing(data / "loghub", chosen)
        accuracy = {r["dataset"]: r["grouping_accuracy"] for r in rows}
        settings.append({"settings": chosen, "mean": float(np.mean(list(accuracy.values()))),
                         "accuracy": accuracy})
    tuned = {name: max(settings, key=lambda s: s["accuracy"][name]) for name in settings[0]["accuracy"]}
    return {"grid": {k: [list(v) if isinstance(v, tuple) else v for v in vs] for k, vs in SWEEP.items()},
            "best": sorted(settings, key=lambda s: -s["mean"])[:5],
            "tuned": {name: {"accuracy": s["accuracy"][name], "settings": s["settings"]} for name, s in tuned.items()},
            "tuned_mean": float(np.mean([s["accuracy"][name] for name, s in tuned.items()]))}


def section_speed(sessions: int, previous: dict | None) -> dict:
    """Parse speed and peak RSS in a fresh process, on a generated HDFS-like log of `sessions`
    sessions (written to a temporary file, streamed, never held in memory); the runs of other
    sizes are kept from `previous`, so that one table shows memory against file size."""
    from oddity.logs.synth import FORMAT, write_session_log

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "blocks.log"
        write_session_log(path, sessions, seed=0)
        code = ("import json,sys; from pathlib import Path; from oddity.bench.log_speed import parse_throughput; "
                f"print(json.dumps(parse_throughput(Path({str(path)!r}), {FORMAT!r})))")
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
        row = {"sessions": sessions, **json.loads(out.stdout.strip().splitlines()[-1])}
    runs = {k: v for k, v in (previous or {}).items() if isinstance(v, dict) and "sessions" in v}
    return {**runs, str(sessions): row}


def _chosen(detectors: dict, only: list[str] | None) -> dict:
    return {k: v for k, v in detectors.items() if only is None or k in only}


def _merged(new: dict, old: dict | None, order: list[str]) -> dict:
    """`new` with the rows of detectors it did not run taken from `old` (same split order)."""
    if old is None:
        return new
    ran = {r["detector"] for r in new["rows"]}
    rows = [r for r in old["rows"] if r["detector"] not in ran] + new["rows"]
    return {**new, "rows": sorted(rows, key=lambda r: order.index(r["detector"]) if r["detector"] in order
                                  else len(order))}


def section_hdfs(data: Path, only: list[str] | None = None) -> dict:
    from oddity.bench.logs import detector_row
    from oddity.logs.data import read_event_sessions
    from oddity.logs.evaluate import duplicate_counts

    sequences, splits = read_event_sessions(data / "hdfs_sessions" / "hdfs_100k_sessions.csv")
    splits = np.array(splits)
    train = sequences.subset(np.flatnonzero(splits == "train"))
    test = sequences.subset(np.flatnonzero(splits == "test"))
    rows = []
    for name, params in _chosen(HDFS_DETECTORS, only).items():
        print(f"HDFS / {name} ...", flush=True)
        rows.append(detector_row(name, params, train, test, "given (random 80/20, deep-loglizer)"))
    return {"rows": rows, "duplicates": duplicate_counts(train, test),
            "train": len(train), "train_anomalous": int(train.labels.sum()),
            "test": len(test), "test_anomalous": int(test.labels.sum())}


def section_windows(data: Path, dataset: str, detectors: dict, only: list[str] | None = None) -> dict:
    """Detectors on the sliding windows (BGL_WINDOW) of a Loghub-2k set with line labels (the
    alert tag), chronological 60/40 split, a random split beside it. A set whose test windows
    are all normal gets only the share of them flagged (its false-positive rate)."""
    from oddity.bench.logs import LOGHUB_FORMATS, detector_row
    from oddity.logs.evaluate import duplicate_counts
    from oddity.logs.grouping import Grouping
    from oddity.logs.parser import TemplateParser
    from oddity.logs.parsing import LogSource, mine, sequences_of

    path = data / "loghub" / dataset / f"{dataset}_2k.log"
    source, parser = LogSource(format=LOGHUB_FORMATS[dataset], label_field="Label"), TemplateParser()
    mine(path, source, parser)
    grouping = Grouping("count", size=BGL_WINDOW["size"], step=BGL_WINDOW["step"])
    sequences, _ = sequences_of(path, source, parser, grouping, contents=True)
    cut = int(0.6 * len(sequences))
    # windows overlapping the cut share lines with both sides: drop the test windows that do
    first_test = cut + (BGL_WINDOW["size"] // BGL_WINDOW["step"])
    train, test = sequences.subset(range(cut)), sequences.subset(range(first_test, len(sequences)))
    # beside it, clearly labelled: a random split of the same windows (overlapping windows
    # then share lines across the split, which flatters every method)
    order = np.random.default_rng(0).permutation(len(sequences))
    random_train, random_test = sequences.subset(np.sort(order[:cut])), sequences.subset(np.sort(order[cut:]))
    rows = []
    for name, params in _chosen(detectors, only).items():
        print(f"{dataset}_2k / {name} ...", flush=True)
        rows.append(detector_row(name, params, train, test, "chronological 60/40 (windows)"))
        rows.append(detector_row(name, params, random_train, random_test,
                                 "RANDOM 60/40, seed 0 (windows share lines across it)"))
    return {"rows": rows, "duplicates": duplicate_counts(train, test), "window": BGL_WINDOW,
            "train": len(train), "train_anomalous": int(train.labels.sum()),
            "test": len(test), "test_anomalous": int(test.labels.sum())}


def section_events(data: Path) -> dict:
    from oddity.bench.logs import event_row, loghub_event_table

    rows, sets = [], {}
    for name in EVENT_SETS:
        events, labels, _ = loghub_event_table(data / "loghub" / name / f"{name}_2k.log", name)
        cut = int(0.6 * len(events))
        print(f"{name}_2k events / ape ...", flush=True)
        row = event_row({}, events, labels, cut)
        row.pop("test_scores")
        rows.append({**row, "split": f"{name}_2k, {row['split']}"})
        sets[name] = {"columns": list(events.columns), "train": cut, "train_anomalous": int(labels[:cut].sum()),
                      "test": len(events) - cut, "test_anomalous": int(labels[cut:].sum())}
    return {"rows": rows, "sets": sets}


# ---- alert ranking (CAR) -------------------------------------------------------------------

RANKING_WINDOW_DETECTORS = ["pca_logs", "invariants"]
ALERT_BUDGETS = [0.25, 1.0]  # a detector's alerts: its highest-scored quarter of the test lines; all of them


def section_ranking(data: Path) -> dict:
    """CAR on the alerts of APE (lines) and of window detectors (a line scores as its worst
    test window), BGL_2k and Thunderbird_2k, chronological 60/40: precision of the top-k."""
    from oddity.bench.logs import car_validation, event_row, loghub_event_table, ranking_row, window_line_scores

    out = {"budgets": ALERT_BUDGETS, "sets": {}}
    for name in EVENT_SETS:
        path = data / "loghub" / name / f"{name}_2k.log"
        events, labels, where = loghub_event_table(path, name)
        cut = int(0.6 * len(events))
        if name == "BGL":
            print("CAR validation (BGL_2k training part, generated alerts) ...", flush=True)
            out["validation"] = car_validation(events.iloc[:cut], labels[:cut], where["seconds"].to_numpy()[:cut])
        if not labels[cut:].any():
            out["sets"][name] = {"test": len(events) - cut, "test_true": 0, "rows": []}
            continue
        scores = {"ape": event_row({}, events, labels, cut)["test_scores"]}
        test_lines = where["line"].to_numpy()[cut:]
        for detector in RANKING_WINDOW_DETECTORS:
            print(f"{name}_2k ranking / {detector} ...", flush=True)
            by_line = window_line_scores(detector, path, name, int(where["line"].iloc[cut - 1]))
            scores[detector] = np.array([by_line.get(int(line), np.nan) for line in test_lines])
        test = events.iloc[cut:].assign(seconds=where["seconds"].to_numpy()[cut:])
        rows = []
        for detector, score in scores.items():
            for share in ALERT_BUDGETS:
                scored = np.flatnonzero(np.isfinite(score))
                budget = int(round(share * len(scored)))
                chosen = np.sort(scored[np.argsort(-score[scored], kind="stable")[:budget]])
                alerts = test.iloc[chosen].assign(score=score[chosen]).reset_index(drop=True)
                print(f"{name}_2k ranking / CAR on {detector} alerts ({share:.0%}) ...", flush=True)
                rows.append({**ranking_row(detector, alerts, labels[cut:][chosen]), "budget": share})
        out["sets"][name] = {"test": len(events) - cut, "test_true": int(labels[cut:].sum()), "rows": rows}
    return out


def ranking_markdown(r: dict) -> list[str]:
    lines = ["## Alert ranking (CAR) on BGL_2k and Thunderbird_2k lines", "",
             "Chronological 60/40 split of the lines; each detector is fitted on the first part (its "
             "normal lines or windows) and its alerts are its highest-scored test lines, a quarter of them "
             "or all (a window detector scores a line as the worst test window holding it; lines before the "
             "first test window are left out), in time order, with "
             "their node, component, level, template, hour and time stamp. Precision of the top k alerts "
             "against the alert tags, in five orders: random (its expectation, the share of true alerts), "
             "the detector's own score, CAR with that score as prior, CAR on the alerts alone, and as an "
             "ablation CAR with the score but without its content part.", ""]
    if "validation" in r:
        v = r["validation"]
        lines += ["CAR's content weight was chosen before the test part was looked at: on the BGL_2k training "
                  f"lines (every line an alert, no detector score; {v['true_share']:.1%} alert tags) and on "
                  "generated alert streams (`oddity.logs.synth_alerts`, mean precision@20 over 3 seeds, detector "
                  "score signal 0 and 1.5, confusion 0.3 and 0.6):", "",
                  "| content_weight | BGL train P@10 | P@20 | P@50 | P@100 | generated P@20 |", "|---|---|---|---|---|---|"]
        lines += [f"| {w} | " + " | ".join(f"{p:.2f}" for p in v["lines"][w].values()) + f" | {v['synthetic'][w]:.2f} |"
                  for w in v["lines"]]
        lines.append("")
    for name, s in r["sets"].items():
        if not s["rows"]:
            lines += [f"**{name}_2k**: the {s['test']} test lines hold no alert tag, so no precision can "
                      "be measured.", ""]
            continue
        lines += [f"**{name}_2k** ({s['test']} test lines, {s['test_true']} alerts):", "",
                  "| detector | alerts (true) | order | P@10 | P@20 | P@50 |", "|---|---|---|---|---|---|"]
        for row in s["rows"]:
            for order, p in row["orders"].items():
                lines.append(f"| {row['detector']} | {row['alerts']} ({row['true']}) | {order} | "
                             + " | ".join(f"{p[k]:.2f}" for k in sorted(p, key=int)) + " |")
        lines.append("")
        for row in s["rows"]:
            best = "; ".join(" -> ".join(f"`{step[:40]}`" for step in p["pattern"].split(" -> "))
                             + f" ({p['support']}x)" for p in row["patterns"][:2])
            lines.append(f"- CAR's first patterns among the {row['alerts']} {row['detector']} alerts: {best}; "
                         f"ranking took {row['rank_s']:.1f} s.")
        lines.append("")
    return lines


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def write_markdown(results: dict, path: Path) -> None:
    lines = ["# Logs benchmark", "", f"Command: `{results['command']}`  ",
             f"Machine: {results['machine']}. Timings are as measured, not limits.", ""]
    if "parsing" in results:
        p = results["parsing"]
        lines += ["## Template parsing: grouping accuracy on Loghub-2k", "",
                  f"One configuration for every data set: `TemplateParser()` defaults (Drain, {p['settings']}, "
                  "the general masks of `oddity.logs.masking`), the logparser format string "
                  "of each set. Lines/s: the whole parse (read, split fields, mask, mine).", "",
                  "Beside it, the same parser without its two rules (Drain with the masks: the "
                  "configuration before them) and with each rule alone.", "",
                  "| data set | lines | templates (true) | grouping accuracy | " +
                  " | ".join(p["ablations"]) + " | lines/s |", "|---|---|---|---|" + "---|" * len(p["ablations"]) + "---|"]
        for r in p["rows"]:
            others = " | ".join(f"{a['accuracy'][r['dataset']]:.3f}" for a in p["ablations"].values())
            lines.append(f"| {r['dataset']} | {r['lines']} | {r['templates']} ({r['true_templates']}) | "
                         f"{r['grouping_accuracy']:.3f} | {others} | {r['lines_per_s']:,.0f} |")
        means = " | ".join(f"{a['mean']:.3f}" for a in p["ablations"].values())
        lines += [f"| **mean** | | | **{p['mean']:.3f}** | {means} | |", "", "Published / reference means: " +
                  ", ".join(f"{k} {v:.3f}" for k, v in PUBLISHED_GA.items()) + ".", ""]
    if "sweep" in results:
        w = results["sweep"]
        lines += ["## Template parsing: settings swept on all 16 sets", "",
                  "Grid: " + "; ".join(f"{k} {v}" for k, v in w["grid"].items()) + ". Best single settings "
                  "(mean grouping accuracy over the 16 sets):", ""]
        lines += [f"- {b['settings']}: {b['mean']:.3f}" for b in w["best"]]
        lines += ["", "Tuned per data set (the best setting of each set, chosen on its own labels; "
                  f"NOT one configuration): mean **{w['tuned_mean']:.3f}**.", "",
                  "| data set | tuned grouping accuracy | setting |", "|---|---|---|"]
        lines += [f"| {name} | {t['accuracy']:.3f} | {t['settings']} |" for name, t in w["tuned"].items()]
        lines.append("")
    if "speed" in results:
        runs = sorted(results["speed"].values(), key=lambda r: r["bytes"])
        lines += ["## Parse speed and memory (generated HDFS-like log, fresh process)", "",
                  "The whole parse on one core: mining (read, split fields, mask, mine) and matching "
                  "against the mined templates as a freshly loaded model does (predict), streamed. "
                  "Lines per second of wall-clock time and, beside them, per second of the process's own CPU "
                  "time (which other processes disturb far less than wall-clock time). "
                  "Resident memory after imports and its peak over both passes (VmHWM).", "",
                  "| sessions | lines | MB | mining s | mining lines/s | matching lines/s | mining lines/CPU s "
                  "| matching lines/CPU s | RSS after imports MB | peak RSS MB |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['sessions']:,} | {r['lines']:,} | {r['bytes'] / 1e6:,.0f} | {r['seconds']:.1f} | "
                  f"{r['lines_per_s']:,.0f} | {r['match_lines_per_s']:,.0f} | "
                  f"**{r.get('cpu_lines_per_s', float('nan')):,.0f}** | "
                  f"**{r.get('match_cpu_lines_per_s', float('nan')):,.0f}** | {r['rss_before_mb']:.0f} | "
                  f"{r['peak_rss_mb']:.0f} |" for r in runs]
        lines.append("")
    for key, title in (("hdfs", "HDFS sessions (hdfs_100k_sessions.csv)"), ("bgl", "BGL_2k windows"),
                       ("thunderbird", "Thunderbird_2k windows"),
                       ("events", "BGL_2k and Thunderbird_2k lines as categorical events")):
        if key not in results:
            continue
        h = results[key]
        if key == "events":
            lines += [f"## {title}", "", "Alert tag as label; train: the first 60% of the lines (APE learns from "
                      "its normal lines); metrics a test part without alerts leaves undefined read n/a.", ""]
            lines += [f"- {name}_2k: entity columns {', '.join(e['columns'])}; train {e['train']} "
                      f"({e['train_anomalous']} alerts), test {e['test']} ({e['test_anomalous']} alerts)."
                      for name, e in h["sets"].items()]
            lines.append("")
        else:
            d = h["duplicates"]
            lines += [f"## {title}", "",
                      f"Train {h['train']} sequences ({h['train_anomalous']} anomalous), test {h['test']} "
                      f"({h['test_anomalous']} anomalous). Duplicates: {d['test_seen_in_train']} of {d['test']} "
                      f"test sequences repeat a training sequence exactly; {d['test_distinct']} distinct; "
                      f"{d['anomalous_test_identical_to_normal']} anomalous test sequences are identical to a "
                      "normal one. " + (f"Best F1 any method that sees only the events could reach on this test "
                                        f"split: **{d['oracle_f1']:.3f}**." if h["test_anomalous"] else
                                        "No line of this sample carries an alert tag: only the share of (normal) "
                                        "test windows flagged, their false-positive rate, is measured."), ""]
        lines += [
                  "| detector | split | precision | recall | F1 | FPR | AUROC | AUPR | best F1 (hindsight) | "
                  "threshold rule | fit s | score s |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in h["rows"]:
            params = f" {r['params']}" if r["params"] else ""
            lines.append(f"| {r['detector']}{params} | {r['split']} | {_f(r['precision'])} | {_f(r['recall'])} | "
                         f"{_f(r['f1'])} | {_f(r['fpr'])} | {_f(r['auroc'])} | {_f(r['aupr'])} | "
                         f"{_f(r['best_f1_hindsight'])} | {r['threshold_rule']} | {r['fit_s']:.1f} | "
                         f"{r['score_s']:.1f} |")
            for k, pairs in enumerate(r.get("explained", [])):
                least = "; ".join(f"{a}={va!r} with {b}={vb!r} ({c:.2f})" for a, va, b, vb, c in pairs)
                lines.append(f"{'' if k else chr(10)}Alert {k + 1}, least compatible pairs: {least}  ")
        lines.append("")
    if "ranking" in results:
        lines += ranking_markdown(results["ranking"])
    text = "\n".join(lines)
    path.write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("ODDITY_DATA", "../shared/data")) / "logs"
    parser.add_argument("--data", default=str(default), help="logs folder (loghub/, hdfs_sessions/)")
    parser.add_argument("--sections", nargs="+",
                        default=["parsing", "speed", "hdfs", "bgl", "thunderbird", "events", "ranking"],
                        choices=["parsing", "sweep", "speed", "hdfs", "bgl", "thunderbird", "events", "ranking"])
    parser.add_argument("--detectors", nargs="+", default=None,
                        help="run only these detectors in the hdfs and window sections; the rows of the "
                             "others are kept from the previous results")
    parser.add_argument("--speed-sessions", type=int, default=20000,
                        help="sessions in the generated log for the speed section (~13 lines, "
                             "1.8 kB each: 20000 is 35 MB, 570000 about 1 GB)")
    args = parser.parse_args()
    data = Path(args.data)
    if not (data / "loghub").is_dir():
        print(f"no logs data at {data}; set ODDITY_DATA", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(1)
    results_path = RESULTS / "logs.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results.pop("load", None)  # a field of older files
    results.update({"command": "python benchmarks/run_logs.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
                    "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch 1 thread",
                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
    sections = {"parsing": lambda: section_parsing(data), "sweep": lambda: section_sweep(data), "speed": lambda: section_speed(args.speed_sessions, results.get("speed")),
                "hdfs": lambda: _merged(section_hdfs(data, args.detectors), results.get("hdfs") if args.detectors
                                        else None, list(HDFS_DETECTORS)),
                "bgl": lambda: _merged(section_windows(data, "BGL", BGL_DETECTORS, args.detectors),
                                       results.get("bgl") if args.detectors else None, list(BGL_DETECTORS)),
                "thunderbird": lambda: _merged(section_windows(data, "Thunderbird", THUNDERBIRD_DETECTORS,
                                                               args.detectors),
                                               results.get("thunderbird") if args.detectors else None,
                                               list(THUNDERBIRD_DETECTORS)),
                "events": lambda: section_events(data), "ranking": lambda: section_ranking(data)}
    for name in args.sections:
        print(f"{name} ...", flush=True)
        results[name] = sections[name]()
        RESULTS.mkdir(exist_ok=True)
        results_path.write_text(json.dumps(results, indent=2, default=float) + "\n", encoding="utf-8")
        write_markdown(results, RESULTS / "logs.md")
    print(f"written to {RESULTS / 'logs.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
