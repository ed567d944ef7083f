"""How far a trained toy decoder in training mode is from the same decoder in evaluation mode.

    .venv/bin/python benchmarks/toy_batchnorm_jitter.py --run runs/DIR [--batches 100]

The decoder has batch norm: in training mode each layer uses its batch's statistics, so what it
computes depends on which prior batch it is given; in evaluation mode (how samples are drawn and
metrics computed) it uses running averages. The encoder is trained against the training-mode
decoder. This prints, for prior batches of the run's batch size drawn i.i.d. (`random`) and as
stratified Sobol points (`sobol`, ali/data/prior.py), the high-quality fraction of the
training-mode samples, how far their modes sit from the true means (`mode_offset`,
ali/evaluation/toy_metrics.py) and their distance to the evaluation-mode decoder's output for the
same codes, beside the evaluation-mode figures and the ratio of the two kinds of batch.
Used in docs/RESULTS.md (toy recipe, items 5 and 6).
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch

from ali.data import load_dataset
from ali.data.prior import SobolNormal
from ali.evaluation.image_eval import EVAL_SEED
from ali.evaluation.toy_metrics import high_quality_fraction, mode_offset
from ali.rundir import load_trained


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a finished toy run directory")
    parser.add_argument("--batches", type=int, default=100)
    args = parser.parse_args()

    config, model, _ = load_trained(args.run)
    mixture = load_dataset(config.dataset, config.data_dir).mixture
    if mixture is None:
        raise SystemExit(f"{args.run} is not a toy run (config {config.dataset}); pass a toy25 or ring8 run")
    eval_decoder = model.decoder.eval()
    train_decoder = copy.deepcopy(model.decoder).train()  # a copy: its running averages may move
    n, dim = config.batch_size, model.arch.latent_dim
    generator = torch.Generator().manual_seed(EVAL_SEED)  # evaluation noise, as ali.evaluation draws it
    sobol = SobolNormal(dim, seed=EVAL_SEED)
    draws = {"random": lambda step: torch.randn(n, dim, generator=generator), "sobol": lambda step: sobol(n, step)}

    report = {}
    for kind, draw in draws.items():
        z = torch.cat([draw(step) for step in range(args.batches)])
        x_train = torch.cat([train_decoder(chunk) for chunk in z.split(n)])  # one batch at a time
        x_eval = eval_decoder(z)
        report[kind] = {
            "high_quality_train_mode": high_quality_fraction(x_train, mixture),
            "high_quality_eval_mode": high_quality_fraction(x_eval, mixture),
            "mode_offset_train_mode": mode_offset(x_train, mixture),
            "mode_offset_eval_mode": mode_offset(x_eval, mixture),
            "rms_train_vs_eval": float((x_train - x_eval).pow(2).sum(1).mean().sqrt()),
        }
        print(
            f"{kind:7s} batches: high quality {report[kind]['high_quality_train_mode']:.3f} in training mode, "
            f"{report[kind]['high_quality_eval_mode']:.3f} in evaluation mode; mode offset "
            f"{report[kind]['mode_offset_train_mode']:.4f} / {report[kind]['mode_offset_eval_mode']:.4f}; "
            f"RMS distance between the two {report[kind]['rms_train_vs_eval']:.4f}"
        )
    ratio = report["sobol"]["rms_train_vs_eval"] / report["random"]["rms_train_vs_eval"]
    print(f"RMS distance, sobol / random batches: {ratio:.2f}")
    print(
        json.dumps(
            {
                "run": str(args.run),
                "batch_size": n,
                "batches": args.batches,
                **report,
                "rms_ratio_sobol_to_random": round(ratio, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
