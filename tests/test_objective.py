import math

import torch
import torch.nn.functional as F

from ali.methods.objective import ali_losses, generator_to_discriminator_grad_ratio


def test_losses_equal_the_formulas_on_known_logits():
    a = torch.tensor([0.0, 2.0])  # real pairs
    b = torch.tensor([-1.0, 3.0])  # fake pairs
    loss_d, loss_g = ali_losses(a, b)
    sp = lambda v: math.log1p(math.exp(v))
    expect_d = (sp(-0.0) + sp(-2.0)) / 2 + (sp(-1.0) + sp(3.0)) / 2
    expect_g = (sp(0.0) + sp(2.0)) / 2 + (sp(1.0) + sp(-3.0)) / 2
    assert math.isclose(loss_d.item(), expect_d, rel_tol=1e-6)
    assert math.isclose(loss_g.item(), expect_g, rel_tol=1e-6)


def test_gradient_signs():
    # D raises real logits and lowers fake ones; G does the opposite.
    a = torch.zeros(4, requires_grad=True)
    b = torch.zeros(4, requires_grad=True)
    loss_d, _ = ali_losses(a, b)
    ga, gb = torch.autograd.grad(loss_d, (a, b))
    assert (ga < 0).all() and (gb > 0).all()
    _, loss_g = ali_losses(a, b)
    ga, gb = torch.autograd.grad(loss_g, (a, b))
    assert (ga > 0).all() and (gb < 0).all()


def test_ratio_turns_d_gradient_into_g_gradient():
    a = torch.randn(6, requires_grad=True)
    b = torch.randn(6, requires_grad=True)
    loss_d, loss_g = ali_losses(a, b)
    gd = torch.cat(torch.autograd.grad(loss_d, (a, b), retain_graph=True))
    gg = torch.cat(torch.autograd.grad(loss_g, (a, b)))
    ratio = generator_to_discriminator_grad_ratio(a, b)
    torch.testing.assert_close(gd * ratio, gg)


def test_ratio_stays_finite_for_saturated_logits():
    ratio = generator_to_discriminator_grad_ratio(torch.tensor([500.0]), torch.tensor([-500.0]))
    assert torch.isfinite(ratio).all()
    assert F.softplus(torch.tensor(-500.0)) == 0  # the regime the cap protects against
