"""DPK-GAT layer (paper eq. 3–5): masking, attention rows, β limits."""
import jax
import jax.numpy as jnp
import jraph
import numpy as np
import pytest

from fedpsyau_jax.network.gat import DPKGATLayer, PriorGraph
from fedpsyau_jax.network.priors import A_GLOB, A_UP, reference_prior, split_prior


@pytest.fixture(scope="module")
def layer_setup():
    graph = PriorGraph.from_adjacency(A_GLOB)
    layer = DPKGATLayer(graph, features=16, heads=3)
    h = jax.random.normal(jax.random.key(0), (12, 25))
    d = jnp.asarray(reference_prior())
    d_edges = graph.edge_prior(d)
    variables = layer.init(jax.random.key(1), h, d_edges, 0.3)
    apply = jax.jit(lambda h, beta: layer.apply(variables, h, d_edges, beta))
    return graph, layer, variables, h, d, d_edges, apply


def test_non_neighbour_features_do_not_reach_node(layer_setup):
    graph, _, _, h, _, _, apply = layer_setup
    i = 0  # AU1: receives from itself and AU12, 14, 15 only.
    neighbours = set(graph.senders[graph.receivers == i].tolist())
    j = next(k for k in range(12) if k not in neighbours)
    out, _ = apply(h, 0.3)
    out2, _ = apply(h.at[j].set(100.0 * jax.random.normal(jax.random.key(9), (25,))), 0.3)
    np.testing.assert_allclose(out[i], out2[i], atol=1e-6)
    # ... while changing a neighbour does change it.
    k = next(n for n in neighbours if n != i)
    out3, _ = apply(h.at[k].add(3.0), 0.3)
    assert np.abs(np.asarray(out3[i] - out[i])).max() > 1e-4


def test_attention_rows_sum_to_one_and_live_on_edges(layer_setup):
    graph, _, _, h, _, _, apply = layer_setup
    _, alpha = apply(h, 0.3)                                      # (heads, E)
    dense = np.asarray(graph.dense(alpha))                        # (heads, 12, 12)
    np.testing.assert_allclose(dense.sum(-1), 1.0, atol=1e-5)
    assert np.all(dense[:, A_GLOB == 0] == 0)


def test_beta_limits(layer_setup):
    graph, layer, variables, h, d, d_edges, apply = layer_setup
    _, alpha1 = apply(h, 1.0)
    # β = 1: exactly D̃ (D restricted to A's edges, rows re-normalised).
    d_np = np.asarray(d) * A_GLOB
    d_tilde = d_np / d_np.sum(1, keepdims=True)
    for hd in range(3):
        np.testing.assert_allclose(np.asarray(graph.dense(alpha1[hd])), d_tilde, atol=1e-6)
    # β = 0: the learned softmax attention alone, recomputed here from the parameters.
    _, alpha0 = apply(h, 0.0)
    p = variables["params"]
    f = (h @ p["W"]).reshape(12, 3, 16)
    e = (jnp.einsum("nhf,hf->nh", f, p["a_recv"])[graph.receivers]
         + jnp.einsum("nhf,hf->nh", f, p["a_send"])[graph.senders])
    e = jax.nn.leaky_relu(e, 0.2)
    for hd in range(3):
        s = jraph.segment_softmax(e[:, hd], jnp.asarray(graph.receivers), num_segments=12)
        np.testing.assert_allclose(alpha0[hd], s, atol=1e-6)
    assert np.abs(np.asarray(alpha0 - alpha1)).max() > 1e-3


def test_block_prior_is_row_stochastic():
    graph = PriorGraph.from_adjacency(A_UP)
    d_up, _ = split_prior(reference_prior())
    e = np.asarray(graph.edge_prior(jnp.asarray(d_up)))
    np.testing.assert_allclose(np.asarray(graph.dense(e)).sum(1), 1.0, atol=1e-6)


def test_adjacency_without_self_loops_is_rejected():
    with pytest.raises(ValueError, match="self-loops"):
        PriorGraph.from_adjacency(np.zeros((3, 3)))
