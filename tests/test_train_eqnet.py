"""EQ-Net stage 1 (train.tasks.eqnet): f_Q with a per-latent k-means head and the deployed
branched decoder g trained together on eq. 7 with sigma_u noise, k-means, g fine-tuned on
the quantized latents; g's own design takes the decoder from f_Q's run (from_run). Tiny
2x2 QPSK designs on real exact-ML LLRs (phy)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

import configs
from configs.schema import Design, validate_data
from train.run import fit_design, save_run
from train.tasks.eqnet import eq7_loss
from zoo import checkpoint
from zoo.registry import build_network

DATA = {"kind": "mimo_llr", "n_t": 2, "n_r": 2, "bits_per_symbol": 2,
        "snr_points": [0.0, 4.0, 8.0]}
RECIPE = {"samples": 8192, "epochs": 8, "batch_size": 256, "lr": 1.0e-2, "seed": 0}
COMMON = {"train": {"recipes": {"tiny": RECIPE}}, "export": {"golden_vectors": 10},
          "hw": {"target_fps": 1000}, "data": DATA}
FQ = {"name": "eqnet-fq-test", "family": "eqnet", "network": "encoder",
      "model": {"inputs": {"soft_bits": {"features": 4, "bits": 8, "scale_log2": -7}},
                "paths": {"latent": {"from": "soft_bits", "hidden": [16, 16],
                                     "out_features": 3,
                                     "head": {"kind": "kmeans", "activation": "tanh",
                                              "levels": 8, "noise_std": 0.001}}},
                "weight_bits": 6, "act_bits": 6}}
G = {"name": "eqnet-g-test", "family": "eqnet", "network": "decoder",
     "model": {"inputs": {"latent": {"kind": "codebook", "features": 3, "levels": 8,
                                     "bits": 8, "scale_log2": -7}},
               "paths": {"soft_bits": {"from": "latent", "hidden": [16], "branches": 4,
                                       "out_features": 1,
                                       "head": {"kind": "quant", "activation": "tanh",
                                                "bits": 8, "scale_log2": -7,
                                                "narrow": True}}},
               "weight_bits": 6, "act_bits": 6}}


FE = {"name": "eqnet-fe-test", "family": "eqnet", "network": "encoder",
      "model": {"inputs": {"y": {"features": 4, "bits": 8, "scale_log2": -5},
                           "H": {"features": 8, "bits": 8, "scale_log2": -5},
                           "noise_std": {"features": 1, "bits": 8, "scale_log2": -7}},
                "paths": {"latent": {"from": ["y", "H", "noise_std"],
                                     "input_layers": {"y": 16, "H": 16, "noise_std": 4},
                                     "hidden": [24], "residual_blocks": 1,
                                     "out_features": 3,
                                     "head": {"kind": "kmeans", "activation": "tanh",
                                              "levels": 8}}},
                "weight_bits": 6, "act_bits": 6}}


def _design(base: dict[str, Any], **train: Any) -> dict[str, Any]:
    d = copy.deepcopy({**COMMON, **base})
    d["train"].update(train)
    return d


@pytest.fixture(scope="module")
def stage1(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("cfg")
    (root / "designs").mkdir()
    fq = _design(FQ, task="eqnet_stage1", decoder_design=G["name"], loss_eps=1.0e-6,
                 finetune_epochs=2)
    g = _design(G, task="from_run", source={"design": FQ["name"], "key": "decoder"})
    for d in (fq, g):
        validate_data(d, Design, root / f"{d['name']}.yaml", "design")
        (root / "designs" / f"{d['name']}.yaml").write_text(yaml.safe_dump(d))
    mp = pytest.MonkeyPatch()
    mp.setattr(configs, "CONFIG_DIR", root)
    mp.setattr(checkpoint, "RUNS", root / "runs")
    torch.set_num_threads(1)
    run = fit_design(fq, "tiny")
    save_run(fq, "tiny", run, root / "runs" / FQ["name"])
    g_run = fit_design(g, "tiny")
    save_run(g, "tiny", g_run, root / "runs" / G["name"])
    fe = _design(FE, task="eqnet_stage2", teacher_design=FQ["name"])
    validate_data(fe, Design, root / f"{fe['name']}.yaml", "design")
    fe_run = fit_design(fe, "tiny")
    joint = _design(FE, task="eqnet_joint", decoder_design=G["name"], loss_eps=1.0e-6)
    validate_data(joint, Design, root / f"{joint['name']}.yaml", "design")
    joint_run = fit_design(joint, "tiny")
    yield {"fq": fq, "g": g, "fe": fe, "run": run, "g_run": g_run, "fe_run": fe_run,
           "joint_run": joint_run, "root": root}
    mp.undo()


def test_eq7_weights_each_bit_and_its_certainty() -> None:
    x = torch.tensor([[0.5, -1.0]])
    x_hat = torch.tensor([[0.0, -0.5]])
    w = torch.tensor([0.25, 0.75])
    want = 0.25 * 0.25 / (0.5 + 1e-6) + 0.75 * 0.25 / (1.0 + 1e-6)
    assert eq7_loss(x, x_hat, w, 1e-6).item() == pytest.approx(want, rel=1e-6)


def test_stage1_trains_quantizes_and_fine_tunes(stage1: dict[str, Any]) -> None:
    rows = stage1["run"].result.history
    h = {row["phase"]: row for row in rows}
    assert list(h) == ["init", "epoch", "joint", "kmeans", "finetune"]
    assert [r["epoch"] for r in rows if r["phase"] == "epoch"] == list(
        range(1, RECIPE["epochs"] + 1))
    assert h["joint"]["val_loss"] < 0.5 * h["init"]["val_loss"]
    assert h["kmeans"]["val_loss"] != h["joint"]["val_loss"]  # the quantizer is in the loop
    # Far below a decoder that always says 0 (no information).
    assert h["finetune"]["val_softbit_mse"] < 0.3 * h["finetune"]["val_softbit_power"]
    w = np.array(stage1["run"].result.metrics["bit_weights"])
    assert w.sum() == pytest.approx(1.0) and np.all(w > 0)


def test_codes_chain_through_the_two_contracts(stage1: dict[str, Any]) -> None:
    """f_Q's indices -> g's codes equals the float path g(f_Q(x)), exactly: the k-means
    levels (per latent) are what g's lookup table holds, on its grid."""
    f, g = stage1["run"].net.eval(), stage1["g_run"].net.eval()
    fs, gs = f.iospec(), g.iospec()
    lv = f.heads["latent"].levels.numpy()
    assert np.all(np.diff(lv, axis=1) > 0) and fs.outputs[0].per_feature
    np.testing.assert_array_equal(g.input_quant["latent"].table.numpy(),
                                  np.round(lv / 2 ** -7))
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (3000, 4))
    idx = f.output_codes(soft_bits=torch.from_numpy(x).float())["latent"]
    out = g.output_codes(latent=idx)["soft_bits"].numpy()
    z = f(torch.from_numpy(fs.inputs[0].to_float(x)))
    want = gs.outputs[0].to_codes(g(z).detach().numpy())
    np.testing.assert_array_equal(out, want)
    # The contract's own float rule for g's input: f_Q's levels -> the same indices.
    np.testing.assert_array_equal(gs.inputs[0].to_codes(gs.inputs[0].to_float(idx.numpy())),
                                  idx.numpy())
    assert len(np.unique(out)) > 20


