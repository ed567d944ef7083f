import pytest
import torch

from ali.data.prior import _PERIOD, PriorSampler, SobolNormal


def test_sobol_batches_are_standard_normal_and_far_more_even_than_iid_batches():
    sobol = SobolNormal(2, seed=3)
    batches = torch.stack([sobol(100, step) for step in range(200)])  # (steps, 100, 2)
    pooled = batches.reshape(-1, 2)
    assert pooled.mean(0).abs().max() < 0.01 and (pooled.std(0) - 1).abs().max() < 0.01
    for q in (0.05, 0.25, 0.5, 0.75, 0.95):  # quantiles of N(0, 1)
        expected = torch.special.ndtri(torch.tensor(q, dtype=torch.float64)).item()
        assert torch.quantile(pooled[:, 0], q).item() == pytest.approx(expected, abs=0.02)
    torch.manual_seed(0)
    iid = torch.randn(200, 100, 2)
    # What batch norm sees: the spread of each batch's mean and std from step to step.
    for stat in (lambda b: b.mean(1), lambda b: b.std(1)):
        assert stat(batches).std() < 0.4 * stat(iid).std()


def test_batch_of_a_step_does_not_depend_on_what_was_drawn_before():
    sequential = SobolNormal(2, seed=0)
    drawn = [sequential(64, step) for step in range(6)]
    assert torch.equal(SobolNormal(2, seed=0)(64, 5), drawn[5])  # a resumed run starts at step 5
    assert torch.equal(sequential(64, 2), drawn[2])  # a rolled-back run goes back
    assert not torch.equal(SobolNormal(2, seed=1)(64, 5), drawn[5])  # another seed or rank


def test_sobol_sequence_starts_over_past_its_length():
    n = 100
    last_step = _PERIOD // n  # its batch would straddle the end of the sequence
    z = SobolNormal(2, seed=0)(n, last_step)
    assert z.shape == (n, 2) and torch.isfinite(z).all()
    assert not torch.equal(z, SobolNormal(2, seed=0)(n, 0))


def test_random_prior_sampling_is_the_models_iid_prior():
    torch.manual_seed(5)
    expected = torch.randn(10, 2)
    torch.manual_seed(5)
    assert torch.equal(PriorSampler("random", 2, seed=0)(10, step=3), expected)


def test_sobol_prior_sampling_draws_the_seeded_sequence_by_step():
    prior = PriorSampler("sobol", 2, seed=2)
    first = prior(10, step=0)
    assert torch.equal(first, SobolNormal(2, seed=2 * 1_000_003)(10, 0))
    assert torch.equal(prior(10, step=7), SobolNormal(2, seed=2 * 1_000_003)(10, 7))
