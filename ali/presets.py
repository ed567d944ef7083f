"""Named training configs: `ali train --config NAME`. Each is a set of overrides on TrainConfig.

A preset names its own method; `--method M` keeps the preset's data, schedule and budget and
drops only the keys that belong to the preset's method (config.for_method), so every method of
a study trains the same number of steps on the same schedule.
"""

from __future__ import annotations

from typing import Any

from ali.config import for_method
from ali.data.specs import DATASETS

# The paper's toy recipe (docs/PAPER.md §4): Adam 1e-4, batch 100, 200 epochs of 100,000 points.
_TOY_PAPER: dict[str, Any] = {"arch": "toy", "latent_dim": 2, "batch_size": 100, "steps": 200_000, "lr": 1e-4, "init_std": 0.02}

# The project's default toy recipe, "ALI + cycle": ALI plus ALICE's x-cycle trained into the
# decoder only, on a shorter two-time-scale schedule; docs/RESULTS.md says what each change buys.
_TOY_DEFAULT: dict[str, Any] = {
    **_TOY_PAPER,
    "method": "alice",
    "steps": 6_000,
    "lr": 1.5e-3,
    "d_lr_factor": 2.0,
    "decay_start": 0.4,
    "lr_final_fraction": 0.001,
    "recon_weight": 3.0,
    "recon_trains": "decoder",
    "prior_sampling": "sobol",
    "log_every": 100,
    "checkpoint_every": 1_000,
}

# Image recipes (docs/NETWORKS.md): Adam lr 1e-4, beta1 0.5, weights N(0, 0.01)
# (docs/PAPER.md §2); the paper's batch size and latent size, and its epochs expressed as steps.
_IMAGE: dict[str, Any] = {
    "lr": 1e-4,
    "beta1": 0.5,
    "init_std": 0.01,
    "log_every": 100,
    "checkpoint_every": 5_000,
    "grid_every": 5_000,
    "eval_samples": 5_000,
}
_IMAGE_PRESETS: dict[str, dict[str, Any]] = {
    # 6475 epochs of the 45,000 training images (train[0:45000]) at batch 100
    "cifar10": {
        **_IMAGE,
        "dataset": "cifar10",
        "arch": DATASETS["cifar10"].arch,
        "latent_dim": 64,
        "batch_size": 100,
        "steps": 6475 * 450,
    },
    # 100 epochs of SVHN's `extra` split (531,131 images) at batch 100
    "svhn": {
        **_IMAGE,
        "dataset": "svhn",
        "arch": DATASETS["svhn"].arch,
        "latent_dim": 256,
        "batch_size": 100,
        "steps": 100 * 5312,
    },
    # 123 epochs of CelebA's 162,770 training images at batch 100
    "celeba64": {
        **_IMAGE,
        "dataset": "celeba64",
        "arch": DATASETS["celeba64"].arch,
        "latent_dim": 256,
        "batch_size": 100,
        "steps": 123 * 1628,
    },
    # 125 epochs of ImageNet's 1,281,167 training images at batch 128
    "imagenet64": {
        **_IMAGE,
        "dataset": "imagenet64",
        "arch": DATASETS["imagenet64"].arch,
        "latent_dim": 256,
        "batch_size": 128,
        "steps": 125 * 10010,
    },
}

# CIFAR-10 on a CPU budget (docs/RESULTS.md, CIFAR-10): the paper's nets, objective and optimiser
# for 15,000 steps (about an hour on 2 idle cores with native bf16, at the measured 4.4 steps/s),
# the learning rate decayed linearly over the second half, and the generators' weight average
# for sampling and evaluation, which halves the decoder's grid against the live weights.
_IMAGE_PRESETS["cifar10-1h"] = {
    **_IMAGE_PRESETS["cifar10"],
    "steps": 15_000,
    "decay_start": 0.5,
    "lr_final_fraction": 0.05,
    "ema_decay": 0.999,
    "checkpoint_every": 2_500,
    "grid_every": 2_500,
}

