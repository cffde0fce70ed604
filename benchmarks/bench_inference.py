"""Inference throughput of MGN (ResNet-50 / MobileNetV2) against torchvision's plain ResNet-50, in one run.

    python benchmarks/bench_inference.py                              # CPU, all cores, fp32
    python benchmarks/bench_inference.py --device cuda --amp fp16     # GPU, autocast fp16, channels_last
    python benchmarks/bench_inference.py --backend openvino           # CPU, the same networks run by OpenVINO

Each case is built with random weights (speed does not depend on them), warmed up, then timed over whole
batches; the table shows the median batch time as images/s, plus the multiply-accumulates per image counted on the
meta device, so the compute cost of MGN's stride-1 part branches is visible independently of the hardware.
Results go to benchmarks/out/inference.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from reidkit.inference.openvino_runtime import compile_for_cpu
from reidkit.models import build_model

OUT_DIR = Path(__file__).resolve().parent / "out"


@dataclass(frozen=True)
class Case:
    label: str
    height: int
    width: int
    model: str  # "mgn" or "torchvision-resnet50"
    backbone: str = "resnet50"
    part_stride: int = 1


CASES = [
    Case("MGN ResNet-50", 384, 128, "mgn"),
    Case("MGN ResNet-50, part stride 2", 384, 128, "mgn", part_stride=2),
    Case("torchvision ResNet-50", 384, 128, "torchvision-resnet50"),
    Case("MGN MobileNetV2", 384, 128, "mgn", backbone="mobilenetv2"),
    Case("MGN MobileNetV2, part stride 2", 384, 128, "mgn", backbone="mobilenetv2", part_stride=2),
    Case("MGN MobileNetV2", 256, 128, "mgn", backbone="mobilenetv2"),
    Case("MGN MobileNetV2", 128, 64, "mgn", backbone="mobilenetv2"),
]


def make_model(case: Case) -> nn.Module:
    if case.model == "torchvision-resnet50":
        return torchvision.models.resnet50()
    return build_model("mgn", num_classes=751, backbone=case.backbone, part_stride=case.part_stride)


def gmacs_per_image(case: Case) -> float:
    """Multiply-accumulates of one forward pass, counted on the meta device (no arithmetic is done)."""
    with torch.device("meta"):
        model = make_model(case).eval()
        x = torch.empty(1, 3, case.height, case.width)
    with FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() / 2e9


def time_case(case: Case, args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = make_model(case).eval().to(device=device, memory_format=memory_format)
    x = torch.randn(args.batch, 3, case.height, case.width, device=device).to(memory_format=memory_format)
    amp_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(args.amp)
    autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
    forward = model
    if args.backend == "openvino":
        compiled, array = compile_for_cpu(model, (case.height, case.width)), x.contiguous().numpy()
        forward = lambda _: compiled(array)  # noqa: E731

    def run() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.inference_mode(), autocast:
            forward(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for _ in range(args.warmup):
        run()
    times = [run() for _ in range(args.iters)]
    median = statistics.median(times)
    return {
        **asdict(case),
        "gmacs_per_image": round(gmacs_per_image(case), 3),
        "median_batch_s": median,
        "batch_times_s": times,
        "images_per_s": args.batch / median,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--amp", choices=["none", "fp16", "bf16"], default="none")
    parser.add_argument("--backend", choices=["torch", "openvino"], default="torch", help="openvino: CPU only")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=None, help="default: 1 on CPU, 10 on GPU")
    parser.add_argument("--iters", type=int, default=None, help="default: 3 on CPU, 50 on GPU")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads (default: all cores)")
    parser.add_argument(
        "--channels-last", action=argparse.BooleanOptionalAction, default=True, help="as FeatureExtractor does"
    )
    parser.add_argument("--only", default="", help="run only the cases whose label contains this text")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "inference.json")
    args = parser.parse_args()
    on_gpu = args.device.startswith("cuda")
    args.warmup = args.warmup if args.warmup is not None else (10 if on_gpu else 1)
    args.iters = args.iters if args.iters is not None else (50 if on_gpu else 3)
    if args.backend == "openvino" and (on_gpu or args.amp != "none"):
        parser.error("--backend openvino runs in float32 on the CPU")
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True

    device_name = torch.cuda.get_device_name(args.device) if on_gpu else platform.processor() or platform.machine()
    print(f"device {args.device} ({device_name}), backend {args.backend}, amp {args.amp}, batch {args.batch}, "
          f"channels_last "
          f"{args.channels_last}, {args.threads} threads, warmup {args.warmup}, iters {args.iters}")
    print(f"{'model':<34}{'input':>9}{'GMAC/img':>10}{'ms/batch':>10}{'img/s':>9}")
    results = []
    for case in CASES:
        if args.only not in case.label:
            continue
        result = time_case(case, args)
        results.append(result)
        print(f"{case.label:<34}{f'{case.height}x{case.width}':>9}{result['gmacs_per_image']:>10.2f}"
              f"{result['median_batch_s'] * 1e3:>10.1f}{result['images_per_s']:>9.1f}", flush=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "device": args.device,
        "device_name": device_name,
        "backend": args.backend,
        "amp": args.amp,
        "batch": args.batch,
        "channels_last": args.channels_last,
        "threads": args.threads,
        "warmup": args.warmup,
        "iters": args.iters,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "results": results,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
