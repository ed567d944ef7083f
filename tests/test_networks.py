"""The hand-written layers: Maxout against autograd's amax (ties, bf16), Dropout's statistics; frozen running averages."""

import pytest
import torch
from torch import nn

from ali.nets.layers import Dropout, Maxout, running_stats_frozen


def _reference(x: torch.Tensor, pieces: int) -> torch.Tensor:
    return x.view(x.shape[0], pieces, x.shape[1] // pieces, *x.shape[2:]).amax(1)


@pytest.mark.parametrize("shape", [(7, 20), (3, 10, 4, 4)])
def test_maxout_matches_amax_values_and_gradients(shape):
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    ours, ref = Maxout(5)(x), _reference(x, 5)
    assert ours.shape == (shape[0], shape[1] // 5, *shape[2:])
    grad_out = torch.randn_like(ref)
    (g_ours,) = torch.autograd.grad(ours, x, grad_out)
    (g_ref,) = torch.autograd.grad(ref, x, grad_out)
    assert torch.equal(ours, ref) and torch.equal(g_ours, g_ref)
    assert torch.autograd.gradcheck(Maxout(5), (x.detach().requires_grad_(),))


def test_maxout_splits_the_gradient_evenly_on_ties_like_amax():
    x = torch.tensor([[3.0, 1.0, 3.0, 0.0, 2.0, 1.0]], requires_grad=True)  # unit u: channels u, u+2, u+4
    (grad,) = torch.autograd.grad(Maxout(3)(x).sum(), x)
    (ref,) = torch.autograd.grad(_reference(x, 3).sum(), x)
    assert torch.equal(grad, ref)
    assert grad.tolist() == [[0.5, 0.5, 0.5, 0.0, 0.0, 0.5]]


def test_maxout_bf16_matches_amax():
    x = torch.randn(50, 40).round(decimals=1).bfloat16().requires_grad_()  # coarse values: many ties
    grad_out = torch.randn(50, 8).bfloat16()
    (ours,) = torch.autograd.grad(Maxout(5)(x), x, grad_out)
    (ref,) = torch.autograd.grad(_reference(x, 5), x, grad_out)
    torch.testing.assert_close(ours, ref, rtol=1e-2, atol=1e-2)


def test_dropout_keeps_one_minus_p_scales_and_reuses_its_mask_backward():
    drop = Dropout(0.3)
    x = torch.ones(200_000, requires_grad=True)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.005
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.7))
    (grad,) = torch.autograd.grad(y, x, torch.ones_like(y))
    assert torch.equal(grad, y.detach())  # gradient flows exactly where the forward kept x
    drop.eval()
    assert drop(x) is x


def test_running_stats_frozen_normalises_by_the_batch_and_keeps_the_averages():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, momentum=0.05)).train()
    x = torch.randn(32, 3) * 3 + 1
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with running_stats_frozen(net):
        frozen_out = net(x)
    assert net[1].momentum == 0.05
    for k, v in net.state_dict().items():
        if k.endswith(("running_mean", "running_var")):
            torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    torch.testing.assert_close(frozen_out, net(x))  # the same batch-statistics output, now updating
    assert not torch.equal(net[1].running_mean, before["1.running_mean"])


def test_nearest_tconv_init_makes_even_and_odd_outputs_equal():
    """Known answer: a stride-2 transposed conv started "nearest" maps a constant input to a
    constant interior (no checkerboard), while the paper's N(0, std) start alternates."""
    from ali.nets.layers import init_weights

    outputs = {}
    for mode in ("normal", "nearest"):
        torch.manual_seed(0)
        layer = torch.nn.ConvTranspose2d(3, 2, 4, 2, bias=False)
        init_weights(layer, 0.1, mode)
        outputs[mode] = layer(torch.ones(1, 3, 5, 5))[..., 2:-2, 2:-2]  # the interior: every tap overlaps
    nearest, normal = outputs["nearest"], outputs["normal"]
    assert torch.allclose(nearest, nearest[..., :1, :1].expand_as(nearest), atol=1e-6)
    assert (normal - normal[..., :1, :1]).abs().max() > 1e-3


def test_nearest_tconv_init_is_refused_where_nothing_would_change():
    from ali.config import make_config
    from ali.errors import AliError

    make_config({"arch": "cifar10", "dataset": "cifar10", "latent_dim": 64, "tconv_init": "nearest"})
    with pytest.raises(AliError, match="has none"):
        make_config({"tconv_init": "nearest"})  # the toy MLPs
