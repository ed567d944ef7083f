"""PacGAN packing on the joint D (config key `pack`): groups of pairs judged together, never
mixing real and fake, one logit per group repeated for each pair."""

from __future__ import annotations

import pytest
import torch

from ali.cli import main
from ali.config import for_method, make_config
from ali.errors import AliError
from ali.nets.architectures import ARCHITECTURES
from ali.nets.networks import JointDiscriminator, PackedJointDiscriminator, _head_size
from ali.presets import PRESETS
from ali.training.build import build_model


def _packed(pack: int) -> PackedJointDiscriminator:
    torch.manual_seed(0)
    return build_model(make_config({**for_method(PRESETS["mnist"], "ali"), "pack": pack}))[0]["discriminator"].eval()


def test_a_packed_d_is_the_plain_d_on_stacked_groups_with_its_logit_per_pair():
    d = _packed(2)
    first_conv = next(m for m in d.dx if isinstance(m, torch.nn.Conv2d))
    assert isinstance(d, PackedJointDiscriminator) and first_conv.in_channels == 2
    x, z = torch.rand(6, 1, 28, 28), torch.randn(6, 32)
    logits = d(x, z)
    grouped = JointDiscriminator.forward(d, x.reshape(3, 2, 28, 28), z.reshape(3, 64))
    assert torch.equal(logits, grouped.repeat_interleave(2))
    changed = x.clone()
    changed[5] = 1 - changed[5]  # a pair of the third group
    after = d(changed, z)
    assert torch.equal(after[:4], logits[:4]) and not torch.equal(after[4:], logits[4:])


@pytest.mark.parametrize("method", ["ali", "alice", "bigan"])
def test_every_joint_method_packs_its_joint_d(method):
    """`pack` belongs to each method with a joint D over (x, z); each builds the packed one."""
    model = build_model(make_config({**for_method(PRESETS["mnist"], method), "pack": 2}))[0]
    first_conv = next(m for m in model["discriminator"].dx if isinstance(m, torch.nn.Conv2d))
    assert isinstance(model["discriminator"], PackedJointDiscriminator) and first_conv.in_channels == 2


def test_pack_must_divide_the_batch_and_the_dry_run_lists_the_packed_d(capsys):
    with pytest.raises(AliError, match="must divide batch_size"):
        make_config({**PRESETS["mnist"], "pack": 3})
    assert main(["train", "--config", "stacked-mnist", "--set", "pack=4", "--dry-run", "--out", "unused"]) == 0
    assert "Conv2d(12, 32" in capsys.readouterr().out  # 4 stacked 3-channel images


def test_finding_the_head_leaves_the_random_stream_alone():
    """A discriminator's construction must not draw more random numbers than its layers do, or
    the same seed would initialise every later network differently."""
    arch = ARCHITECTURES["cifar10"]
    state = torch.get_rng_state()
    assert _head_size(arch.d_joint, 512) == 2  # dropout and the 1x1 layer
    assert torch.equal(torch.get_rng_state(), state)


def test_a_discriminator_that_rebuilds_its_joint_layers_knows_where_their_last_row_begins():
    conditional = build_model(make_config(PRESETS["mnist-conditional"]))[0]["discriminator"]
    plain = build_model(make_config(for_method(PRESETS["mnist"], "ali")))[0]["discriminator"]
    assert conditional.head_size == plain.head_size == 2
    assert list(conditional.joint)[-conditional.head_size :][-1].out_channels == 1
