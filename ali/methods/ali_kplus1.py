"""Semi-supervised ALI in the K+1 setting (docs/PAPER.md §5, the bold rows of the paper's Tables 1-2).

D takes (x, z) and outputs K class logits l_1..l_K; the (K+1)-th, "fake", logit is a constant
(Salimans et al. 2016 fix it at 0), so D's real-vs-fake logit is a = logsumexp(l_1..l_K) - l_{K+1}.
Any constant gives the same family of Ds (the class logits' biases absorb it); it decides where an
untrained D starts. Here it is ln K: all class logits near 0 then give a = 0, D(real) = 1/2, as
in ALI. At 0, an untrained D says real with probability K / (K + 1) and the generators' gradient
starts at K / (K + 1) per pair instead of 1/2; measured on CIFAR-10 (4,000 labels, the paper's
nets): the encoder escapes it by inflating its codes through D(z), whose bias-free maxout layers
scale with their input (log sigma 16.6 by step 18), and D's class logits overflow (labelled
cross-entropy 6,909 at step 20, then chance). Then:
- unlabelled real pairs (x, Gz(x)) should be any of the K classes and fake pairs (Gx(z), z) the
  (K+1)-th: exactly ALI's L_D on a (and the generators' L_G, ALI's non-saturating form);
- labelled real pairs (x, Gz(x), y) add the cross-entropy of l_1..l_K against y.
The labelled set is `labels_per_class` examples of each class (class-balanced,
ali.data.batches.balanced_subset) drawn by `label_seed`, which by default is the run's
`seed`, so the seeds of a study train on different labelled sets. They come from the dataset's
`labelled_pool` where it has one (SVHN: the official train split, while ALI trains on extra) and
otherwise from the training split (CIFAR-10: data_batch_1..5 [0:45000]). Every step draws a
labelled batch of the batch size from them; that pass leaves batch norm's running averages to the
unlabelled data. The classifier (`class_predictions`) is D's argmax on (x, mu(x)) in evaluation
mode, a function of x alone.

Options from Improved-GAN (Salimans et al. 2016), whose semi-supervised discriminators are
regularised against overfitting a few labels (all off by default, the paper's K+1):
- `input_noise`, `hidden_noise`: Gaussian noise of that std on D's image input and after every
  hidden layer of D (its x, z and joint stacks), in training only.
- `feature_matching`: the generators' loss is ||E f(x, Gz(x)) - E f(Gx(z), z)||^2 (mean over
  f's units) on f, the input of D's last layer, instead of the adversarial L_G: the decoder's
  pairs move toward the data pairs' statistics and, on the joint D, the encoder's pairs toward
  the decoder's. D keeps its K+1 loss.
- A weight average of D (`ema_decay`, with the generators'): the classifier that is evaluated,
  Improved-GAN's Polyak-averaged test-time D.
- `weight_norm`: every linear and convolutional layer of D weight-normalised, w = g v / ||v||
  (Salimans and Kingma 2016), with their data-dependent initialisation on a fresh run: layer by
  layer on the pairs a step shows D (the first 500 training images with codes drawn from
  q(z|x), and as many generated pairs), g and the bias are set so each unit's output starts
  with zero mean and unit variance. Unlike Improved-GAN, whose hidden
  layers keep the initial g, every g trains.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from ali.data.batches import balanced_subset, to_model_layout
from ali.data.dataset import Dataset
from ali.errors import AliError
from ali.keys import Key, boolean, in_range
from ali.methods.adversarial import adversarial_update, two_pass_step, update_mode
from ali.methods.base import ADVERSARIAL_KEYS, Batch, Losses, Method, StepFn, StepInputs, balance_score, decoder, encoder
from ali.methods.objective import ali_losses
from ali.nets.architectures import Architecture
from ali.nets.layers import Dropout, Layer, reparametrise_layers, running_stats_frozen
from ali.nets.model import Model
from ali.nets.networks import JointDiscriminator

RUN_SEED = -1  # label_seed's default: the labelled set follows the run's seed
DEAD_UNIT_STD = 1e-4  # the weight-norm start leaves a unit alone whose output varies less than this


def _add_noise(std: float):
    def hook(module: nn.Module, _inputs, output: torch.Tensor) -> torch.Tensor | None:
        return output + std * torch.randn_like(output) if module.training else None

    return hook


class ClassDiscriminator(JointDiscriminator):
    """The joint D with K class logits (N, K) instead of one logit; `input_noise` and
    `hidden_noise` as the module docstring says."""

    def __init__(
        self,
        x_table: list[Layer],
        z_table: list[Layer],
        joint_table: list[Layer],
        x_shape: tuple[int, ...],
        latent_dim: int,
        input_noise: float = 0.0,
        hidden_noise: float = 0.0,
        weight_norm: bool = False,
    ):
        super().__init__(x_table, z_table, joint_table, x_shape, latent_dim)
        self.input_noise = input_noise
        if weight_norm:
            reparametrise_layers(self, nn.utils.parametrizations.weight_norm)
        if hidden_noise > 0:
            for stack in (self.dx, self.dz, self.joint[: len(self.joint) - self.head_size]):
                for module in _row_ends(stack):
                    module.register_forward_hook(_add_noise(hidden_noise))

    def features(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if self.training and self.input_noise > 0:
            x = x + self.input_noise * torch.randn_like(x)
        return super().features(x, z)

    def class_logits(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x, z)).flatten(1)

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor, z: torch.Tensor) -> None:
        """Data-dependent initialisation of the weight-normalised layers (module docstring), in
        forward order, on pairs (x, z) in evaluation mode (no dropout or noise)."""
        layers = [m for m in self.modules() if parametrize.is_parametrized(m, "weight")]
        handles = [m.register_forward_hook(_standardise_outputs) for m in layers]
        was_training = self.training
        self.eval()
        try:
            self.class_logits(x, z)
        finally:
            for handle in handles:
                handle.remove()
            self.train(was_training)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The real-vs-fake logit a = logsumexp(l_1..l_K) - ln K: the fake class's logit fixed at ln K."""
        return realness(self.class_logits(x, z))