def test_from_run_takes_the_decoder_and_refuses_a_stranger(stage1: dict[str, Any]) -> None:
    ckpt = torch.load(stage1["root"] / "runs" / FQ["name"] / "checkpoint.pt",
                      weights_only=False)
    assert ckpt["decoder_design"] == G["name"]
    for k, v in stage1["g_run"].net.state_dict().items():
        assert torch.equal(v, ckpt["decoder"][k]), k
    other = _design({**G, "name": "eqnet-g-other"}, task="from_run",
                    source={"design": FQ["name"], "key": "decoder"})
    with pytest.raises(ValueError, match="trained as design 'eqnet-g-test', not "
                                         "'eqnet-g-other'"):
        fit_design(other, "tiny")
    ckpt_old = stage1["root"] / "runs" / "old-fq" / "checkpoint.pt"
    ckpt_old.parent.mkdir(parents=True)
    torch.save({"design": "old-fq", "decoder": {"net.0.weight": torch.zeros(48, 6)}}, ckpt_old)
    old = _design(G, task="from_run", source={"design": "old-fq", "key": "decoder"})
    with pytest.raises(ValueError, match=r"'decoder' does not fit design 'eqnet-g-test'.s "
                                         r"network .*retrain 'old-fq'"):
        fit_design(old, "tiny")
    missing = _design({**G, "name": "eqnet-g-test"}, task="from_run",
                      source={"design": "nowhere", "key": "decoder"})
    with pytest.raises(FileNotFoundError, match="make train DESIGN=nowhere"):
        fit_design(missing, "tiny")


