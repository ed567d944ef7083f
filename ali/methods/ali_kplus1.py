"""Semi-supervised ALI in the K+1 setting (NOTES §4, the bold rows of the paper's Tables 1-2).

D takes (x, z) and outputs K class logits l_1..l_K; the (K+1)-th, "fake", logit is fixed at 0
(Salimans et al. 2016), so D's real-vs-fake logit is a = logsumexp(l_1..l_K). Then:
- unlabelled real pairs (x, Gz(x)) should be any of the K classes and fake pairs (Gx(z), z) the
  (K+1)-th: exactly ALI's L_D on a (and the generators' L_G, ALI's non-saturating form);
- labelled real pairs (x, Gz(x), y) add the cross-entropy of l_1..l_K against y.
The labelled set is `labels_per_class` examples of each class from the training split, chosen
by the run's seed (class-balanced, ali.evaluation.semisupervised.balanced_subset); every step
draws a labelled batch of the batch size from it. The classifier is D's argmax on (x, Gz(x)).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from ali.data.dataset import Dataset
from ali.errors import AliError
from ali.evaluation.semisupervised import balanced_subset
from ali.keys import Key, in_range
from ali.methods.adversarial import adversarial_update, update_mode
from ali.methods.base import ADVERSARIAL_KEYS, Losses, Method, StepFn, StepInputs, balance_score, decoder, encoder
from ali.nets.architectures import Architecture
from ali.nets.networks import JointDiscriminator
from ali.training.hardware import to_model_layout


class ClassDiscriminator(JointDiscriminator):
    """The joint D with K class logits (N, K) instead of one logit."""

    def class_logits(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        hx = self.dx(x)
        hz = self.dz(z.view(z.shape[0], -1, 1, 1) if self.conv else z)
        return self.joint(torch.cat([hx, hz], dim=1)).flatten(1)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """a = logsumexp of the class logits: the real-vs-fake logit, with l_{K+1} = 0."""
        return torch.logsumexp(self.class_logits(x, z).float(), dim=1)


def networks(arch: Architecture, settings: dict) -> dict[str, nn.Module]:
    if len(arch.x_shape) != 3:
        raise AliError("ali-kplus1 classifies images; choose an image architecture and dataset")
    joint = [*arch.d_joint[:-1], dataclasses.replace(arch.d_joint[-1], out=settings["num_classes"])]
    d = ClassDiscriminator(arch.d_x, arch.d_z, joint, arch.x_shape, arch.latent_dim)
    return {"encoder": encoder(arch), "decoder": decoder(arch), "discriminator": d}


def labelled_indices(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """The run's labelled subset of the training set: per_class examples of every class."""
    return torch.from_numpy(balanced_subset(labels.cpu(), per_class, seed))


def make_step(inputs: StepInputs) -> StepFn:
    model, rt, prior, cfg = inputs.model, inputs.runtime, inputs.prior, inputs.settings
    data: Dataset | None = inputs.data
    if data is None or data.labels is None or data.labels.dim() != 1:
        raise AliError("ali-kplus1 needs a dataset with class labels (mnist, fashion-mnist, cifar10, svhn)")
    if int(data.labels.max()) >= cfg["num_classes"]:
        raise AliError(f"the dataset has {int(data.labels.max()) + 1} classes; set num_classes={int(data.labels.max()) + 1}")
    d: ClassDiscriminator = model["discriminator"]
    mode = update_mode(cfg["update"], d, rt.precision)
    chosen = labelled_indices(data.labels, cfg["labels_per_class"], cfg["label_seed"]).to(data.train.device)
    labels = data.labels.to(data.train.device)
    weight = cfg["supervised_weight"]

    def step(x: torch.Tensor, index: int) -> Losses:
        # The labelled batch of step `index`: a function of (label_seed, index), so resume is exact.
        pick = torch.randint(
            len(chosen), (x.shape[0],), generator=torch.Generator().manual_seed(cfg["label_seed"] * 1_000_003 + index)
        )
        rows = chosen[pick.to(chosen.device)]
        x_l = to_model_layout(data.to_float(data.train[rows]))
        y_l = labels[rows]
        z = prior(x.shape[0], index, x.device)
        with rt.autocast():
            z_hat = model["encoder"](x)
            x_tilde = model["decoder"](z)
            # Labelled pairs train D only: their codes are detached, the classifier is D's.
            supervised = F.cross_entropy(d.class_logits(x_l, model["encoder"](x_l).detach()).float(), y_l)
        out = adversarial_update(
            d, (x, z_hat), (x_tilde, z), inputs.optimizers, mode, runtime=rt, extra_discriminator_loss=weight * supervised
        )
        return {"supervised": supervised.detach(), **out}

    return step


@torch.inference_mode()
def class_predictions(model: nn.ModuleDict, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """D's class for each image x, on the pair (x, Gz(x)) in evaluation mode."""
    model.eval()
    d: ClassDiscriminator = model["discriminator"]
    return torch.cat([d.class_logits(chunk, model["encoder"](chunk)).argmax(1) for chunk in x.split(batch)])


METHOD = Method(
    name="ali-kplus1",
    title="ALI, K+1 semi-supervised",
    networks=networks,
    optimizers={"generator": ("encoder", "decoder"), "discriminator": ("discriminator",)},
    make_step=make_step,
    score=balance_score,
    keys={
        **ADVERSARIAL_KEYS,
        "num_classes": Key(10, in_range(2), "K, the number of classes D tells apart (the fake class is the K+1-th)"),
        "labels_per_class": Key(10, in_range(1), "labelled training examples per class (10 = the 100-label MNIST setting)"),
        "label_seed": Key(0, in_range(0), "which labelled subset (class-balanced draw from the training split)"),
        "supervised_weight": Key(1.0, in_range(0, lo_open=True), "weight of the labelled pairs' cross-entropy in D's loss"),
    },
)