def _standardise_outputs(module: nn.Module, _inputs, out: torch.Tensor) -> torch.Tensor:
    """Forward hook: set a weight-normalised layer's g (and bias) so that its output on this
    batch has zero mean and unit variance per unit, and pass that output on. A unit whose output
    does not vary on the batch (no signal reaches it) keeps its start: a scale of 1 / std would
    blow up the first time it does."""
    g = module.parametrizations.weight.original0
    shape = (1, -1, *[1] * (out.dim() - 2))
    dims = [0, *range(2, out.dim())]
    bias = torch.zeros(out.shape[1], device=out.device) if module.bias is None else module.bias.float()
    unit = (out.float() - bias.view(shape)) / g.float().view(shape)  # the output of the unit-norm weights v / ||v||
    mean, std = unit.mean(dims), unit.std(dims)
    live = std > DEAD_UNIT_STD
    scale = torch.where(live, 1.0 / std.clamp_min(DEAD_UNIT_STD), g.float().flatten())
    shift = bias if module.bias is None else torch.where(live, -mean * scale, bias)  # bias-free: the scale only
    g.copy_(scale.view_as(g))
    if module.bias is not None:
        module.bias.copy_(shift)
    return (unit * scale.view(shape) + shift.view(shape)).to(out.dtype)


def init_from_data(model: Model, images: torch.Tensor) -> None:
    """A fresh run's data-dependent start: D's weight-normalised layers on the pairs a step shows
    it, real (x, z ~ q(z|x)) and generated (Gx(z), z ~ p(z)), with the generators in training mode
    (batch statistics; their running averages left alone); nothing when D has none."""
    d: ClassDiscriminator = model["discriminator"]
    if not any(parametrize.is_parametrized(m, "weight") for m in d.modules()):
        return
    generators = (model["encoder"], model["decoder"])
    modes = [net.training for net in generators]
    try:
        for net in generators:
            net.train()
        with torch.no_grad(), running_stats_frozen(model):
            codes = model["encoder"](images)
            prior = model.sample_prior(len(images), images.device)
            generated = model["decoder"](prior)
    finally:
        for net, mode in zip(generators, modes):
            net.train(mode)
    d.init_from_data(torch.cat([images, generated]), torch.cat([codes, prior]))


def realness(class_logits: torch.Tensor) -> torch.Tensor:
    """D's real-vs-fake logit from its K class logits, in fp32 (ClassDiscriminator.forward)."""
    logits = class_logits.float()
    return torch.logsumexp(logits, dim=1) - math.log(logits.shape[1])


