"""The FED-PsyAU network of the paper as Flax Linen modules.

``FedPsyAU.apply(variables, batch, beta, train=...)`` returns
``(emotion_logits (B, C), au_logits_gat (B, 12), au_logits_afe (B, 12))``. β is
required: a forgotten β must not silently run the GAT without its prior.

``batch`` is a dict with ``flow128`` (B,128,128,3), ``flow28`` (B,28,28,3) and
``landmarks`` (B,65,2), optionally ``example_mask`` (B,) {0,1}; ROI patches are cut
inside the model. In train mode an example with mask 0 (padding of a vmapped fold or
client) takes no part in BatchNorm's batch statistics nor its running averages:
every BN gets the mask, so a padded batch trains exactly like the
unpadded one. The data prior D lives
in the non-trainable collection ``priors`` (``variables['priors']['D']``, (12, 12)),
so a protocol can swap in each fold's D without recompiling and a vmapped set of
folds can carry one D each. β is a call argument for the same reason.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from fedpsyau_jax.core.au_groups import GROUP_TOKEN_SETS, NUM_AUS
from fedpsyau_jax.network.baselines import ARCHITECTURES, BASELINES, option_reader
from fedpsyau_jax.network.gat import DPKGAT, PriorGraph
from fedpsyau_jax.network.hash_dropout import HashDropout
from fedpsyau_jax.network.masked_batch_norm import masked_batch_norm
from fedpsyau_jax.core.keypoints import NUM_KEYPOINTS
from fedpsyau_jax.network.max_pool import max_pool_3x3_same, max_pool_non_overlapping
from fedpsyau_jax.network.priors import A_GLOB, A_LOW, A_UP, LOWER, UPPER, reference_prior
from fedpsyau_jax.network.roi_patches import PATCH, cut_patches_batch

TOKEN_DIM = PATCH * PATCH * 3  # 75
ROI_SOURCES = ("flow128", "flow28")
AU_NODE_NORMS = ("l2", "none")


class ConvBNReLU(nn.Module):
    features: int
    kernel: int

    @nn.compact
    def __call__(self, x, train: bool, mask=None):
        # No conv bias: the BatchNorm right after subtracts the batch mean, so a bias
        # there has an identically zero gradient (Adam would random-walk it on
        # rounding noise) and no effect on the output.
        x = nn.Conv(self.features, (self.kernel, self.kernel), padding="SAME", use_bias=False)(x)
        return nn.relu(masked_batch_norm(x, train, mask))


class LFE(nn.Module):
    """Local feature extractor: one conv stack shared by every patch.

    patches (B, 65, 5, 5, 3) -> Φ (B, 65, 75). All B·65 patches go through the stack
    in one batched call (the reference loops over patches in Python).
    """

    @nn.compact
    def __call__(self, patches, train: bool, mask=None):
        b, k = patches.shape[:2]
        x = patches.reshape(b * k, PATCH, PATCH, patches.shape[-1])
        pmask = None if mask is None else jnp.repeat(mask, k)  # (B·65,)
        for feat in (32, 64, 3):
            x = ConvBNReLU(feat, 3)(x, train, pmask)
        return x.reshape(b, k, TOKEN_DIM)


class SelfAttention(nn.Module):
    """Multi-head self-attention over the tokens of each sample (B, T, D) -> (B, T, D).

    Same parameters as a standard MHA (q, k, v, out projections with biases); written
    out so the attention-weight dropout uses ``HashDropout``.
    """

    heads: int
    dropout: float

    @nn.compact
    def __call__(self, x, train: bool):
        b, t, d = x.shape
        hd = d // self.heads
        split = lambda y: y.reshape(b, t, self.heads, hd)
        q = split(nn.Dense(d, name="query")(x))
        k = split(nn.Dense(d, name="key")(x))
        v = split(nn.Dense(d, name="value")(x))
        w = jax.nn.softmax(jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(hd).astype(x.dtype), -1)
        w = HashDropout(self.dropout, deterministic=not train)(w)
        o = jnp.einsum("bhqk,bkhd->bqhd", w, v).reshape(b, t, d)
        return nn.Dense(d, name="out")(o)


class SSE(nn.Module):
    """Spatial self-attention encoder over the 65 landmark tokens of each sample.

    Post-LN encoder layer: Y = LN(X + MHA(X)), Z = LN(Y + FFN(Y)), X = Φ + E;
    output Z + Φ. Attention is per sample (the reference mixes the batch).
    """

    heads: int = 3
    ffn_dim: int = 2048
    dropout: float = 0.1

    @nn.compact
    def __call__(self, phi, train: bool):
        det = not train
        pos = self.param("pos_embedding", nn.initializers.normal(0.02), (NUM_KEYPOINTS, TOKEN_DIM))
        x = phi + pos
        att = SelfAttention(self.heads, self.dropout, name="attention")(x, train)
        y = nn.LayerNorm(epsilon=1e-5)(x + HashDropout(self.dropout, deterministic=det)(att))
        h = nn.relu(nn.Dense(self.ffn_dim, name="ffn_in")(y))
        h = HashDropout(self.dropout, deterministic=det)(h)
        h = nn.Dense(TOKEN_DIM, name="ffn_out")(h)
        z = nn.LayerNorm(epsilon=1e-5)(y + HashDropout(self.dropout, deterministic=det)(h))
        return z + phi


class GroupAFE(nn.Module):
    """GSE (squeeze-excitation over a group's tokens) + AFE (AU feature extraction).

    z_g (B, N_g, 75) -> AU nodes (B, n_aus, 25).

    node_norm: "l2" (the paper) divides each node by its L2 norm, which keeps
      only the spatial pattern of the node and removes how strongly the region moved;
      "none" keeps the BN-ReLU output as it is (``FedPsyAU.au_node_norm``).
    """

    n_aus: int
    node_norm: str = "l2"

    @nn.compact
    def __call__(self, z_g, train: bool, mask=None):
        b, n_tok, _ = z_g.shape
        s = z_g.mean(axis=-1)  # (B, N_g)
        hidden = max(n_tok // 16, 1)
        # s >= 0 (the LN part of Z has zero mean per token, Φ is post-ReLU), so with a
        # random-sign squeeze and G1's single hidden unit the ReLU starts dead for every
        # sample half of the time and that SE never trains. Non-negative squeeze
        # weights start it active; training may still move them anywhere.
        squeeze_init = lambda k, shape, dtype=jnp.float32: jnp.abs(nn.initializers.lecun_normal()(k, shape, dtype))
        w = nn.sigmoid(
            nn.Dense(n_tok, use_bias=False, name="se_up")(
                nn.relu(nn.Dense(hidden, use_bias=False, kernel_init=squeeze_init, name="se_down")(s))
            )
        )
        r = z_g * w[..., None] + z_g  # R'_k = w_k Z_k + Z_k
        # Stack tokens on channels: token k contributes channels 3k..3k+2.
        r = r.reshape(b, n_tok, PATCH, PATCH, 3).transpose(0, 2, 3, 1, 4)
        r = r.reshape(b, PATCH, PATCH, 3 * n_tok)
        x = ConvBNReLU(2 * self.n_aus, 3)(r, train, mask)
        x = ConvBNReLU(self.n_aus, 1)(x, train, mask)  # (B, 5, 5, n)
        nodes = x.reshape(b, PATCH * PATCH, self.n_aus).transpose(0, 2, 1)  # (B, n, 25)
        if self.node_norm == "none":
            return nodes
        norm = jnp.sqrt(jnp.sum(nodes * nodes, axis=-1, keepdims=True) + 1e-12)
        return nodes / norm


class AUHead(nn.Module):
    """Flatten (B, 12, 25) -> Dense 128, ReLU, Dropout (0.5) -> Dense 12 logits."""

    dropout: float = 0.5

    @nn.compact
    def __call__(self, nodes, train: bool):
        x = nodes.reshape(nodes.shape[0], -1)
        x = nn.relu(nn.Dense(128)(x))
        x = HashDropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(NUM_AUS)(x)


class Inception(nn.Module):
    """Four branches (1×1; 1×1→3×3; 1×1→5×5; maxpool3×3→1×1), each conv+BN+ReLU."""

    width: int

    @nn.compact
    def __call__(self, x, train: bool, mask=None):
        w = self.width
        b1 = ConvBNReLU(w, 1)(x, train, mask)
        b2 = ConvBNReLU(w, 3)(ConvBNReLU(w, 1)(x, train, mask), train, mask)
        b3 = ConvBNReLU(w, 5)(ConvBNReLU(w, 1)(x, train, mask), train, mask)
        b4 = ConvBNReLU(w, 1)(max_pool_3x3_same(x), train, mask)
        return jnp.concatenate([b1, b2, b3, b4], axis=-1)


class DualStreamInception(nn.Module):
    """AU stream on G (B,12,25) and flow stream on flow28 -> emotion logits."""

    num_classes: int

    @nn.compact
    def __call__(self, g, flow28, train: bool, mask=None):
        b = g.shape[0]
        a = g.transpose(0, 2, 1).reshape(b, PATCH, PATCH, NUM_AUS)  # (B, 5, 5, 12)
        a = Inception(16, name="au_block1")(a, train, mask)
        a = max_pool_non_overlapping(a, 2)  # (B, 2, 2, 64)
        a = Inception(48, name="au_block2")(a, train, mask)
        a = a.reshape(b, -1)  # 768
        f = Inception(6, name="flow_block1")(flow28, train, mask)
        f = max_pool_non_overlapping(f, 2)
        f = Inception(16, name="flow_block2")(f, train, mask)
        f = max_pool_non_overlapping(f, 2).reshape(b, -1)  # 3136
        f = nn.relu(nn.Dense(1024, name="flow_dense")(f))
        a = HashDropout(0.5, deterministic=not train)(a)
        f = HashDropout(0.5, deterministic=not train)(f)
        return nn.Dense(self.num_classes, name="classifier")(jnp.concatenate([a, f], -1))


GRAPH_UP = PriorGraph.from_adjacency(A_UP)
GRAPH_LOW = PriorGraph.from_adjacency(A_LOW)
GRAPH_GLOB = PriorGraph.from_adjacency(A_GLOB)


def split_blocks(d: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(D_up, D_low) with rows re-normalised, traced (D may differ per fold)."""

    def norm(m):
        s = m.sum(axis=1, keepdims=True)
        return jnp.where(s > 0, m / jnp.where(s > 0, s, 1.0), jnp.eye(m.shape[0], dtype=m.dtype))

    return norm(d[UPPER, UPPER]), norm(d[LOWER, LOWER])


class FedPsyAU(nn.Module):
    """FED-PsyAU: LFE → SSE → GSE/AFE → DPK-GAT (up, low, global) → AU heads + DSI.

    Attributes:
      num_classes: emotion classes (3 for MEGC/CAS(ME)³, 7 for DFME).
      use_au_branch: False gives the flow-stream-only baseline (paper Table 3, I):
        the AU stream is dropped and the classifier reads the flow stream alone.
      group_tokens: "paper" (the default; the paper's Table 1: G3 reads tokens 27–64, G4
        tokens 0–51) or "reference" (the reference code's swapped assignment).
      roi_source: "flow128" (patches of the 128-px flow, the default) or "flow28" (patches
        of the 28-px flow at landmarks scaled by 28/128: on the released MEGC2019
        composite flow128 is only an upsample of the 28-px flow).
      au_node_norm: "l2" (the paper: every AU node L2-normalised) or "none"
        (see ``GroupAFE``).
      gat_dropout, au_head_dropout: dropout rates inside each DPK-GAT module (before
        both of its layers) and in the two AU heads; 0.5 in the paper.
      architecture: "fedpsyau" (this network) or a baseline of ``baselines.BASELINES``
        (config ``model.name``): the baseline then reads ``flow28`` alone, has no AU
        branch (``use_au_branch`` is ignored) and returns (logits, None, None).
    """

    num_classes: int = 3
    use_au_branch: bool = True
    group_tokens: str = "paper"
    roi_source: str = "flow128"
    au_node_norm: str = "l2"
    gat_dropout: float = 0.5
    au_head_dropout: float = 0.5
    architecture: str = "fedpsyau"

    @nn.compact
    def __call__(self, batch, beta, train: bool = False):
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"model name {self.architecture!r}: choose from {', '.join(ARCHITECTURES)}")
        if self.group_tokens not in GROUP_TOKEN_SETS:
            raise ValueError(f"group_tokens {self.group_tokens!r}: choose from {', '.join(GROUP_TOKEN_SETS)}")
        if self.roi_source not in ROI_SOURCES:
            raise ValueError(f"roi_source {self.roi_source!r}: choose from {', '.join(ROI_SOURCES)}")
        if self.au_node_norm not in AU_NODE_NORMS:
            raise ValueError(f"au_node_norm {self.au_node_norm!r}: choose from {', '.join(AU_NODE_NORMS)}")
        flow128 = jnp.asarray(batch["flow128"], jnp.float32)
        flow28 = jnp.asarray(batch["flow28"], jnp.float32)
        landmarks = jnp.asarray(batch["landmarks"], jnp.float32)
        mask = batch.get("example_mask") if train else None
        mask = None if mask is None else jnp.asarray(mask, jnp.float32)
        d = self.variable("priors", "D", lambda: jnp.asarray(reference_prior())).value
        beta = jnp.asarray(beta, jnp.float32)

        if self.architecture in BASELINES:
            net = BASELINES[self.architecture](self.num_classes, name=self.architecture)
            return net(flow28, train, mask), None, None
        if not self.use_au_branch:
            return FlowOnlyHead(self.num_classes, name="flow_only")(flow28, train, mask), None, None

        if self.roi_source == "flow28":
            # 5×5 windows of real flow pixels: on data whose flow128 is an upsample of a
            # 28-px flow, a 128-px window covers about one real pixel.
            patches = cut_patches_batch(flow28, landmarks * (flow28.shape[2] / flow128.shape[2]))
        else:
            patches = cut_patches_batch(flow128, landmarks)  # (B, 65, 5, 5, 3)
        phi = LFE(name="lfe")(patches, train, mask)
        z = SSE(name="sse")(phi, train)
        nodes = []
        for gname, (au_nodes, tokens) in GROUP_TOKEN_SETS[self.group_tokens].items():
            nodes.append(
                GroupAFE(len(au_nodes), self.au_node_norm, name=f"afe_{gname}")(z[:, np.asarray(tokens)], train, mask)
            )
        f = jnp.concatenate(nodes, axis=1)  # (B, 12, 25) in AU order
        au_afe = AUHead(self.au_head_dropout, name="au_head_afe")(f, train)

        d_up, d_low = split_blocks(d)
        f_up, f_low = f[:, UPPER], f[:, LOWER]
        gat = lambda graph, name: DPKGAT(graph, dropout=self.gat_dropout, name=name)
        u = gat(GRAPH_UP, "gat_up")(f_up, d_up, beta, train) + f_up
        lo = gat(GRAPH_LOW, "gat_low")(f_low, d_low, beta, train) + f_low
        h = jnp.concatenate([u, lo], axis=1)
        g = gat(GRAPH_GLOB, "gat_glob")(h, d, beta, train) + h
        au_gat = AUHead(self.au_head_dropout, name="au_head_gat")(g, train)
        emotion = DualStreamInception(self.num_classes, name="dsi")(g, flow28, train, mask)
        return emotion, au_gat, au_afe


