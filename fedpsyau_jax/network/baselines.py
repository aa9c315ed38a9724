"""The shallow optical-flow networks the micro-expression literature compares with,
as Flax modules on the same 28×28 input (u, v, optical strain; ``flow28``).

Each maps ``flow28`` (B, 28, 28, 3) to emotion logits (B, C) and ends in a Dense layer
named ``classifier`` (what FedRep keeps personal). BatchNorm layers take the example
mask like the rest of the package, so padded batches train exactly like unpadded ones.
Architectures as published (layer sizes are facts of the papers):

- ``STSTNet`` (Liong et al., FG 2019): three parallel 3×3 convolutions with 3, 5 and
  8 filters (padding 2), each ReLU → BatchNorm → 3×3 max pool stride 3 (padding 1)
  → dropout 0.5; concatenated (10×10×16), 2×2 average pool, one Dense layer (400 → C).
  1.6 k parameters.
- ``OffApexNet`` (Gan et al., Signal Processing: Image Communication 2019): two
  streams, one on the horizontal and one on the vertical flow (strain unused), each
  5×5 conv (6) → 2×2 max pool → 5×5 conv (16) → 2×2 max pool; concatenated
  (2 × 7·7·16), Dense 1024 → Dense 1024 → C with ReLU and dropout 0.5.
- ``SSSNet`` (Varanka et al., 2021): one stream, 5×5 conv (32, valid) → ReLU → 3×3 max
  pool stride 3 → BatchNorm → channel dropout; 3×3 conv (64, valid) → ReLU → 2×2 max
  pool → BatchNorm → channel dropout; Dense 256 → C (dropout 0.5 before the last).
  Its authors feed 64×64 flow; here it reads the same 28×28 flow as the others, so
  the first Dense layer sees 3·3·64 features instead of 9·9·64.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from fedpsyau_jax.network.hash_dropout import HashDropout
from fedpsyau_jax.network.masked_batch_norm import masked_batch_norm
from fedpsyau_jax.network.max_pool import max_pool_non_overlapping


def _pool_padded(x, k: int):
    """k×k max pool, stride k, padding 1 with -inf (PyTorch's ``MaxPool2d(k, k, 1)``)."""
    x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-jnp.inf)
    return max_pool_non_overlapping(x, k)


def _channel_dropout(x, rate: float, train: bool):
    """Drops whole feature maps (PyTorch's ``Dropout2d``): one keep bit per (example, channel)."""
    keep = HashDropout(rate, deterministic=not train)(jnp.ones((x.shape[0], 1, 1, x.shape[-1]), x.dtype))
    return x * keep


class _ConvParams(nn.Module):
    """The kernel (k, k, in, features) and bias of a convolution, initialised and named
    exactly as ``nn.Conv``'s, for a layer computed elsewhere."""

    features: int
    size: int
    in_features: int

    @nn.compact
    def __call__(self):
        shape = (self.size, self.size, self.in_features, self.features)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), shape)
        return kernel, self.param("bias", nn.initializers.zeros_init(), (self.features,))


def conv_as_matmul(x, kernel, bias, pad: int):
    """A stride-1 k×k convolution as one matmul over the k² shifted copies of ``x``
    (B, H, W, C) with ``pad`` zeros each side -> (B, H + 2·pad − k + 1, W + 2·pad − k + 1, F).
    Same sums as ``lax.conv``; on CPU a convolution with few input channels and few
    filters runs at a fraction of the matmul's speed (STSTNet's training step measured
    2.2× faster this way, SSSNet's LOSO epoch 1.8×; Off-ApexNet's
    single-channel streams ran 1.8× slower and keep ``lax.conv``)."""
    k = kernel.shape[0]
    x = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    h, w = x.shape[1] - k + 1, x.shape[2] - k + 1
    cols = jnp.concatenate([x[:, i : i + h, j : j + w, :] for i in range(k) for j in range(k)], axis=-1)
    return cols @ kernel.reshape(-1, kernel.shape[-1]) + bias


def _conv(x, features: int, size: int, pad: int, name: str):
    """A convolution layer (parameters as ``nn.Conv``'s under ``name``) computed by
    ``conv_as_matmul``; call inside a compact module."""
    kernel, bias = _ConvParams(features, size, x.shape[-1], name=name)()
    return conv_as_matmul(x, kernel, bias, pad)


