"""Optical flow, strain and encoding (data_pipelines.optical_flow) on analytic inputs."""
import cv2
import numpy as np
import pytest

from data_pipelines import optical_flow as of


def _grid(h=32, w=40):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    return x, y


def test_strain_of_linear_field_is_exact_everywhere():
    x, y = _grid()
    a, b, c, d = 0.3, -0.2, 0.5, 0.1   # u = a x + b y, v = c x + d y
    flow = np.dstack([a * x + b * y, c * x + d * y])
    expect = np.sqrt(a ** 2 + d ** 2 + 2 * ((b + c) / 2) ** 2)
    s = of.optical_strain(flow)
    assert s.shape == (32, 40) and s.dtype == np.float32
    np.testing.assert_allclose(s, expect, rtol=1e-5)


def test_strain_of_quadratic_field_matches_formula_inside():
    # u = x^2 / 10, v = x y / 10: exx = x/5, eyy = x/10, exy = (0 + y/10) / 2.
    # Central differences are exact for quadratics, so interior pixels must match.
    x, y = _grid()
    s = of.optical_strain(np.dstack([x ** 2 / 10, x * y / 10]))
    expect = np.sqrt((x / 5) ** 2 + (x / 10) ** 2 + 2 * (y / 20) ** 2)
    np.testing.assert_allclose(s[1:-1, 1:-1], expect[1:-1, 1:-1], rtol=1e-5, atol=1e-6)
    # Swapping the roles of x and y must change the answer (axes are not mixed up).
    s_t = of.optical_strain(np.dstack([y ** 2 / 10, x * y / 10]))
    assert not np.allclose(s_t[1:-1, 1:-1], expect[1:-1, 1:-1])


def test_strain_rejects_bad_shape():
    with pytest.raises(ValueError, match="expects"):
        of.optical_strain(np.zeros((8, 8, 3)))


def test_minmax_encoding_spans_unit_interval_per_channel():
    rng = np.random.default_rng(0)
    x = np.dstack([rng.normal(5, 3, (16, 16)), rng.uniform(-100, -90, (16, 16)), rng.exponential(1, (16, 16))])
    enc, const = of.minmax_encode(x)
    assert enc.dtype == np.float32 and not const.any()
    np.testing.assert_allclose(enc.min(axis=(0, 1)), 0.0)
    np.testing.assert_allclose(enc.max(axis=(0, 1)), 1.0)
    # Order within a channel is preserved (monotone map).
    i = np.argsort(x[..., 0], axis=None)
    assert np.all(np.diff(enc[..., 0].ravel()[i]) >= 0)


def test_constant_channel_maps_to_zero_and_is_flagged():
    x = np.dstack([np.linspace(0, 1, 64).reshape(8, 8), np.full((8, 8), 3.7), np.zeros((8, 8))])
    enc, const = of.minmax_encode(x)
    assert const.tolist() == [False, True, True]
    assert np.all(np.isfinite(enc))
    assert np.all(enc[..., 1:] == 0.0)
    with pytest.raises(ValueError, match="NaN"):
        of.minmax_encode(np.full((4, 4, 1), np.nan))


def test_flow_features_shapes_and_ranges():
    x, y = _grid(128, 128)
    flow = np.dstack([np.sin(x / 9.0), np.cos(y / 7.0) * 2]).astype(np.float32)
    f = of.flow_features(flow)
    assert f["flow128"].shape == (128, 128, 3) and f["flow128"].dtype == np.float32
    assert f["flow28"].shape == (28, 28, 3) and f["flow28"].dtype == np.float32
    for k in ("flow128", "flow28"):
        np.testing.assert_allclose(f[k].min(axis=(0, 1)), 0.0, atol=1e-6)
        np.testing.assert_allclose(f[k].max(axis=(0, 1)), 1.0, atol=1e-6)
    np.testing.assert_allclose(f["strain_raw"], of.optical_strain(flow))
    # flow28 is the area-resized raw flow, then min-max: compare with doing it by hand.
    small = cv2.resize(np.dstack([flow, f["strain_raw"]]), (28, 28), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(f["flow28"], of.minmax_encode(small)[0], atol=1e-6)


def test_tvl1_recovers_a_known_shift():
    rng = np.random.default_rng(1)
    tex = cv2.GaussianBlur(rng.uniform(0, 255, (128, 128)), (0, 0), 2.0)
    tex = cv2.normalize(tex, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    moved = np.roll(tex, 2, axis=1)                       # content moves +2 px in x
    flow = of.tvl1_flow(tex, moved)
    assert flow.shape == (128, 128, 2) and flow.dtype == np.float32
    inner = flow[16:-16, 16:-16]
    assert abs(np.median(inner[..., 0]) - 2.0) < 0.3
    assert abs(np.median(inner[..., 1])) < 0.3
    with pytest.raises(ValueError, match="uint8"):
        of.tvl1_flow(tex.astype(np.float32), moved)


def test_average_flows():
    a, b = np.zeros((4, 4, 2)), np.ones((4, 4, 2))
    np.testing.assert_allclose(of.average_flows([a, b, b]), 2 / 3)
    with pytest.raises(ValueError):
        of.average_flows([a, np.zeros((5, 4, 2))])
    with pytest.raises(ValueError):
        of.average_flows([])