class FlowOnlyHead(nn.Module):
    """Flow stream of the DSI alone (baseline without the AU branch)."""

    num_classes: int

    @nn.compact
    def __call__(self, flow28, train: bool, mask=None):
        b = flow28.shape[0]
        f = Inception(6, name="flow_block1")(flow28, train, mask)
        f = max_pool_non_overlapping(f, 2)
        f = Inception(16, name="flow_block2")(f, train, mask)
        f = max_pool_non_overlapping(f, 2).reshape(b, -1)
        f = nn.relu(nn.Dense(1024, name="flow_dense")(f))
        f = HashDropout(0.5, deterministic=not train)(f)
        return nn.Dense(self.num_classes, name="classifier")(f)


# Structural options of FedPsyAU set from a config's ``model`` section (and stored in
# an exported model's metadata), with the default each takes when absent.
MODEL_OPTIONS = {
    "group_tokens": "paper",
    "roi_source": "flow128",
    "au_node_norm": "l2",
    "gat_dropout": 0.5,
    "au_head_dropout": 0.5,
    "architecture": "fedpsyau",  # config key model.name
}


def model_options(section, defaults: dict | None = None) -> dict:
    """{option: value} of ``MODEL_OPTIONS`` read from a config section / metadata dict
    (typed like the defaults); ``defaults`` overrides the fallback values (old exported
    models predate some options)."""
    fallback = {**MODEL_OPTIONS, **(defaults or {})}
    get = option_reader(section)
    out = {}
    for key, default in fallback.items():
        value = get(key, None)
        if key == "architecture" and value is None:
            value = get("name", None)  # a config section spells it model.name
        cast = float if isinstance(MODEL_OPTIONS[key], float) else str
        out[key] = cast(default if value is None else value)
    return out


