"""The baseline flow networks (STSTNet, Off-ApexNet, SSSNet): their published shapes,
padding examples that change nothing, training and export through the CLI, predict on a
real clip, and the federated simulator."""
import json
from pathlib import Path

import jax
import numpy as np
import pytest

from fedpsyau_jax.network.baselines import ARCHITECTURES, BASELINES
from fedpsyau_jax.network.model import FedPsyAU, count_params, example_batch, has_au_branch, init_variables

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "tests" / "fixtures" / "faces" / "single_face.mp4"


def _model(name: str, classes: int = 3) -> FedPsyAU:
    return FedPsyAU(num_classes=classes, use_au_branch=False, architecture=name)


def test_published_layer_shapes():
    p = {n: init_variables(_model(n, 5), jax.random.PRNGKey(0))["params"][n] for n in BASELINES}
    # STSTNet: 3/5/8 filters of 3×3, 5·5·16 = 400 features into one Dense layer
    assert [p["ststnet"][f"conv{i}"]["kernel"].shape for i in (1, 2, 3)] == [(3, 3, 3, 3), (3, 3, 3, 5), (3, 3, 3, 8)]
    assert p["ststnet"]["classifier"]["kernel"].shape == (400, 5)
    assert count_params(p["ststnet"]) == (27 + 1) * 16 + 2 * 16 + 400 * 5 + 5  # convs, BN, Dense
    # Off-ApexNet: one stream per flow component, 5×5 convs of 6 and 16, 2·784 -> 1024 -> 1024
    assert p["offapexnet"]["horizontal_conv1"]["kernel"].shape == (5, 5, 1, 6)
    assert p["offapexnet"]["vertical_conv2"]["kernel"].shape == (5, 5, 6, 16)
    assert p["offapexnet"]["dense1"]["kernel"].shape == (2 * 7 * 7 * 16, 1024)
    assert p["offapexnet"]["classifier"]["kernel"].shape == (1024, 5)
    # SSSNet on 28×28: 32 5×5 filters, 64 3×3 filters, 3·3·64 -> 256
    assert p["sssnet"]["conv1"]["kernel"].shape == (5, 5, 3, 32)
    assert p["sssnet"]["dense1"]["kernel"].shape == (3 * 3 * 64, 256)


@pytest.mark.parametrize("name", list(BASELINES))
def test_padding_examples_change_neither_outputs_nor_statistics(name):
    model = _model(name)
    v = init_variables(model, jax.random.PRNGKey(1))
    real = example_batch(4, seed=2)
    junk = example_batch(3, seed=3)
    padded = {k: np.concatenate([real[k], 100 * junk[k]]) for k in real}
    padded["example_mask"] = np.array([1, 1, 1, 1, 0, 0, 0], np.float32)

    def run(batch):
        # the same dropout mask on the real rows needs the same batch size: compare in
        # eval mode for outputs, in train mode (no dropout key needed at rate 0) for BN
        (out, _, _), upd = model.apply(v, batch, 0.0, train=True, mutable=["batch_stats"],
                                       rngs={"dropout": jax.random.PRNGKey(0)})
        return upd["batch_stats"]

    if "batch_stats" in v and v["batch_stats"]:
        a = run(dict(real, example_mask=np.ones(4, np.float32)))
        b = run(padded)
        jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), a, b)
    e_real = model.apply(v, real, 0.0, train=False)[0]
    e_pad = model.apply(v, padded, 0.0, train=False)[0][:4]
    np.testing.assert_allclose(e_real, e_pad, rtol=1e-5, atol=1e-6)


def test_names_and_the_au_branch():
    assert ARCHITECTURES == ("fedpsyau", "ststnet", "offapexnet", "sssnet")
    assert has_au_branch({"name": "fedpsyau", "use_au_branch": True})
    assert not has_au_branch({"name": "sssnet", "use_au_branch": True})
    out = _model("sssnet").apply(init_variables(_model("sssnet"), jax.random.PRNGKey(0)), example_batch(2), 0.3)
    assert out[0].shape == (2, 3) and out[1] is None and out[2] is None
    with pytest.raises(ValueError, match="model name 'resnet'"):
        _model("resnet").apply({}, example_batch(2), 0.3)


