"""Published figures for the tasks ali measures, so a report can show ours beside them.

Every figure, with its source, is listed in docs/PAPER.md §7.
`REFERENCE` maps (dataset, metric) to the published values for that metric on that dataset, each as
(who, value, source). The metric names are the keys ali writes to metrics.json, and every value is
in the unit ali's metric uses: fractions, not percentages (a published 95.7% is stored as 0.957),
so a report can print ours and theirs with one format. A published spread (± std, min/max, number
of runs) belongs to the figure's description, so it is part of `who`.

Semi-supervised keys name the total number of labelled examples, as the papers do:
`svm_error_1000` on SVHN is the paper's "1000 labels" row (100 per class).

The published errors are test-set errors, and ali scores the metrics filed here on the same
images: the dataset's held-out split is its official test split (MNIST and Fashion-MNIST 10,000,
SVHN 26,032, CIFAR-10 test_batch; ali.data), and the L2-SVM protocol tests on it too.
"""

from __future__ import annotations

from typing import NamedTuple


class Published(NamedTuple):
    who: str  # the model, and the published spread when there is one
    value: float  # in ali's unit for the metric
    source: str  # the paper (and table or section) that printed it


_ALI = "Dumoulin et al. 2017 (ALI)"
_PACGAN = "Lin et al. 2018 (PacGAN), 2-D grid table"
_VEEGAN = "Srivastava et al. 2017 (VEEGAN)"
_ALICE = "Li et al. 2017 (ALICE)"
_MINE = "Belghazi et al. 2018 (MINE), MNIST reconstructions"
_BADGAN = "Dai et al. 2017 (Bad GAN)"