def _row_ends(stack: nn.Sequential) -> list[nn.Module]:
    """The last module of each table row of a build_stack stack (its activation, or its layer
    where it has none): a row is [dropout] -> layer -> [batch norm] -> [activation]."""
    modules = list(stack)
    starts = [
        i
        for i, m in enumerate(modules)
        if isinstance(m, Dropout) or (isinstance(m, (nn.Linear, nn.Conv2d)) and not (i and isinstance(modules[i - 1], Dropout)))
    ]
    return [modules[end - 1] for end in [*starts[1:], len(modules)]]


def networks(arch: Architecture, settings: dict) -> dict[str, nn.Module]:
    if len(arch.x_shape) != 3:
        raise AliError("ali-kplus1 classifies images; choose an image architecture and dataset")
    joint = [*arch.d_joint[:-1], dataclasses.replace(arch.d_joint[-1], out=settings["num_classes"])]
    d = ClassDiscriminator(
        arch.d_x,
        arch.d_z,
        joint,
        arch.x_shape,
        arch.latent_dim,
        settings["input_noise"],
        settings["hidden_noise"],
        settings["weight_norm"],
    )
    return {"encoder": encoder(arch), "decoder": decoder(arch), "discriminator": d}


def labelled_set(data: Dataset, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's labelled examples (uint8 images, int64 labels): per_class of every class, drawn
    class-balanced by seed from `data.labelled_pool`, or from the training split without one."""
    images, labels = data.labelled_pool or (data.train, data.labels)
    if labels is None or labels.dim() != 1:
        raise AliError("ali-kplus1 needs a dataset with class labels (mnist, fashion-mnist, cifar10, svhn)")
    rows = torch.from_numpy(balanced_subset(labels.cpu(), per_class, seed))
    return images[rows.to(images.device)], labels[rows.to(labels.device)]


def resolved_label_seed(settings: dict, run_seed: int) -> int:
    """label_seed as set, or the run's seed where it is left at RUN_SEED."""
    return run_seed if settings["label_seed"] == RUN_SEED else settings["label_seed"]


def make_step(inputs: StepInputs) -> StepFn:
    model, rt, prior, cfg = inputs.model, inputs.runtime, inputs.prior, inputs.settings
    data: Dataset | None = inputs.data
    if data is None:
        raise AliError("ali-kplus1 needs a dataset with class labels (mnist, fashion-mnist, cifar10, svhn)")
    seed = resolved_label_seed(cfg, inputs.seed)
    x_pool, y_pool = labelled_set(data, cfg["labels_per_class"], seed)
    if int(y_pool.max()) >= cfg["num_classes"]:
        raise AliError(f"the dataset has {int(y_pool.max()) + 1} classes; set num_classes={int(y_pool.max()) + 1}")
    device = data.train.device
    x_pool, y_pool = x_pool.to(device), y_pool.to(device)
    d: ClassDiscriminator = model["discriminator"]
    mode = update_mode(cfg["update"], d, rt.precision)
    weight = cfg["supervised_weight"]

    def step(batch: Batch, index: int) -> Losses:
        x = batch.x
        # The labelled batch of step `index`: a function of (seed, index), so resume is exact.
        cpu_draw = torch.Generator().manual_seed(seed * 1_000_003 + index)  # the same batches on any device
        pick = torch.randint(len(y_pool), (x.shape[0],), generator=cpu_draw, device="cpu")
        pick = pick.to(device)
        x_l, y_l = to_model_layout(data.to_float(x_pool[pick])), y_pool[pick]
        z = prior(x.shape[0], index, x.device)
        with rt.autocast():
            z_hat = model["encoder"](x)
            x_tilde = model["decoder"](z)
            # Labelled pairs train D only: their codes are detached, the classifier is D's. Their
            # pass is a few repeated images, so it must not move the running averages that
            # evaluation normalises every image with.
            with running_stats_frozen(model):
                supervised = F.cross_entropy(d.class_logits(x_l, model["encoder"](x_l).detach()).float(), y_l)
        if cfg["feature_matching"]:
            return {
                "supervised": supervised.detach(),
                **_feature_matching_update(d, (x, z_hat), (x_tilde, z), weight * supervised),
            }
        out = adversarial_update(
            d, (x, z_hat), (x_tilde, z), inputs.optimizers, mode, runtime=rt, extra_discriminator_loss=weight * supervised
        )
        return {"supervised": supervised.detach(), **out}

    def _feature_matching_update(d: ClassDiscriminator, real, fake, extra_d: torch.Tensor) -> Losses:
        """D on its K+1 loss, the generators on feature matching, from one forward pass of D."""
        batch = real[0].shape[0]
        inputs.optimizers["discriminator"].zero_grad(set_to_none=True)
        inputs.optimizers["generator"].zero_grad(set_to_none=True)
        with rt.autocast():
            features = d.features(torch.cat([real[0], fake[0]]), torch.cat([real[1], fake[1]]))
            logits = realness(d.head(features).flatten(1))
        loss_d, loss_g = ali_losses(*logits.split(batch))
        f_real, f_fake = features.float().flatten(1).split(batch)
        matching = (f_real.mean(0) - f_fake.mean(0)).pow(2).mean()
        two_pass_step(inputs.optimizers, loss_d + extra_d, matching, rt)
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "feature_matching": matching.detach()}

    return step