# MNIST / Fashion-MNIST on the 2-core CPU (docs/RESULTS.md): the small `mnist` net, lr 2e-4
# decayed linearly over the second half, and the ALICE x-cycle term (recon_weight, Li et al.
# 2017): without it the simultaneous ALI update collapses here (D wins within 200 steps), and
# its weight trades samples against reconstructions (docs/history/TUNING.md, MNIST): 0.3 keeps the
# reconstructions' class and draws better digits than 1. The cycle term alone lets a class's
# codes drift into the prior's tails (MNIST ones, Fashion-MNIST footwear), where prior samples
# seldom land; a discriminator on the codes alone (z_adversarial_weight) pulls them back and
# brings those classes back into the samples. At weight 3 it balances the classes (MNIST class
# KL 0.020 against 0.073 at weight 1, classifier IS 8.09 against 7.60 over 3 seeds; every
# Fashion-MNIST class 6-14%) for 0.4 points of reconstruction accuracy (98.45% against 98.83%).
# Running averages blended over both decoder passes: the prior-batch ones reconstruct 70% worse
# here, with the same trained weights.
_MNIST: dict[str, Any] = {
    **_IMAGE,
    "method": "alice",
    "arch": DATASETS["mnist"].arch,  # fashion-mnist's too
    "latent_dim": 32,
    "batch_size": 64,
    "steps": 30_000,
    "lr": 2e-4,
    "decay_start": 0.5,
    "lr_final_fraction": 0.05,
    "recon_weight": 0.3,
    "z_adversarial_weight": 3.0,
    "decoder_bn_stats": "all",
    "log_every": 100,
    "checkpoint_every": 2_500,
    "grid_every": 2_500,
    "eval_samples": 10_000,
}
_IMAGE_PRESETS["mnist"] = {**_MNIST, "dataset": "mnist"}
_IMAGE_PRESETS["fashion-mnist"] = {**_MNIST, "dataset": "fashion-mnist"}

# Conditional ALI (docs/PAPER.md §6) on the same data and schedules: CelebA's 40 attributes through a
# linear layer to 256 channels (the paper's embedding); the MNIST family's 10 classes, one-hot.
# Unlike the paper's model, D keeps the projection term <P y, D(x)> (projection=true, the
# method's default): with concatenation alone the MNIST decoder learned to ignore y
# (docs/RESULTS.md, conditional MNIST). `--set projection=false` gives the paper's D. The MNIST
# family's presets also take the MNIST recipe's x-cycle weight as the conditional cycle's
# (cycle_weight): it keeps the simultaneous update from collapsing there as well.
_IMAGE_PRESETS["celeba64-conditional"] = {
    **_IMAGE_PRESETS["celeba64"],
    "method": "ali-conditional",
    "condition_dim": 40,
    "embed_dim": 256,
    "projection": True,
}
_IMAGE_PRESETS.update(
    {
        f"{name}-conditional": for_method(
            {**_IMAGE_PRESETS[name], "condition_dim": 10, "cycle_weight": _MNIST["recon_weight"]}, "ali-conditional"
        )
        for name in ("mnist", "fashion-mnist")
    }
)
# Conditional MNIST at twice the steps (the same schedule, stretched): its samples kept their
# condition 98.1-98.4% of the time (2 seeds) against 97.8-97.9% at 30,000 steps (docs/RESULTS.md).
_IMAGE_PRESETS["mnist-conditional-60k"] = {**_IMAGE_PRESETS["mnist-conditional"], "steps": 60_000, "checkpoint_every": 5_000}

# Semi-supervised K+1 ALI (docs/PAPER.md §5, the bold rows of Tables 1-2): each dataset's recipe with
# the labelled-set sizes the papers report: 100 labels on MNIST (Improved-GAN's setting), 1,000
# on SVHN, 4,000 on CIFAR-10. The authors never published theirs (docs/RESULTS.md).
_IMAGE_PRESETS.update(
    {
        f"{name}-kplus1": for_method({**_IMAGE_PRESETS[name], "labels_per_class": per_class}, "ali-kplus1")
        for name, per_class in (("mnist", 10), ("fashion-mnist", 10), ("svhn", 100), ("cifar10", 400))
    }
)