def test_stage1_refuses_a_decoder_that_does_not_chain(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "designs").mkdir()
    bad = _design(G, task="from_run", source={"design": FQ["name"], "key": "decoder"})
    bad["model"]["inputs"]["latent"]["levels"] = 16
    (tmp_path / "designs" / f"{G['name']}.yaml").write_text(yaml.safe_dump(bad))
    monkeypatch.setattr(configs, "CONFIG_DIR", tmp_path)
    fq = _design(FQ, task="eqnet_stage1", decoder_design=G["name"], loss_eps=1.0e-6)
    with pytest.raises(ValueError, match=r"decoder input 'latent' has 3 features x 16 "
                                         r"levels; the encoder's 'latent' has 3 x 8"):
        fit_design(fq, "tiny")


def test_g_exports_with_f_q_indices_as_its_channel_vectors(stage1: dict[str, Any]) -> None:
    """Export of g: its channel golden vectors are f_Q's indices on f_Q's data (read from
    f_Q's run), and the QONNX model computes exactly g's codes on every golden set."""
    from export.golden import build_golden, channel_inputs
    from export.qonnx_export import export_codes_model
    from hw.verify import execute_codes
    from zoo.datasets import design_data

    mp = pytest.MonkeyPatch()
    mp.setattr(configs, "CONFIG_DIR", stage1["root"])
    mp.setattr(checkpoint, "RUNS", stage1["root"] / "runs")
    try:
        f, g = stage1["run"].net.eval(), stage1["g_run"].net.eval()
        spec = g.iospec()
        x = channel_inputs(stage1["g"], spec, 500, seed=7)
        data = design_data(stage1["fq"], 500, seed=7)
        want = f.output_codes(soft_bits=torch.from_numpy(
            f.iospec().inputs[0].to_codes(data["soft_bits"])).float())["latent"].numpy()
        np.testing.assert_array_equal(spec.inputs[0].to_codes(x["latent"]), want)
        golden = build_golden(g, x, n_ties=200)
        assert set(np.unique(golden.sets)) == {"channel", "ties", "extremes"}
        path = stage1["root"] / "export" / "model_qonnx.onnx"
        export_codes_model(g, path)
        got = execute_codes(path, golden.inputs, {"soft_bits": 2.0 ** -7}, "qonnx")
        np.testing.assert_array_equal(got["soft_bits"], golden.outputs["soft_bits"])
        bad = {**stage1["g"], "train": {**stage1["g"]["train"], "source": None}}
        with pytest.raises(KeyError, match=r"inputs \['latent'\] are not features"):
            channel_inputs(bad, spec, 10, seed=0)
    finally:
        mp.undo()


def test_stage2_learns_f_q_latents_and_shares_its_quantizer(stage1: dict[str, Any]) -> None:
    """f_E (y, H, sigma through per-input layers and a residual block) learns f_Q's latent
    manifold by L1, takes f_Q's k-means quantizer, and its indices feed the same g: the
    joint mode, exactly through the contracts."""
    h = {row["phase"]: row for row in stage1["fe_run"].result.history}
    assert h["trained"]["val_l1"] < 0.6 * h["init"]["val_l1"]
    # End to end through the frozen g: below knowing nothing (soft-bit power 0.78); the
    # teacher's row is f_Q's own stage-1 result on the same validation samples.
    assert h["trained"]["val_e2e_softbit_mse"] < 0.7 * 0.78
    fq_final = stage1["run"].result.history[-1]["val_loss"]
    assert h["trained"]["teacher_e2e_loss"] == pytest.approx(fq_final, rel=1e-5)
    f, fe, g = stage1["run"].net.eval(), stage1["fe_run"].net.eval(), stage1["g_run"].net
    assert torch.equal(fe.heads["latent"].levels, f.heads["latent"].levels)
    fe_out, f_out = fe.iospec().outputs[0], f.iospec().outputs[0]
    assert fe_out.codebook == f_out.codebook and fe_out.per_feature
    assert fe_out.datatype == g.iospec().inputs[0].datatype == "UINT3"
    rng = np.random.default_rng(2)
    codes = {t.name: torch.from_numpy(rng.integers(-100, 100, (2000, t.features))).float()
             for t in fe.iospec().inputs}
    idx = fe.output_codes(**codes)["latent"]
    out = g.eval().output_codes(latent=idx)["soft_bits"].numpy()
    floats = [torch.from_numpy(t.to_float(codes[t.name].numpy().astype(np.int64)))
              for t in fe.iospec().inputs]
    want = g.iospec().outputs[0].to_codes(g(fe(*floats)).detach().numpy())
    np.testing.assert_array_equal(out, want)