@torch.inference_mode()
def class_predictions(model: nn.ModuleDict, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """D's class for each image x: the argmax of its K class logits on (x, mu(x)), the encoder's
    posterior mean, in evaluation mode (running averages, no dropout), so the same x always gets
    the same class whatever else is in its batch. Runs where the model is; the classes come back
    on x's device. The model's mode is restored."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        d: ClassDiscriminator = model["discriminator"]
        encoder = model["encoder"]
        chunks = (chunk.to(device) for chunk in x.split(batch))
        return torch.cat([d.class_logits(c, encoder.moments(c)[0]).argmax(1).to(x.device) for c in chunks])
    finally:
        model.train(was_training)


def heldout_error(model: Model, dataset: Dataset, test_images: int | None = None) -> dict[str, float]:
    """The K+1 classifier's error (a fraction) on the first `test_images` held-out images (all by
    default), named by the run's number of labels: kplus1_error_100 for 10 per class."""
    labels = dataset.heldout_labels
    if labels is None or labels.dim() != 1:
        raise AliError(f"the kplus1 metric needs class labels on the test split; {dataset.name!r} has none")
    x_test, y_test = dataset.to_float(dataset.heldout[:test_images]), labels[:test_images]
    count = model.config.labels_per_class * model.config.num_classes if model.config is not None else 0
    return {f"kplus1_error_{count}": float((class_predictions(model, x_test) != y_test).float().mean())}


def _check_settings(settings: dict) -> None:
    if settings["weight_norm"] and settings["spectral_norm"]:
        raise AliError("weight_norm and spectral_norm both reparametrise D's weights; choose one")


METHOD = Method(
    name="ali-kplus1",
    title="ALI, K+1 semi-supervised",
    uses_labels=True,
    networks=networks,
    optimizers={"generator": ("encoder", "decoder"), "discriminator": ("discriminator",)},
    make_step=make_step,
    score=balance_score,
    metrics=heldout_error,
    metrics_group="kplus1",
    keys={
        **ADVERSARIAL_KEYS,
        "num_classes": Key(10, in_range(2), "K, the number of classes D tells apart (the fake class is the K+1-th)"),
        "labels_per_class": Key(10, in_range(1), "labelled training examples per class (10 = the 100-label MNIST setting)"),
        "label_seed": Key(
            RUN_SEED,
            in_range(RUN_SEED),
            f"which labelled subset (a class-balanced draw); {RUN_SEED} = the run's seed, so each seed of a study labels its own",
        ),
        "supervised_weight": Key(1.0, in_range(0, lo_open=True), "weight of the labelled pairs' cross-entropy in D's loss"),
        "input_noise": Key(0.0, in_range(0), "std of Gaussian noise on D's image input in training (Improved-GAN MNIST: 0.3)"),
        "hidden_noise": Key(
            0.0, in_range(0), "std of Gaussian noise after each hidden layer of D in training (Improved-GAN MNIST: 0.5)"
        ),
        "feature_matching": Key(False, boolean(), "train the generators on feature matching instead of L_G"),
        "weight_norm": Key(
            False,
            boolean(),
            "weight-normalised D layers with a data-dependent start (Improved-GAN's D; Salimans and Kingma 2016)",
        ),
    },
    averaged=("encoder", "decoder", "discriminator"),
    init_from_data=init_from_data,
    check_settings=_check_settings,
)
