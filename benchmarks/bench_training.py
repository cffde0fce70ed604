"""Training throughput (images/s): the optimisation step alone, and end to end with each batch pipeline.

    python benchmarks/bench_training.py                                    # CPU: MGN-MobileNetV2 128x64, batch 32
    python benchmarks/bench_training.py --device cuda --model mgn --backbone resnet50 --height 384 --width 128 \\
        --ids-per-batch 16 --images-per-id 4 --amp auto                    # the paper's MGN setting on a GPU
    python benchmarks/bench_training.py --device cuda --backbone mobilenetv2 --height 256 --width 128 --compile

Three rows, each timed over ``--steps`` steps after ``--warmup`` untimed ones (cuDNN autotuning, compilation):

- ``step``: ``TrainStep`` (autocast forward, loss, backward, optimiser) on one batch already on the device - the
  ceiling that any data pipeline can only approach;
- ``cached``: the training set decoded once into a uint8 tensor on the device, P x K batches augmented there
  (``data.cache_in_memory: true``);
- ``dataloader``: JPEG decoding and torchvision transforms in ``--workers`` DataLoader processes.

Both end-to-end rows use the shared CUHK03 benchmark (real 64x128 crops, resized to the input size) and exactly
the trainer's code (``build_batch_source`` + ``TrainStep``). Results go to benchmarks/out/training.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

from reidkit.config import ExperimentConfig, apply_overrides
from reidkit.data import PKSampler, load_dataset, prepare_shared_cuhk03, relabel
from reidkit.losses import LossWeights, ReidLoss
from reidkit.models import build_model
from reidkit.training.batches import build_batch_source
from reidkit.training.optim import build_optimizer
from reidkit.training.runtime import resolve_amp, resolve_device
from reidkit.training.step import TrainStep

REPO_ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = REPO_ROOT / "benchmarks" / "out"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mgn")
    parser.add_argument("--backbone", default="mobilenetv2")
    parser.add_argument("--part-stride", type=int, default=None, help="MGN option part_stride (default: model's)")
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--ids-per-batch", type=int, default=8)
    parser.add_argument("--images-per-id", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default="auto", choices=["none", "fp16", "bf16", "auto"])
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for the dataloader row")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rows", default="step,cached,dataloader")
    parser.add_argument("--shared", type=Path, default=REPO_ROOT.parent / "shared")
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / "data")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "training.json")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    device = resolve_device(args.device)
    amp_dtype = resolve_amp(args.amp, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")
    overrides = [
        f"data.height={args.height}", f"data.width={args.width}", f"data.ids_per_batch={args.ids_per_batch}",
        f"data.images_per_id={args.images_per_id}", f"data.workers={args.workers}",
        "optim.name=adam", "optim.lr=3.5e-4",
    ]
    config = apply_overrides(ExperimentConfig(), overrides)
    dataset = load_dataset("market1501", prepare_shared_cuhk03(args.shared, args.data_dir))
    pid_to_label = relabel(dataset.train)
    labels = [pid_to_label[r.pid] for r in dataset.train]
    kwargs: dict[str, Any] = {} if args.part_stride is None else {"part_stride": args.part_stride}
    model = build_model(args.model, len(pid_to_label), backbone=args.backbone, kwargs=kwargs).to(device)
    channels_last = not args.no_channels_last
    if channels_last and device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    trained: torch.nn.Module = torch.compile(model) if args.compile else model  # type: ignore[assignment]
    step = TrainStep(
        trained,
        ReidLoss(LossWeights(), label_smoothing=0.1, triplet_margin=1.2),
        build_optimizer(model, config.optim, device),
        torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16),
        amp_dtype,
        device,
        channels_last,
    )
    model.train()
    batch_size = args.ids_per_batch * args.images_per_id
    results: list[dict[str, Any]] = []
    for row in args.rows.split(","):
        if row == "step":
            images = torch.randn(batch_size, 3, args.height, args.width, device=device)
            targets = torch.arange(batch_size, device=device) // args.images_per_id
            batches = iter(lambda: (images, targets), None)
        else:
            data = apply_overrides(config, [f"data.cache_in_memory={str(row == 'cached').lower()}"]).data
            sampler = PKSampler(labels, args.ids_per_batch, args.images_per_id, seed=0)
            source = build_batch_source(data, 0, dataset.train, pid_to_label, sampler, device, progress=False)
            batches = _endless(source)
        rate = _time(step, batches, args.warmup, args.steps, device)
        results.append({"row": row, "images_per_s": rate, "batch_size": batch_size})
        print(f"{row:<11} {rate:9.1f} img/s", flush=True)
    record = {
        "model": args.model, "backbone": args.backbone, "part_stride": args.part_stride,
        "input": [args.height, args.width], "batch": [args.ids_per_batch, args.images_per_id],
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "threads": torch.get_num_threads(), "amp": str(amp_dtype), "channels_last": channels_last,
        "compile": args.compile, "workers": args.workers, "steps": args.steps, "results": results,
        "torch": torch.__version__,
    }
    _print_table(record)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    print(f"wrote {args.out}")


def _endless(source: Any) -> Any:
    epoch = 0
    while True:
        yield from source(epoch)
        epoch += 1


def _time(step: TrainStep, batches: Any, warmup: int, steps: int, device: torch.device) -> float:
    """Images per second over ``steps`` steps, after ``warmup``; the clock stops only once the device is done."""
    for _ in range(warmup):
        images, targets = next(batches)
        step(images, targets)
    _sync(device)
    seen = 0
    start = time.perf_counter()
    for _ in range(steps):
        images, targets = next(batches)
        step(images, targets)
        seen += images.shape[0]
    _sync(device)
    return seen / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _print_table(record: dict[str, Any]) -> None:
    print(
        f"\n{record['model']}/{record['backbone']} {record['input'][0]}x{record['input'][1]}, batch "
        f"{record['batch'][0]}x{record['batch'][1]}, {record['device']} ({record['threads']} threads), amp "
        f"{record['amp']}, channels_last {record['channels_last']}, compile {record['compile']}"
    )
    print(f"{'pipeline':<12}{'images/s':>10}")
    for result in record["results"]:
        print(f"{result['row']:<12}{result['images_per_s']:>10.1f}")


if __name__ == "__main__":
    main()
