"""The paired comparison of federated results (``federated.report``): P-FedProx against
each other algorithm on the same seeds, per split and model kind."""
import numpy as np
import pytest

from fedpsyau_jax.federated.report import paired_comparison, paired_difference, summarise, write_markdown


def test_paired_difference_interval_and_wilcoxon():
    rng = np.random.default_rng(0)
    b = rng.uniform(0.4, 0.6, 10)
    # a shift far above the noise: the interval excludes zero; all 10 pairs positive
    # -> the exact two-sided signed-rank p-value is 2 / 2**10
    a = b + 0.05 + rng.normal(0, 0.005, 10)
    d = paired_difference(a, b)
    assert d["n"] == 10 and d["wins"] == 10 and d["losses"] == 0
    assert d["mean"] == pytest.approx(np.mean(a - b))
    assert d["ci"][0] > 0 and d["excludes_zero"]
    assert d["p_wilcoxon"] == pytest.approx(2 / 2**10) and d["significant"]
    # 3 seeds, all of one sign: the bootstrap interval excludes zero but the exact
    # signed-rank p is 2 / 2**3 = 0.25 -> not significant
    g = paired_difference(a[:3], b[:3])
    assert g["excludes_zero"] and g["p_wilcoxon"] == pytest.approx(0.25) and not g["significant"]
    # symmetric differences: the interval straddles zero
    sym = np.array([0.03, -0.03, 0.02, -0.02, 0.01, -0.01, 0.04, -0.04])
    e = paired_difference(b[:8] + sym, b[:8])
    assert e["ci"][0] < 0 < e["ci"][1] and not e["excludes_zero"] and e["wins"] == e["losses"] == 4
    # a NaN pair (a client without test data) is dropped, not counted as a loss
    f = paired_difference([0.5, np.nan, 0.7], [0.4, 0.3, 0.6])
    assert f["n"] == 2 and f["mean"] == pytest.approx(0.1)


def _chunk(seeds, uf1_rows):
    """A chunk result as run_federation returns it: rows seed-major, 2 clients."""
    rows = [{"uf1": u, "uar": u} for u in uf1_rows]
    return {"clients": ["a", "b"], "seeds": seeds, "train_seconds": 1.0, "deployed": rows,
            "personal": rows, "loss_per_round": [[0.0] * len(rows)], "num_train": [1] * len(rows),
            "num_test": [1] * len(rows)}


def test_paired_comparison_pairs_by_seed_not_by_position():
    # pfedprox ran seeds (0, 1) in one chunk; fedavg ran them in two chunks, 1 first.
    # Per seed, pfedprox's mean over clients is 0.1 above fedavg's on every seed; paired
    # by position (seed 0 against seed 1) the difference would be -0.2 / +0.4.
    results = {"random": {
        "pfedprox": [_chunk([0, 1], [0.6, 0.6, 0.9, 0.9])],     # seed 0: 0.6, seed 1: 0.9
        "fedavg": [_chunk([1], [0.8, 0.8]), _chunk([0], [0.5, 0.5])]}}
    summary = summarise(results)
    per_seed = summary["splits"]["random"]["fedavg"]["deployed"]["mean_over_clients_per_seed"]
    assert per_seed["seeds"] == [1, 0] and per_seed["uf1"] == pytest.approx([0.8, 0.5])
    d = summary["paired"]["random"]["deployed"]["uf1"]["fedavg"]
    assert d["n"] == 2 and d["mean"] == pytest.approx(0.1) and d["wins"] == 2
    assert set(summary["paired"]["random"]) == {"deployed", "personal"}
    md = write_markdown(summary) + write_markdown(summary, "personal", header=False)
    assert "paired over seeds, pfedprox − other (deployed model" in md
    assert "paired over seeds, pfedprox − other (personal model" in md
    assert "| fedavg | +0.100" in md
    # two seeds of one sign: the interval excludes zero, but no star (p can't be < 0.5)
    assert d["excludes_zero"] and not d["significant"] and " *" not in md.split("| fedavg |")[1].split("\n")[0]
    assert "2 seeds paired, smallest possible p 0.5" in md
    # a split without pfedprox has no paired entry
    assert paired_comparison(summarise({"s": {"fedavg": [_chunk([0], [0.5, 0.5])]}})) == {}