class STSTNet(nn.Module):
    num_classes: int
    dropout: float = 0.5

    @nn.compact
    def __call__(self, flow28, train: bool, mask=None):
        feats = (3, 5, 8)
        # the three parallel convolutions read the same input: one matmul for all 16 maps
        params = [_ConvParams(f, 3, flow28.shape[-1], name=f"conv{i + 1}")() for i, f in enumerate(feats)]
        kernel = jnp.concatenate([k for k, _ in params], axis=-1)
        bias = jnp.concatenate([b for _, b in params])
        maps = conv_as_matmul(flow28, kernel, bias, pad=2)  # 30×30×16
        bounds = np.cumsum((0,) + feats)
        streams = []
        for i in range(len(feats)):
            x = maps[..., bounds[i] : bounds[i + 1]]
            x = masked_batch_norm(nn.relu(x), train, mask, name=f"bn{i + 1}")
            x = _pool_padded(x, 3)  # 10×10
            streams.append(HashDropout(self.dropout, deterministic=not train)(x))
        x = jnp.concatenate(streams, axis=-1)
        x = nn.avg_pool(x, (2, 2), (2, 2))  # 5×5×16
        return nn.Dense(self.num_classes, name="classifier")(x.reshape(x.shape[0], -1))


class OffApexNet(nn.Module):
    num_classes: int
    dropout: float = 0.5

    @nn.compact
    def __call__(self, flow28, train: bool, mask=None):
        streams = []
        for name, channel in (("horizontal", 0), ("vertical", 1)):
            x = flow28[..., channel : channel + 1]
            # lax.conv here: as matmuls (one input channel) its LOSO epoch ran 1.8x slower
            x = max_pool_non_overlapping(nn.relu(nn.Conv(6, (5, 5), padding="SAME", name=f"{name}_conv1")(x)), 2)
            x = max_pool_non_overlapping(nn.relu(nn.Conv(16, (5, 5), padding="SAME", name=f"{name}_conv2")(x)), 2)
            streams.append(x.reshape(x.shape[0], -1))  # 7·7·16
        x = jnp.concatenate(streams, axis=-1)
        for i in (1, 2):
            x = nn.relu(nn.Dense(1024, name=f"dense{i}")(x))
            x = HashDropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.num_classes, name="classifier")(x)


class SSSNet(nn.Module):
    num_classes: int
    dropout: float = 0.5

    @nn.compact
    def __call__(self, flow28, train: bool, mask=None):
        x = nn.relu(_conv(flow28, 32, 5, 0, "conv1"))  # 24×24
        x = masked_batch_norm(max_pool_non_overlapping(x, 3), train, mask, name="bn1")  # 8×8
        x = _channel_dropout(x, self.dropout, train)
        x = nn.relu(_conv(x, 64, 3, 0, "conv2"))  # 6×6
        x = masked_batch_norm(max_pool_non_overlapping(x, 2), train, mask, name="bn2")  # 3×3
        x = _channel_dropout(x, self.dropout, train)
        x = nn.relu(nn.Dense(256, name="dense1")(x.reshape(x.shape[0], -1)))
        x = HashDropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.num_classes, name="classifier")(x)


#: ``model.name`` of each baseline -> its module.
BASELINES = {"ststnet": STSTNet, "offapexnet": OffApexNet, "sssnet": SSSNet}
#: Every ``model.name``: FED-PsyAU and the baselines.
ARCHITECTURES = ("fedpsyau", *BASELINES)
#: How a model card and a report name each network.
DISPLAY_NAMES = {
    "fedpsyau": "FED-PsyAU (Li, Qian, Zhao, Wang, ICCV 2025)",
    "fedpsyau_flow_only": "FED-PsyAU's flow stream alone (no AU branch)",
    "ststnet": "STSTNet (Liong et al., FG 2019)",
    "offapexnet": "Off-ApexNet (Gan et al., 2019)",
    "sssnet": "SSSNet (Varanka et al., 2021)",
}


def option_reader(section):
    """``get(key, default)`` of a config section, a metadata dict or an object with attributes."""
    return section.get if hasattr(section, "get") else (lambda k, d=None: getattr(section, k, d))


def display_name(model_section) -> str:
    """The network a config's ``model`` section (or a model's metadata) describes."""
    get = option_reader(model_section)
    name = str(get("architecture", None) or get("name", None) or "fedpsyau")
    if name == "fedpsyau" and not bool(get("use_au_branch", True)):
        name = "fedpsyau_flow_only"
    return DISPLAY_NAMES.get(name, name)