REFERENCE: dict[tuple[str, str], list[Published]] = {
    # docs/PAPER.md §4: 25-Gaussian grid. The paper counts a mode covered when any sample is assigned to it
    # (modes_covered); the later papers want a sample within 3 std (modes_covered_3sigma).
    ("toy25", "modes_covered"): [
        Published("ALI, 10 runs (± 5.8, min 8, max 25)", 13.4, f"{_ALI} §4.5"),
        Published("GAN, 10 runs (± 9.2)", 10.4, f"{_ALI} §4.5"),
    ],
    ("toy25", "modes_covered_3sigma"): [
        Published("ALI, PacGAN's re-run (± 0.4)", 24.1, _PACGAN),
        Published("PacGAN4 (± 0.2)", 24.8, _PACGAN),
        Published("ALI, 5 runs of 2,500 samples", 15.8, _VEEGAN),
    ],
    ("toy25", "high_quality_fraction"): [
        Published("ALI, PacGAN's re-run", 0.957, _PACGAN),
        Published("ALI, 5 runs of 2,500 samples", 0.016, _VEEGAN),
    ],
    ("toy25", "reverse_kl"): [
        Published("ALI, PacGAN's re-run", 0.14, _PACGAN),
        Published("PacGAN4", 0.04, _PACGAN),
    ],
    # docs/PAPER.md §7: MNIST, scored with an MNIST classifier.
    ("mnist", "classifier_is"): [
        Published("ALI (approx.)", 8.75, _ALICE),
        Published("ALICE", 9.28, _ALICE),
    ],
    ("mnist", "recon_class_accuracy"): [
        Published("ALI", 0.4595, _MINE),
        Published("ALICE", 0.9817, _MINE),
        Published("MINE", 0.9610, _MINE),
    ],
    # The two papers normalise reconstruction error differently from each other (and maybe from
    # ali's per-pixel mean on [0, 1]): compare within a source, not across.
    ("mnist", "recon_mse"): [
        Published("ALI (approx.)", 0.48, f"{_ALICE}; its own error scale"),
        Published("ALICE", 0.080, f"{_ALICE}; its own error scale"),
        Published("ALI", 14.24, f"{_MINE}; its own error scale"),
        Published("ALICE", 5.20, f"{_MINE}; its own error scale"),
        Published("MINE", 9.73, f"{_MINE}; its own error scale"),
    ],
    # Stacked MNIST: 1,000 modes (see `published` for the dataset name).
    ("stacked-mnist", "stacked_modes"): [
        Published("ALI", 16, f"{_VEEGAN}, Stacked MNIST table"),
        Published("PacDCGAN2", 1000, "Lin et al. 2018 (PacGAN), Stacked MNIST table"),
    ],
    ("stacked-mnist", "stacked_kl"): [
        Published("ALI", 5.4, f"{_VEEGAN}, Stacked MNIST table"),
        Published("PacDCGAN2", 0.06, "Lin et al. 2018 (PacGAN), Stacked MNIST table"),
    ],
    # MNIST semi-supervised, 100 labels (10 per class).
    ("mnist", "svm_error_100"): [Published("VAE M1 + TSVM", 0.118, "Kingma et al. 2014")],
    ("mnist", "kplus1_error_100"): [Published("Improved GAN (feature matching)", 0.0093, "Salimans et al. 2016")],
    # docs/PAPER.md §7: SVHN with 1,000 labels (100 per class).
    ("svhn", "svm_error_1000"): [
        Published("ALI + L2-SVM (± 0.50)", 0.1914, f"{_ALI} Table 1"),
        Published("DCGAN + L2-SVM", 0.2218, f"{_ALI} Table 1"),
    ],
    ("svhn", "kplus1_error_1000"): [
        Published("ALI, K+1 discriminator (± 0.65)", 0.0742, f"{_ALI} Table 1"),
        Published("GAN, feature matching (± 1.3)", 0.0811, f"{_ALI} Table 1"),
        Published("SDGM", 0.1661, f"{_ALI} Table 1"),
        Published("VAE (M1+M2)", 0.3602, f"{_ALI} Table 1"),
        Published("Bad GAN", 0.0425, _BADGAN),
    ],
    # CIFAR-10 by labels per class (1000 / 2000 / 4000 / 8000 labels). Filed as K+1: the paper sets
    # them beside the feature-matching GAN, a K+1 model; its error bars are printed as 3 sigma.
    ("cifar10", "kplus1_error_1000"): [
        Published("ALI (± 0.89, 3σ)", 0.1998, f"{_ALI} Table 2"),
        Published("GAN, feature matching", 0.2183, f"{_ALI} Table 2"),
    ],
    ("cifar10", "kplus1_error_2000"): [
        Published("ALI (± 0.44, 3σ)", 0.1909, f"{_ALI} Table 2"),
        Published("GAN, feature matching", 0.1961, f"{_ALI} Table 2"),
    ],
    ("cifar10", "kplus1_error_4000"): [
        Published("ALI (± 1.62, 3σ)", 0.1799, f"{_ALI} Table 2"),
        Published("GAN, feature matching", 0.1863, f"{_ALI} Table 2"),
        Published("Ladder network", 0.2040, f"{_ALI} Table 2"),
        Published("CatGAN", 0.1958, f"{_ALI} Table 2"),
        Published("Bad GAN", 0.1441, _BADGAN),
    ],
    ("cifar10", "kplus1_error_8000"): [
        Published("ALI (± 1.49, 3σ)", 0.1705, f"{_ALI} Table 2"),
        Published("GAN, feature matching", 0.1772, f"{_ALI} Table 2"),
    ],
    # The standard Inception-network score, not comparable with classifier_is from a small
    # CIFAR classifier; hence its own name.
    ("cifar10", "inception_score"): [
        Published("ALI (± 0.05)", 5.34, "Warde-Farley & Bengio 2017"),
        Published("ALICE", 6.02, _ALICE),
    ],
    ("imagenet64", "linear_probe_top1"): [
        Published("BigBiGAN, ResNet-50 (full-size ImageNet)", 0.566, "Donahue & Simonyan 2019"),
        Published("BigBiGAN, RevNet-50x4 (full-size ImageNet)", 0.613, "Donahue & Simonyan 2019"),
    ],
}


def _dataset_key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def published(dataset: str, metric: str) -> list[Published]:
    """The published figures for `metric` on `dataset` ([] when none are known).

    Stacked-MNIST metrics are measured on data built from MNIST whatever the run's dataset is
    called, so a `stacked_*` metric finds the Stacked MNIST figures from any dataset name.
    """
    found = REFERENCE.get((_dataset_key(dataset), metric))
    if found is None and metric.startswith("stacked_"):
        found = REFERENCE.get(("stacked-mnist", metric))
    return list(found or [])


def metrics_for(dataset: str) -> list[str]:
    """Every metric with published figures on `dataset`, in REFERENCE's order."""
    key = _dataset_key(dataset)
    return [metric for ds, metric in REFERENCE if ds == key]
