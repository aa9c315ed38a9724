"""Priors: adjacency, co-occurrence D, reference preset, β schedules."""
import numpy as np
import pytest

from fedpsyau_jax.core.au_groups import AU_TO_NODE
from fedpsyau_jax.network.priors import (A_GLOB, A_LOW, A_UP, beta_schedule, cooccurrence_prior,
                                 reference_prior, split_prior)


def test_adjacency_edges_match_spec():
    assert A_UP.shape == (6, 6) and A_LOW.shape == (6, 6) and A_GLOB.shape == (12, 12)
    assert np.all(np.diag(A_UP) == 1) and np.all(np.diag(A_GLOB) == 1)
    # AU 1-2 edge in the upper graph (nodes 0, 1); 9-10 in the lower graph (local 0, 1).
    assert A_UP[0, 1] == A_UP[1, 0] == 1 and A_UP[0, 4] == 0
    assert A_LOW[0, 1] == 1 and A_LOW[0, 2] == 0
    # Global graph: no intra-upper off-diagonal edges, the documented 9 -> 2 asymmetry.
    upper = A_GLOB[:6, :6]
    assert np.array_equal(upper, np.eye(6))
    n = AU_TO_NODE
    assert A_GLOB[n[9], n[2]] == 1 and A_GLOB[n[2], n[9]] == 0
    assert A_GLOB[n[12], n[1]] == 1 and A_GLOB[n[1], n[12]] == 1
    assert int(A_GLOB.sum()) == 12 + 45


def test_cooccurrence_matches_hand_computed():
    # 4 samples over AUs; only AU1 (node 0), AU2 (node 1) and AU12 (node 8) occur.
    au = np.zeros((4, 12), np.float32)
    au[0, [0, 1]] = 1          # AU1 + AU2
    au[1, [0]] = 1             # AU1
    au[2, [0, 8]] = 1          # AU1 + AU12
    au[3, [1, 8]] = 1          # AU2 + AU12
    d = cooccurrence_prior(au)
    # Row AU1: N(1)=3, N(1∧2)=1, N(1∧12)=1 -> [3, 1, 1] / 5.
    np.testing.assert_allclose(d[0, [0, 1, 8]], [3 / 5, 1 / 5, 1 / 5], atol=1e-7)
    # Row AU2: N(2)=2, N(2∧1)=1, N(2∧12)=1 -> [1, 2, 1] / 4 over (1, 2, 12).
    np.testing.assert_allclose(d[1, [0, 1, 8]], [1 / 4, 2 / 4, 1 / 4], atol=1e-7)
    np.testing.assert_allclose(d.sum(axis=1), 1.0, atol=1e-6)
    # AU4 never occurs: its row falls back to the identity.
    assert d[2, 2] == 1 and d[2].sum() == 1
    d_up, d_low = split_prior(d)
    np.testing.assert_allclose(d_up.sum(1), 1, atol=1e-6)
    np.testing.assert_allclose(d_low.sum(1), 1, atol=1e-6)
    # Up block row AU1 keeps only upper AUs: [3, 1] / 4.
    np.testing.assert_allclose(d_up[0, :2], [3 / 4, 1 / 4], atol=1e-7)
    # Low block row AU12 (local 2): only itself among lower AUs -> 1.
    assert d_low[2, 2] == pytest.approx(1.0)


def test_unknown_labels_are_left_out_of_d():
    au = np.zeros((2, 12), np.float32)
    au[0, [0, 1]] = 1
    au[1, [0, 8]] = 1
    mask = np.array([[1] * 12, [0] * 12], np.float32)
    d = cooccurrence_prior(au, mask)
    assert d[0, 8] == 0 and d[0, 1] == pytest.approx(0.5)


def test_reference_preset_rows_sum_to_one():
    d = reference_prior()
    assert d.shape == (12, 12)
    np.testing.assert_allclose(d.sum(1), 1.0, atol=5e-4)
    assert d[0, 0] == pytest.approx(0.3997)


def test_reference_beta_schedule():
    b = beta_schedule("reference", 30, beta0=1.0)
    np.testing.assert_allclose(b[:3], [0.9667, 0.9022, 0.8120], atol=1e-4)
    assert b[-1] == 0.0 and np.all(np.diff(b) <= 0)
    np.testing.assert_allclose(beta_schedule("reference", 30)[:1], [0.3 * 0.96667], atol=1e-5)
    assert np.all(beta_schedule("constant", 5) == np.float32(0.3))
    with pytest.raises(ValueError, match="unknown"):
        beta_schedule("nope", 5)