def test_an_unknown_model_name_is_one_line_before_any_work(tmp_path, capsys):
    from fedpsyau_jax.cli import main

    rc = main(["train", "--config", str(ROOT / "configs" / "synthetic_demo.py"),
               "--config.model.name=resnet", "--workdir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "model.name" in err[0] and "ststnet" in err[0]
    assert not (tmp_path / "run").exists()


def test_a_baseline_trains_through_the_cli_and_predict_uses_its_export(tmp_path, capsys):
    from fedpsyau_jax.cli import main

    wd = tmp_path / "run"
    assert main(["train", "--config", str(ROOT / "configs" / "synthetic_demo.py"), "--config.model.name=ststnet",
                 "--config.train.epochs=3", "--config.data.kwargs.num_subjects=3", "--workdir", str(wd),
                 "--no-progress"]) == 0
    capsys.readouterr()
    meta = json.loads((wd / "final_model" / "metadata.json").read_text())
    assert meta["architecture"] == "ststnet" and meta["use_au_branch"] is False
    assert "pretrain_epoch" not in (wd / "metrics.jsonl").read_text()
    # the loss went down: the network trains
    ce = [json.loads(line)["ce"] for line in (wd / "metrics.jsonl").read_text().splitlines()
          if '"event": "epoch"' in line and '"fold": "all"' in line]
    assert len(ce) == 3 and ce[-1] < ce[0]
    assert main(["predict", "--video", str(CLIP), "--onset", "0", "--apex", "35",
                 "--checkpoint", str(wd / "final_model"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    probs = np.array(list(out["emotion_prob"].values()))
    assert len(probs) == 3 and probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert not out.get("au_prob")
    assert main(["predict", "--video", str(CLIP), "--onset", "0", "--apex", "35",
                 "--checkpoint", str(wd / "final_model")]) == 0
    assert "STSTNet" in capsys.readouterr().out


def test_a_baseline_federates_in_the_simulator(tmp_path, capsys):
    from fedpsyau_jax.cli import main

    wd = tmp_path / "fl"
    assert main(["federate", "--config", str(ROOT / "configs" / "fl_synthetic.py"), "--config.model.name=sssnet",
                 "--config.fl.algorithms=('fedrep',)", "--config.protocol.seeds=(0,)", "--workdir", str(wd),
                 "--no-progress"]) == 0
    result = json.loads((wd / "random" / "fedrep" / "seeds_0-0" / "result.json").read_text())
    assert result["algorithm"] == "fedrep" and len(result["loss_per_round"]) == 2
    assert json.loads((wd / "config.json").read_text())["model"]["name"] == "sssnet"


def test_compiled_programs_are_kept_apart_per_network():
    """Two runs in one process that differ only in the network must not share compiled
    fold programs (a baseline's programs once trained the next FED-PsyAU run)."""
    from fedpsyau_jax.config_loading import base_config
    from fedpsyau_jax.training.fold_training import get_programs
    from fedpsyau_jax.training.settings import settings_from_config

    s = settings_from_config(base_config())
    a, b = get_programs(_model("ststnet"), s), get_programs(_model("fedpsyau"), s)
    assert a.model.architecture == "ststnet" and b.model.architecture == "fedpsyau"


@pytest.mark.parametrize("size,pad,channels", [(3, 2, 3), (5, 0, 2)])
def test_convolution_as_matmul_equals_the_convolution(size, pad, channels):
    """STSTNet computes its convolutions as one matmul over shifted copies (faster on CPU)."""
    from fedpsyau_jax.network.baselines import conv_as_matmul

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 28, 28, channels)).astype(np.float32)
    kernel = rng.standard_normal((size, size, channels, 7)).astype(np.float32)
    bias = rng.standard_normal(7).astype(np.float32)
    want = jax.lax.conv_general_dilated(x, kernel, (1, 1), ((pad, pad), (pad, pad)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC")) + bias
    np.testing.assert_allclose(conv_as_matmul(x, kernel, bias, pad), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["sssnet"])
def test_baselines_convolutions_as_matmul_match_flax_conv(name, monkeypatch):
    """SSSNet computes its convolutions as matmuls: the same parameters
    (names, shapes, initial values) and outputs as the same network with ``nn.Conv``."""
    import flax.linen as nn

    from fedpsyau_jax.network import baselines

    x = jax.random.normal(jax.random.key(1), (4, 28, 28, 3))

    def run():
        module = baselines.BASELINES[name](num_classes=3)
        variables = module.init(jax.random.key(0), x, train=False)
        return variables, module.apply(variables, x, train=False)

    got_vars, got = run()
    monkeypatch.setattr(baselines, "_conv", lambda x, f, k, pad, n: nn.Conv(f, (k, k), padding=pad, name=n)(x))
    want_vars, want = run()
    assert jax.tree.structure(got_vars) == jax.tree.structure(want_vars)
    for a, b in zip(jax.tree.leaves(got_vars), jax.tree.leaves(want_vars), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