def test_stage2_refuses_a_head_that_is_not_f_q_quantizer(stage1: dict[str, Any]) -> None:
    bad = _design(FE, task="eqnet_stage2", teacher_design=FQ["name"])
    bad["model"]["paths"]["latent"]["head"]["levels"] = 16
    mp = pytest.MonkeyPatch()
    mp.setattr(configs, "CONFIG_DIR", stage1["root"])
    mp.setattr(checkpoint, "RUNS", stage1["root"] / "runs")
    try:
        with pytest.raises(ValueError, match=r"must be a kmeans head of 3 features x 8 "
                                             r"levels, as f_Q 'eqnet-fq-test'"):
            fit_design(bad, "tiny")
    finally:
        mp.undo()


def test_joint_baseline_and_stage2_record_fig3_curves(stage1: dict[str, Any]) -> None:
    """Fig. 3's data: both flows record the validation eq. 7 after every epoch (stage 2:
    end to end through f_Q's quantizer and the frozen g; the joint baseline: through its
    own g, unquantized). The joint baseline ends with a deployable f_E + g pair whose
    indices chain exactly, as stage 1's."""
    two = [r["val_e2e_loss"] for r in stage1["fe_run"].result.history if r["phase"] == "epoch"]
    one = [r["val_loss"] for r in stage1["joint_run"].result.history if r["phase"] == "epoch"]
    assert len(two) == len(one) == RECIPE["epochs"] and all(np.isfinite(two + one))
    rows = {r["phase"]: r for r in stage1["joint_run"].result.history}
    assert rows["joint"]["val_loss"] < 0.8 * rows["init"]["val_loss"]
    fe = stage1["joint_run"].net.eval()
    g = build_network(_design(G))
    g.load_state_dict(stage1["joint_run"].result.extras["decoder"])
    g.eval()
    np.testing.assert_array_equal(g.input_quant["latent"].table.numpy(),
                                  np.round(fe.heads["latent"].levels.numpy() / 2 ** -7))
    rng = np.random.default_rng(4)
    codes = {t.name: torch.from_numpy(rng.integers(-100, 100, (1000, t.features))).float()
             for t in fe.iospec().inputs}
    out = g.output_codes(latent=fe.output_codes(**codes)["latent"])["soft_bits"].numpy()
    floats = [torch.from_numpy(t.to_float(codes[t.name].numpy().astype(np.int64)))
              for t in fe.iospec().inputs]
    np.testing.assert_array_equal(out, g.iospec().outputs[0].to_codes(
        g(fe(*floats)).detach().numpy()))


def test_sweep_float_curve_runs_f_q_and_the_deployed_g(stage1: dict[str, Any],
                                                       tmp_path: Path) -> None:
    """A sweep's float curve on an eqnet_stage1 f_Q: LLR -> tanh(L/2) -> f_Q (k-means
    levels) -> the deployed g from the run's checkpoint -> 2 atanh(s), exactly the nets
    of this test; resolved and probed from a sweep YAML like any curve."""
    from sweep.config import load_sweep, resolve
    from sweep.processing import get_processing
    from tests.test_sweep import write_sweep

    run_dir = stage1["root"] / "runs" / FQ["name"]
    path = write_sweep(tmp_path, "fq-float", link={"n_t": 2, "n_r": 2, "bits_per_symbol": 2,
                                                   "channel": "rayleigh"},
                       curves=[{"label": "f_Q + g", "mode": "float", "design": FQ["name"],
                                "run": str(run_dir)}])
    (curve,) = resolve(load_sweep(path), path)
    proc = get_processing(curve)
    llr = np.random.default_rng(9).normal(0, 6, (500, 4))
    f, g = stage1["run"].net.eval(), stage1["g_run"].net.eval()
    with torch.no_grad():
        s = torch.from_numpy(np.tanh(llr / 2).astype(np.float32))
        s_hat = g(f(s)).numpy().astype(np.float64)
    s_max = np.tanh(20 / 2)
    np.testing.assert_array_equal(proc(llr), 2 * np.arctanh(np.clip(s_hat, -s_max, s_max)))
