"""The zoo's composable blocks (zoo.network.QuantNet from a config): parallel branches on
one input, a concatenation of inputs on one shared quantizer, residual blocks with a
shared quantizer, BatchNorm, Tanh/Sigmoid heads and a codebook head. Each network keeps
the contract: ``output_codes`` is exactly what ``forward`` dequantizes, and the exported
QONNX model computes exactly the Brevitas codes. Topologies the compiler cannot map yet
are refused by node name (the compiler issue maps them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from qonnx.core.modelwrapper import ModelWrapper

import configs
import hw  # noqa: F401  (offline FINN bootstrap)
from configs import ConfigError, load_board
from configs.schema import Design as DesignSchema
from configs.schema import validate_data
from export.golden import build_golden
from export.qonnx_export import export_codes_model
from hw.build import compile_and_verify
from hw.verify import execute_codes
from zoo.network import CodebookHead, CodebookInput, KMeansHead, QuantNet
from zoo.registry import build_network

IN8 = {"bits": 8, "scale_log2": -7}
TANH6 = {"kind": "quant", "activation": "tanh", "bits": 6, "scale_log2": -5, "narrow": True}
NETS: dict[str, dict[str, Any]] = {
    "branches_and_concat": {
        "inputs": {"a": {"features": 6, **IN8}, "b": {"features": 4, **IN8}},
        "paths": {"p": {"from": ["a", "b"], "hidden": [12], "out_features": 3, "head": TANH6},
                  "q": {"from": "a", "hidden": [8], "out_features": 2,
                        "head": {"kind": "quant", "activation": "sigmoid", "bits": 6,
                                 "scale_log2": -6}}}},
    "residual_batchnorm": {
        "inputs": {"x": {"features": 8, **IN8}},
        "paths": {"y": {"from": "x", "hidden": [16], "residual_blocks": 2, "out_features": 4,
                        "head": TANH6}},
        "batch_norm": True},
    "codebook": {
        "inputs": {"x": {"features": 6, **IN8}},
        "paths": {"z": {"from": "x", "hidden": [12], "out_features": 3,
                        "head": {"kind": "codebook", "activation": "tanh", "bits": 8,
                                 "scale_log2": -7, "levels": 6}}}},
    # EQ-Net g: k-means indices in (one table per latent), N branches of one soft bit each.
    "g_branches_codebook_input": {
        "inputs": {"z": {"kind": "codebook", "features": 3, "levels": 6, **IN8}},
        "paths": {"s": {"from": "z", "hidden": [8, 8], "branches": 4, "out_features": 1,
                        "head": TANH6}}},
    # EQ-Net f_E: inputs on three grids, one Dense each, joined; a residual block; a
    # per-feature k-means latent quantizer.
    "fe_input_layers_kmeans": {
        "inputs": {"y": {"features": 4, **IN8}, "H": {"features": 8, "bits": 8,
                                                       "scale_log2": -5},
                   "sigma": {"features": 1, "bits": 6, "scale_log2": -6}},
        "paths": {"latent": {"from": ["y", "H", "sigma"],
                             "input_layers": {"y": 8, "H": 8, "sigma": 4}, "hidden": [12],
                             "residual_blocks": 1, "out_features": 3,
                             "head": {"kind": "kmeans", "activation": "tanh", "levels": 8}}}},
}


def build(name: str) -> QuantNet:
    cfg = NETS[name]
    torch.manual_seed(0)
    net = QuantNet(cfg["inputs"], cfg["paths"], 4, 4, 16, cfg.get("batch_norm", False))
    net.train()
    with torch.no_grad():
        for _ in range(4):
            net(*[torch.randn(256, d["features"]) * 0.5 for d in cfg["inputs"].values()])
    net.eval()
    for q in net.input_quant.values():
        if isinstance(q, CodebookInput):  # k-means-like levels: uneven, per feature
            q.set_levels(np.sort(np.random.default_rng(3).uniform(-1, 1, q.table.shape), 1))
    for o, head in net.heads.items():
        with torch.no_grad():
            x = {n: torch.randn(2000, d["features"]) * 0.5 for n, d in cfg["inputs"].items()}
            if isinstance(head, CodebookHead):
                head.fit(head.quantized(net._pre(x)[o]).value.reshape(-1))
            if isinstance(head, KMeansHead):
                head.fit(head._act(net._pre(x)[o]))
    return net


def codes(net: QuantNet, n: int = 3000, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    hi = {t.name: t.dtype.max if t.codebook is None else t.dtype.min + t.table().shape[1] - 1
          for t in net.iospec().inputs}
    return {t.name: rng.integers(t.dtype.min, hi[t.name] + 1, (n, t.features))
            for t in net.iospec().inputs}


@pytest.mark.parametrize("name", sorted(NETS))
def test_codes_are_what_forward_dequantizes(name: str) -> None:
    net = build(name)
    spec = net.iospec()
    c = codes(net)
    got = net.output_codes(**{k: torch.from_numpy(v).float() for k, v in c.items()})
    floats = net(*[torch.from_numpy(t.to_float(c[t.name])) for t in spec.inputs])
    floats = floats if isinstance(floats, tuple) else (floats,)
    for t, f in zip(spec.outputs, floats, strict=True):
        np.testing.assert_array_equal(t.to_float(got[t.name].numpy()), f.detach().numpy())
    assert any(len(np.unique(v.numpy())) > 2 for v in got.values())  # not a constant net


@pytest.mark.parametrize("name", sorted(NETS))
def test_exported_qonnx_is_bit_exact(name: str, tmp_path: Path) -> None:
    net = build(name)
    export_codes_model(net, tmp_path / "model_qonnx.onnx")
    spec = net.iospec()
    c = codes(net)
    want = {k: v.numpy().astype(np.int64) for k, v in net.output_codes(
        **{k: torch.from_numpy(v).float() for k, v in c.items()}).items()}
    scales = {t.name: t.scale if t.scale is not None else 1.0 for t in spec.outputs}
    got = execute_codes(tmp_path / "model_qonnx.onnx", c, scales, "qonnx")
    for o in want:
        np.testing.assert_array_equal(got[o], want[o], err_msg=o)


@pytest.mark.parametrize("name", ["branches_and_concat", "residual_batchnorm",
                                  "g_branches_codebook_input", "fe_input_layers_kmeans"])
def test_branched_and_residual_zoo_nets_map_to_rtl_layers(name: str, tmp_path: Path) -> None:
    """A concatenation of branches and a residual block with BatchNorm (QuantNet from a
    config) reach FINN's HW layers, every one an RTL variant (hw.custom_ops for the fork,
    concat and add), bit-exact at every stage on tie-heavy vectors."""
    net = build(name)
    export_codes_model(net, tmp_path / "model_qonnx.onnx")
    rng = np.random.default_rng(0)
    g = build_golden(net, {t.name: rng.uniform(-1, 1, (600, t.features))
                           for t in net.iospec().inputs}, n_ties=400)
    res = compile_and_verify(tmp_path / "model_qonnx.onnx", tmp_path / "b",
                             {"hw": {"target_fps": 100_000}}, load_board("pynq-z2"),
                             g.inputs, g.outputs)
    for stage, row in res["verification"].items():
        assert row["vectors"] >= 1000 and row["mismatches"] == 0, (stage, row)
    ops = [n.op_type for n in ModelWrapper(str(res["final_model"])).graph.node]
    assert ops and all(op.endswith("_rtl") for op in ops), ops


def test_schema_refuses_a_concat_across_grids(tmp_path: Path) -> None:
    design = {"name": "x", "family": "synthetic", "network": "two_io",
              "data": {"kind": "synthetic_teacher"},
              "model": {"inputs": {"a": {"features": 2, **IN8},
                                   "b": {"features": 2, "bits": 6, "scale_log2": -4}},
                        "paths": {"p": {"from": ["a", "b"], "hidden": [], "out_features": 1,
                                        "head": TANH6}},
                        "weight_bits": 4, "act_bits": 4},
              "train": {"recipes": {"short": {"samples": 64, "epochs": 1, "batch_size": 32,
                                              "lr": 1.0e-3, "seed": 0}}},
              "export": {"golden_vectors": 10}, "hw": {"target_fps": 1000}}
    with pytest.raises(ConfigError, match=r"model\.paths\.p\.from.*same bits and scale_log2"):
        validate_data(design, DesignSchema, tmp_path / "x.yaml", "design")
    design["model"]["inputs"]["b"] = {"features": 2, **IN8}  # positive control
    validate_data(design, DesignSchema, tmp_path / "x.yaml", "design")


@pytest.mark.parametrize("name", ["g_branches_codebook_input", "fe_input_layers_kmeans"])
def test_schema_accepts_the_eqnet_blocks_and_builds_them(name: str, tmp_path: Path) -> None:
    """A design YAML's model section with codebook inputs, branches, input_layers across
    grids and a k-means head validates, and the registry builds the same network."""
    from zoo.registry import build_network

    design = {"name": "x", "family": "synthetic", "network": "two_io",
              "data": {"kind": "synthetic_teacher"},
              "model": {**NETS[name], "weight_bits": 4, "act_bits": 4},
              "train": {"recipes": {"short": {"samples": 64, "epochs": 1, "batch_size": 32,
                                              "lr": 1.0e-3, "seed": 0}}},
              "export": {"golden_vectors": 10}, "hw": {"target_fps": 1000}}
    validate_data(design, DesignSchema, tmp_path / "x.yaml", "design")
    net = build_network(design)  # stages read the YAML's own dict, as configs.load_design
    ref = build(name)
    def layout(m: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
        return [(k, tuple(v.shape)) for k, v in m.named_parameters()]

    assert layout(net) == layout(ref) and len(layout(net)) > 10


def test_codebook_input_gives_back_the_index_where_levels_share_a_grid_point() -> None:
    """Two k-means levels 0.003 apart round to one point of the 2^-7 grid; the table
    nudges them apart (126, 127), and the float path and the contract still map each
    level to its own index (a nearest-point rule on the table would not: control)."""
    q = CodebookInput(1, 4, 8, -7)
    levels = np.array([[-0.5, 0.0, 0.990, 0.993]], np.float32)
    q.set_levels(levels)
    assert q.table.tolist() == [[-64, 0, 126, 127]]
    x = torch.from_numpy(levels.T.copy())  # (4, 1): each level once
    np.testing.assert_array_equal(q.indices(x).numpy().ravel(), [0, 1, 2, 3])
    np.testing.assert_array_equal(q.spec("z").to_codes(levels.T), [[0], [1], [2], [3]])
    y = q(x)  # the float path: the table entry of that index
    np.testing.assert_array_equal((y.value / 2 ** -7).detach().numpy().ravel(),
                                  [-64, 0, 126, 127])
    table_values = q.values().numpy()[0]
    nearest_on_table = np.abs(levels[0][:, None] - table_values[None, :]).argmin(1)
    assert nearest_on_table.tolist() != [0, 1, 2, 3]  # the rule this input does not use
    with pytest.raises(ValueError, match="strictly increasing"):
        q.set_levels(np.array([[0.0, 0.5, 0.5, 0.9]]))


def _dense_shapes(net: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(m.weight.shape)) for k, m in net.named_modules()
            if isinstance(getattr(m, "weight", None), torch.Tensor) and m.weight.dim() == 2]


def _paper_shapes(name: str) -> dict[str, Any]:
    """What eqnet-*-2x2-64qam must be, by the paper (N_t = 2, K = 6: 12 LLRs, latent
    3 N_t = 6, width 4 N_t K = 48) and the authors' code (f_E: Dense(192) per input)."""
    d = configs.load_design(name)
    net = build_network(d)
    shapes = _dense_shapes(net)
    return {"inputs": list(getattr(net, "input_decl", [])), "shapes": shapes,
            "heads": {k: v["head"] for k, v in d["model"].get("paths", {}).items()}}


