"""ALI, the paper's objective (docs/PAPER.md §1): D(x, Gz(x)) against D(Gx(z), z), nothing added.

The method registered as "ali": the joint game alone, whose step BiGAN reuses. (The module is
not called ali.py, so that a name imported from ali.methods never shadows the package.)
"""

from __future__ import annotations

from ali.methods.adversarial import adversarial_update, update_mode
from ali.methods.base import (
    ADVERSARIAL_KEYS,
    JOINT_OPTIMIZERS,
    PACK_KEY,
    Batch,
    Losses,
    Method,
    StepFn,
    StepInputs,
    balance_score,
    joint_networks,
)


def make_step(inputs: StepInputs) -> StepFn:
    model, rt, prior = inputs.model, inputs.runtime, inputs.prior
    mode = update_mode(inputs.settings["update"], model["discriminator"], rt.precision)

    def step(batch: Batch, index: int) -> Losses:
        x = batch.x
        z = prior(x.shape[0], index, x.device)
        with rt.autocast():
            z_hat = model["encoder"](x)
            x_tilde = model["decoder"](z)
        return adversarial_update(model["discriminator"], (x, z_hat), (x_tilde, z), inputs.optimizers, mode, runtime=rt)

    return step


METHOD = Method(
    name="ali",
    title="ALI",
    networks=joint_networks,
    optimizers=JOINT_OPTIMIZERS,
    make_step=make_step,
    score=balance_score,
    keys={**ADVERSARIAL_KEYS, **PACK_KEY},
)
