"""The utility–privacy curve's grid (scripts/dp_curve.py + its config): which runs it makes.

The curve's numbers come from `fedpsyau federate` (tested elsewhere); what can go wrong
here is the grid itself — a partition's own seeds or noise multipliers ignored, DP left
on for the no-DP point, or clipping-only (z = 0) refused.
"""
import importlib.util
from pathlib import Path

from fedpsyau_jax.config_loading import load_config

ROOT = Path(__file__).resolve().parent.parent


def _dp_curve():
    spec = importlib.util.spec_from_file_location("dp_curve", ROOT / "scripts" / "dp_curve.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_each_partition_gets_its_own_grid_and_seeds():
    dp_curve = _dp_curve()
    cfg = load_config(ROOT / "configs" / "fl_megc2019_dp_curve.py")
    by_dataset = dict(cfg.curve.partitions["by_dataset"])
    per_subject = dict(cfg.curve.partitions["per_subject"])
    assert [z for _, z in dp_curve.curve_settings(cfg, by_dataset)] == [None, 0.0, 0.1, 0.3, 1.0, 2.0, 4.0]
    assert [n for n, _ in dp_curve.curve_settings(cfg, per_subject)] == ["no_dp", "z_0", "z_1", "z_2", "z_4"]
    assert tuple(dp_curve.point_config(cfg, by_dataset, 1.0).protocol.seeds) == (0, 1)
    assert tuple(dp_curve.point_config(cfg, per_subject, 1.0).protocol.seeds) == (0,)


def test_point_config_sets_the_mechanism_of_each_point():
    dp_curve = _dp_curve()
    cfg = load_config(ROOT / "configs" / "fl_megc2019_dp_curve.py")
    part = dict(cfg.curve.partitions["per_subject"])
    c = dp_curve.point_config(cfg, part, 2.0)
    assert c.fl.dp.enabled and c.fl.dp.noise_multiplier == 2.0 and not c.fl.dp.allow_no_noise
    assert (c.fl.dp.sampling, c.fl.dp.rate) == ("poisson", 0.1)
    assert (c.partition.scheme, c.partition.num_clients, c.fl.rounds, c.train.batch_size) == ("per_subject", 68, 30, 8)
    assert dp_curve.point_config(cfg, part, 0.0).fl.dp.allow_no_noise
    # the per-person baseline: same sampling, nothing clipped, no noise
    base = dp_curve.point_config(cfg, part, None)
    assert base.fl.dp.enabled and base.fl.dp.noise_multiplier == 0.0 and base.fl.dp.allow_no_noise
    assert base.fl.dp.clip_norm >= 1e6 and (base.fl.dp.sampling, base.fl.dp.rate) == ("poisson", 0.1)
    # by_dataset's baseline is plain federation
    assert not dp_curve.point_config(cfg, dict(cfg.curve.partitions["by_dataset"]), None).fl.dp.enabled
    assert cfg.fl.dp.enabled                       # the grid copies; the loaded config is untouched


def test_an_unknown_point_is_refused_before_anything_runs(tmp_path, capsys):
    dp_curve = _dp_curve()
    out = tmp_path / "curve"
    rc = dp_curve.main([f"--config={ROOT / 'configs' / 'fl_megc2019_dp_curve.py'}", "--out", str(out),
                        "--partitions", "per_subject", "--points", "z_9"])
    assert rc == 2 and not out.exists()
    err = capsys.readouterr().err
    assert "unknown point(s) z_9" in err and "z_1" in err