def test_paper_designs_have_the_papers_shapes() -> None:
    fq = _paper_shapes("eqnet-fq-2x2-64qam")
    assert fq["inputs"] == ["soft_bits"]
    assert [s for _, s in fq["shapes"]] == [(48, 12)] + [(48, 48)] * 5 + [(6, 48)]
    assert fq["heads"]["latent"]["kind"] == "kmeans" and fq["heads"]["latent"]["levels"] == 64
    g = _paper_shapes("eqnet-g-2x2-64qam")
    per_branch = [(48, 6)] + [(48, 48)] * 5 + [(1, 48)]
    assert [s for _, s in g["shapes"]] == per_branch * 12
    assert configs.load_design("eqnet-g-2x2-64qam")["model"]["inputs"]["latent"]["levels"] == 64
    for name, blocks in (("eqnet-fe-l-2x2-64qam", 1), ("eqnet-fe-p-2x2-64qam", 3)):
        fe = _paper_shapes(name)
        assert fe["inputs"] == ["y", "H", "noise_std"]
        shapes = [s for _, s in fe["shapes"]]
        assert shapes[:3] == [(192, 4), (192, 8), (192, 1)]  # 2 N_r, 2 N_r N_t, sigma
        assert shapes[3] == (192, 576) and shapes[-1] == (6, 192)
        assert len([k for k, _ in fe["shapes"] if k.endswith((".fc1", ".fc2"))]) == 2 * blocks
        assert configs.load_design(name)["train"]["teacher_design"] == "eqnet-fq-2x2-64qam"
    # Negative control: the one-MLP design with a uniform latent is not the paper's f_Q.
    uni = _paper_shapes("eqnet-fq-uniform-2x2-64qam")
    assert [s for _, s in uni["shapes"]] != [(48, 12)] + [(48, 48)] * 5 + [(6, 48)]
