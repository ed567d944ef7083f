"""Per-layer time of every convolution of an architecture in NCHW against channels_last.

    .venv/bin/python benchmarks/conv_layout.py --arch cifar10 [--batch 100] [--precision auto] [--json]

Each real convolution of the model (DenseConv2d / DenseConvTranspose2d layers that run as GEMMs
are left out: their layout does not matter) is timed alone, forward and backward with respect to
its input and weight, at the input shape it sees in a training step (found by one forward with
hooks), in both memory layouts, in interleaved rounds; each figure is the median round. The
table says which layout wins each layer and what the whole set of convolutions costs per step
in each layout, so the layout choice (training.hardware.prepare_model: channels_last for conv
nets) can be checked per machine class and precision. With --json the last line is one JSON
object: the machine line, the totals and one row per layer.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from ali.config import make_config  # noqa: E402
from ali.nets.architectures import ARCHITECTURES  # noqa: E402
from ali.nets.layers import DenseConv2d, DenseConvTranspose2d  # noqa: E402
from ali.training.build import build_model  # noqa: E402
from ali.training.hardware import machine_line, resolve_precision  # noqa: E402
from benchmarks.throughput import interleaved_seconds, sgemm_gflops  # noqa: E402

ARCHS = tuple(name for name, spec in ARCHITECTURES.items() if len(spec.x_shape) == 3)
LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def conv_inputs(model: nn.ModuleDict, spec, batch: int) -> list[tuple[str, nn.Module, tuple[int, ...]]]:
    """(name, conv module, input shape) of every non-GEMM convolution, from one forward of each net."""
    found: list[tuple[str, nn.Module, tuple[int, ...]]] = []
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and not isinstance(module, (DenseConv2d, DenseConvTranspose2d)):
            hooks.append(
                module.register_forward_pre_hook(lambda m, args, name=name: found.append((name, m, tuple(args[0].shape))))
            )
    x = torch.rand(batch, *spec.x_shape)
    z = torch.randn(batch, spec.latent_dim)
    with torch.no_grad():
        model["encoder"](x)
        model["decoder"](z)
        model["discriminator"](x, z)
    for hook in hooks:
        hook.remove()
    return found


def layer_seconds(module: nn.Module, shape: tuple[int, ...], dtype: torch.dtype, repeats: int, rounds: int) -> dict[str, float]:
    """Median seconds of forward + backward (input and weight gradients) of one conv in each
    layout, the layouts timed in alternating rounds so that outside load hits both alike."""
    steps = {}
    for layout, fmt in LAYOUTS.items():
        conv = type(module)(
            module.in_channels, module.out_channels, module.kernel_size, module.stride, bias=module.bias is not None
        ).to(memory_format=fmt)
        x = torch.randn(shape).contiguous(memory_format=fmt).requires_grad_(True)

        def once(conv: nn.Module = conv, x: torch.Tensor = x) -> None:
            with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
                out = conv(x)
            out.float().sum().backward()

        once()  # oneDNN picks and caches its kernel for this shape and layout
        steps[layout] = once
    return interleaved_seconds(steps, repeats, rounds)


def run(arch: str, batch: int, asked: str, repeats: int, rounds: int, threads: int) -> dict[str, object]:
    if threads:
        torch.set_num_threads(threads)
    spec = ARCHITECTURES[arch]
    precision = resolve_precision(asked, torch.device("cpu"))
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    model, _ = build_model(make_config({"arch": arch, "latent_dim": spec.latent_dim, "batch_size": batch, "device": "cpu"}))
    rows = []
    for name, module, shape in conv_inputs(model, spec, batch):
        ms = {layout: 1e3 * t for layout, t in layer_seconds(module, shape, dtype, repeats, rounds).items()}
        rows.append(
            {
                "layer": name,
                "kind": type(module).__name__,
                "input": "x".join(map(str, shape[1:])),
                "out_channels": module.out_channels,
                "k_s": f"{module.kernel_size[0]}/{module.stride[0]}",
                **{f"{layout}_ms": round(v, 3) for layout, v in ms.items()},
                "faster": min(ms, key=ms.get),
                "nchw_over_channels_last": round(ms["nchw"] / ms["channels_last"], 3),
            }
        )
    totals = {f"total_{layout}_ms": round(sum(r[f"{layout}_ms"] for r in rows), 2) for layout in LAYOUTS}
    best = round(sum(min(r["nchw_ms"], r["channels_last_ms"]) for r in rows), 2)
    return {
        "arch": arch,
        "batch": batch,
        **machine_line(),
        "precision_asked": asked,
        "precision": precision,
        "sgemm_gflops": round(sgemm_gflops(), 2),
        **totals,
        "total_best_per_layer_ms": best,
        "layers": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=ARCHS, required=True)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    parser.add_argument("--repeats", type=int, default=3, help="calls per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.repeats < 1 or args.rounds < 1:
        parser.error("--batch, --repeats and --rounds must be >= 1")
    result = run(args.arch, args.batch, args.precision, args.repeats, args.rounds, args.threads)
    for key, value in result.items():
        if key != "layers":
            print(f"{key:>24}: {value}")
    print(f"{'layer':<28} {'kind':<16} {'input':<12} {'k/s':<5} {'NCHW ms':>9} {'NHWC ms':>9}  faster")
    for r in result["layers"]:
        print(
            f"{r['layer']:<28} {r['kind']:<16} {r['input']:<12} {r['k_s']:<5} {r['nchw_ms']:>9.2f} {r['channels_last_ms']:>9.2f}  {r['faster']}"
        )
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