def has_au_branch(section) -> bool:
    """True when a config's ``model`` section (or a model's metadata) describes FED-PsyAU
    with its AU branch: ``use_au_branch`` on and no baseline named."""
    get = option_reader(section)
    name = get("architecture", None) or get("name", None) or "fedpsyau"
    return bool(get("use_au_branch", True)) and str(name) == "fedpsyau"


def example_batch(batch_size: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """A random input batch of the right shapes (for init, tests and benchmarks)."""
    rng = np.random.default_rng(seed)
    return {
        "flow128": rng.random((batch_size, 128, 128, 3), np.float32),
        "flow28": rng.random((batch_size, 28, 28, 3), np.float32),
        "landmarks": rng.uniform(8, 120, (batch_size, NUM_KEYPOINTS, 2)).astype(np.float32),
    }


# XLA options for every program that initialises a model. Init runs once per run (or
# per chunk of folds) and its run time is negligible, but at the default optimisation
# level XLA:CPU spends ~30 s compiling the ~100 unrolled threefry draws of the
# parameters (more than the train step itself). At level 0 it compiles in ~5 s; the
# random bits are the same integers, and the floats made from them can differ from a
# level-3 build by a rounding (<= 2e-7 measured), so every init path uses these options
# and all of them give the same values.
INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}


def init_program(fn):
    """``jax.jit(fn)`` compiled with ``INIT_COMPILER_OPTIONS`` when called with concrete
    arguments; inside another trace (a caller's jit, ``eval_shape``) ``fn`` is traced as
    is, since jax.jit refuses compiler options on a nested jit."""
    jitted = jax.jit(fn, compiler_options=INIT_COMPILER_OPTIONS)

    def call(*args):
        if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(args)):
            return fn(*args)
        return jitted(*args)

    return call


def init_variables(model: FedPsyAU, key: jax.Array, batch=None, prior_d=None) -> dict:
    """Initialise params, batch_stats and priors; ``prior_d`` replaces the default D."""
    batch = example_batch(2) if batch is None else batch
    pkey, dkey = jax.random.split(key)
    # Jitted when called eagerly: un-jitted, init dispatches (and compiles) hundreds of
    # small ops one by one.
    variables = init_program(lambda p, d, b: model.init({"params": p, "dropout": d}, b, beta=0.0, train=False))(
        pkey, dkey, batch
    )
    variables = dict(variables)
    if prior_d is not None and "priors" in variables:
        variables["priors"] = {"D": jnp.asarray(prior_d, jnp.float32)}
    return variables


def count_params(params) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))
