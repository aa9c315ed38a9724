"""What a reply of a Flower site may carry and how it is read: the record names, the
metric names of each kind of reply, and the errors a bad reply or a failed round
raise. Shared by the strategy (``strategies``) and the new-site exchange (``new_site``)."""

from __future__ import annotations

import math
from collections.abc import Iterable

ARRAYS, METRICS, CONFIG, SITE = "arrays", "metrics", "config", "site"
#: Scalar metrics a train reply may carry besides num-examples (all finite numbers).
TRAIN_METRICS = ("num-examples", "train-loss", "partition-id", "setup-seconds", "train-seconds")
#: With an AU branch a site also reports each AU head's mean ROC AUC on its test split
#: (absent where no AU could be scored there).
AU_METRICS = ("au-auc-gat", "au-auc-afe")
PERSONAL_METRICS = ("personal-uf1", "personal-uar", "personal-accuracy", "num-test") + tuple(
    f"personal-{m}" for m in AU_METRICS
)
EVAL_METRICS = ("num-examples", "uf1", "uar", "accuracy", "partition-id") + AU_METRICS


class ReplyRejected(ValueError):
    """A reply that cannot enter the aggregate (the reason names what is wrong)."""


class RoundFailed(RuntimeError):
    """Fewer valid replies than the strategy's minimum."""


def _metric_dict(content, allowed: Iterable[str]) -> dict[str, float]:
    if METRICS not in content:
        raise ReplyRejected("no metrics record")
    m = dict(content[METRICS].items())
    extra = sorted(set(m) - set(allowed))
    if extra:
        raise ReplyRejected(f"unexpected metric(s) {', '.join(extra)}")
    out = {}
    for k, v in m.items():
        if isinstance(v, list) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            raise ReplyRejected(f"metric {k} is not a finite scalar: {v!r}")
        out[k] = float(v)
    if out.get("num-examples", 0.0) <= 0:
        raise ReplyRejected(f"num-examples must be > 0, got {out.get('num-examples')}")
    return out


def site_label(content) -> str:
    """The site name a reply gives (its ``site`` config record), or '?'."""
    try:
        return str(content[SITE]["name"])
    except Exception:  # noqa: BLE001 - a malformed reply still gets logged
        return "?"
