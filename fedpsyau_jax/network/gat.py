"""DPK-GAT (paper eq. 3–5): graph attention mixed with a data prior D̃.

The graph is a static jraph ``GraphsTuple`` whose edges are the nonzeros of a
psychological adjacency A (self-loops included): sender j -> receiver i for A_ij > 0.
Attention is a jraph segment softmax over each receiver's incoming edges, so a
non-edge gets exactly zero weight (no -inf masking of a dense matrix). One graph is
shared by all samples and batched with ``vmap``.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import numpy as np

from fedpsyau_jax.network.hash_dropout import HashDropout


@dataclasses.dataclass(frozen=True)
class PriorGraph:
    """Static edge lists of an adjacency A (n×n, row = receiver)."""

    senders: np.ndarray  # (E,) int32, j
    receivers: np.ndarray  # (E,) int32, i
    n_node: int

    @classmethod
    def from_adjacency(cls, a: np.ndarray) -> "PriorGraph":
        a = np.asarray(a)
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise ValueError(f"adjacency must be square, got {a.shape}")
        if not np.all(np.diag(a) > 0):
            raise ValueError("adjacency needs self-loops (diagonal = 1)")
        recv, send = np.nonzero(a > 0)
        return cls(send.astype(np.int32), recv.astype(np.int32), a.shape[0])

    def graphs_tuple(self, nodes: jax.Array) -> jraph.GraphsTuple:
        return jraph.GraphsTuple(
            nodes=nodes,
            edges=None,
            senders=jnp.asarray(self.senders),
            receivers=jnp.asarray(self.receivers),
            n_node=jnp.array([self.n_node]),
            n_edge=jnp.array([len(self.senders)]),
            globals=None,
        )

    def edge_prior(self, d: jax.Array) -> jax.Array:
        """D̃ on the edges: D restricted to A's edges, re-normalised per receiver row.

        A row whose restricted mass is zero falls back to the self-loop alone, so α
        stays a distribution. Differentiable in ``d`` and cheap: computed in the step.
        """
        vals = d[self.receivers, self.senders]
        row = jax.ops.segment_sum(vals, self.receivers, self.n_node)
        is_self = jnp.asarray(self.senders == self.receivers, vals.dtype)
        safe = jnp.where(row > 0, row, 1.0)[self.receivers]
        return jnp.where(row[self.receivers] > 0, vals / safe, is_self)

    def dense(self, edge_values: jax.Array) -> jax.Array:
        """Scatter per-edge values (..., E) into a dense (..., n, n) matrix (for tests/plots)."""
        out = jnp.zeros(edge_values.shape[:-1] + (self.n_node, self.n_node), edge_values.dtype)
        return out.at[..., self.receivers, self.senders].set(edge_values)


def prior_attention(scores: jax.Array, receivers: jax.Array, n_node: int, d_edges: jax.Array, beta) -> jax.Array:
    """α = (1−β)·softmax_i(scores) + β·D̃ on the edges. scores (E,), returns (E,)."""
    s = jraph.segment_softmax(scores, receivers, num_segments=n_node)
    return (1.0 - beta) * s + beta * d_edges


class DPKGATLayer(nn.Module):
    """One multi-head DPK-GAT layer on a single graph (nodes (n, F_in)).

    Per head: f = hW; e_ij = LeakyReLU_0.2(aᵀ[f_i ‖ f_j]) on edges; α per eq. 5;
    h'_i = ELU(Σ_j α_ij f_j) + f_i. Heads are concatenated.
    Returns (h' (n, heads·features), α (heads, E)).
    """

    graph: PriorGraph
    features: int
    heads: int = 1

    @nn.compact
    def __call__(self, h: jax.Array, d_edges: jax.Array, beta) -> tuple[jax.Array, jax.Array]:
        g = self.graph
        w = self.param("W", nn.initializers.xavier_uniform(), (h.shape[-1], self.heads * self.features))
        a_recv = self.param("a_recv", nn.initializers.xavier_uniform(), (self.heads, self.features))
        a_send = self.param("a_send", nn.initializers.xavier_uniform(), (self.heads, self.features))
        f = (h @ w).reshape(h.shape[0], self.heads, self.features)  # (n, H, F)
        gt = g.graphs_tuple(f)
        # aᵀ[f_i ‖ f_j] split into a receiver and a sender part: two cheap per-node dots.
        e = (
            jnp.einsum("nhf,hf->nh", f, a_recv)[gt.receivers] + jnp.einsum("nhf,hf->nh", f, a_send)[gt.senders]
        )  # (E, H)
        e = nn.leaky_relu(e, negative_slope=0.2)
        alpha = jax.vmap(prior_attention, in_axes=(1, None, None, None, None), out_axes=1)(
            e, gt.receivers, g.n_node, d_edges, beta
        )  # (E, H)
        msg = alpha[..., None] * f[gt.senders]  # (E, H, F)
        agg = jax.ops.segment_sum(msg, gt.receivers, num_segments=g.n_node)
        out = nn.elu(agg) + f
        return out.reshape(h.shape[0], self.heads * self.features), alpha.T


class DPKGAT(nn.Module):
    """Dropout 0.5 → layer(3 heads × 64) → dropout 0.5 → layer(1 head → out), batched.

    x (B, n, F) -> (B, n, out_features). The batch is vmapped over one shared graph.
    """

    graph: PriorGraph
    hidden: int = 64
    heads: int = 3
    out_features: int = 25
    dropout: float = 0.5

    @nn.compact
    def __call__(self, x: jax.Array, d: jax.Array, beta, train: bool) -> jax.Array:
        d_edges = self.graph.edge_prior(d)
        l1 = nn.vmap(
            DPKGATLayer,
            in_axes=(0, None, None),
            out_axes=0,
            variable_axes={"params": None},
            split_rngs={"params": False},
        )(self.graph, self.hidden, self.heads, name="layer1")
        l2 = nn.vmap(
            DPKGATLayer,
            in_axes=(0, None, None),
            out_axes=0,
            variable_axes={"params": None},
            split_rngs={"params": False},
        )(self.graph, self.out_features, 1, name="layer2")
        x = HashDropout(self.dropout, deterministic=not train)(x)
        x, _ = l1(x, d_edges, beta)
        x = HashDropout(self.dropout, deterministic=not train)(x)
        x, _ = l2(x, d_edges, beta)
        return x