# K+1 with Improved-GAN's regularisers (Salimans et al. 2016) beside the paper's K+1, as its
# scripts set them per dataset. MNIST family: feature matching for both generators, Gaussian
# noise on D's input (std 0.3) and after its hidden layers (0.5), D's weight average for the test
# error. On MNIST with 100 labels they cost ALI's joint D a little on most labelled draws and
# keep it from losing part of the sevens on others (docs/RESULTS.md, K+1 on MNIST). SVHN and
# CIFAR-10: feature matching, the weight average and lr 3e-4, with dropout in D (the paper's D
# has its own) and no noise.
KPLUS1_REGULARISERS: dict[str, dict[str, Any]] = {
    "mnist": {"feature_matching": True, "input_noise": 0.3, "hidden_noise": 0.5, "ema_decay": 0.999},
    "svhn": {"feature_matching": True, "ema_decay": 0.999, "lr": 3e-4},
}
KPLUS1_REGULARISERS["fashion-mnist"] = KPLUS1_REGULARISERS["mnist"]
KPLUS1_REGULARISERS["cifar10"] = KPLUS1_REGULARISERS["svhn"]
_IMAGE_PRESETS.update(
    {f"{name}-kplus1-fm": {**_IMAGE_PRESETS[f"{name}-kplus1"], **extra} for name, extra in KPLUS1_REGULARISERS.items()}
)

# K+1 on CIFAR-10 at the CPU budget (docs/RESULTS.md, K+1 on CIFAR-10): `cifar10-kplus1-fm` on
# the 1-hour recipe's schedule. How fast D learns the labels is what limits these budgets, and
# at the paper's lr 1e-4 it learnt them about half as fast as at 3e-4. 10,000 steps: about an
# hour on 2 idle cores with native bf16 at the measured 3.1 steps/s.
_IMAGE_PRESETS["cifar10-kplus1-1h"] = for_method(
    {
        **_IMAGE_PRESETS["cifar10-1h"],
        "labels_per_class": 400,
        **KPLUS1_REGULARISERS["cifar10"],
        "steps": 10_000,
        "checkpoint_every": 2_000,
        "grid_every": 2_000,
        "keep_checkpoints": 5,
    },
    "ali-kplus1",
)

# Anomaly detection (`ali anomaly`, ali.data.anomaly), the one-class protocol unless the command
# says otherwise. MNIST family: the normal class is a tenth of the data, so a tenth of the
# recipe's steps gives it the recipe's 32 epochs. CIFAR-10: 5,000 steps, 100 epochs of the normal
# class's 5,000 images, where the paper's schedule is out of a CPU's reach. Under the other
# protocol nine classes train: pass --steps (30,000 for the MNIST recipe's epochs).
_IMAGE_PRESETS.update(
    {
        f"{name}-anomaly": {
            **_IMAGE_PRESETS[name],
            "steps": steps,
            "checkpoint_every": steps // 5,
            "grid_every": 0,
            "anomaly_protocol": "one-class",
            # One normal class leaves nothing for the code D to balance; at weight 1 the
            # reconstructions (what the scores read) keep more of their input.
            **({"z_adversarial_weight": 1.0} if "z_adversarial_weight" in _IMAGE_PRESETS[name] else {}),
        }
        for name, steps in (("mnist", 3_000), ("fashion-mnist", 3_000), ("cifar10", 5_000))
    }
)

# Stacked MNIST mode counting (1,000 modes): the same recipe on the 3-channel MNIST nets.
_IMAGE_PRESETS["stacked-mnist"] = {**_MNIST, "dataset": "stacked-mnist", "arch": DATASETS["stacked-mnist"].arch}

PRESETS: dict[str, dict[str, Any]] = {
    "toy25": {**_TOY_DEFAULT, "dataset": "toy25"},
    "toy25-paper": {**_TOY_PAPER, "dataset": "toy25", "checkpoint_every": 10_000},
    # i.i.d. prior batches on the ring: Sobol batches lost the modes' balance in 2 of 3 seeds there
    # (docs/RESULTS.md, ring8), while they steady every toy25 seed.
    "ring8": {**_TOY_DEFAULT, "dataset": "ring8", "prior_sampling": "random"},
    **_IMAGE_PRESETS,
}
