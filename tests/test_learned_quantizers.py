"""Learned non-uniform quantizers, BatchNorm before monotonic activations and
non-power-of-two quantizers after tanh: bit-exact through every FINN stage, every
Thresholding layer proven exhaustively, threshold provenance explicit end to end.

Models: tests/synthetic_quant.py. Each is compiled once (module scope, ~1 min each).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from qonnx.core.modelwrapper import ModelWrapper

import hw  # noqa: F401  (offline FINN bootstrap before any finn import)
from configs import load_board
from export.golden import build_golden
from export.qonnx_export import export_codes_model
from hw.build import compile_and_verify
from hw.errors import UnsupportedModelError
from hw.steps import check_non_pow2_quant, check_qonnx_model
from hw.threshold_proof import prove_thresholds, shift_threshold, thresholding_nodes
from hw.ties import LOWEST_LEVEL_ATTR, place_half_even_on_integers, provenance_of
from hw.transforms.thresholds import ExactThresholds
from tests.synthetic_quant import (
    N_IN,
    BatchNormSigmoidModel,
    LearnedMidModel,
    SoftBit64Model,
    SoftBitModel,
    calibrate,
)
from zoo.blocks import const_quant_identity
from zoo.quantizers import (
    ACTIVATION_STAIRCASE,
    CODEBOOK_INDEX,
    EXACT_INTEGER,
    LEARNED_BOUNDARIES,
    PROVENANCE_ATTR,
    UNIFORM_QUANTIZER,
    get_provenance,
    set_provenance,
)

DESIGN = {"name": "test-learned-quantizers", "hw": {"target_fps": 100_000}}
MODELS = {"learned_mid": LearnedMidModel, "bn_sigmoid": BatchNormSigmoidModel,
          "soft_bit": SoftBitModel}
MIN_VECTORS = 10_000


def make_model(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)  # weights are drawn at construction
    return calibrate(MODELS[name](), seed=seed)


@pytest.fixture(scope="module", params=sorted(MODELS))
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One model exported, >= 10,000 golden vectors (channel, tie-heavy, extremes),
    compiled and verified at every stage, and its exhaustive threshold proof."""
    name = request.param
    model = make_model(name)
    out = tmp_path_factory.mktemp(name)
    export_codes_model(model, out / "model_qonnx.onnx")
    rng = np.random.default_rng(1)
    g = build_golden(model, {"x": np.tanh(rng.normal(0, 2, (8000, N_IN)))}, n_ties=2000)
    res = compile_and_verify(out / "model_qonnx.onnx", out / "build", DESIGN,
                             load_board("pynq-z2"), g.inputs["x"], g.outputs["y"],
                             resume=False)
    qonnx = ModelWrapper(str(out / "model_qonnx.onnx"))
    finn = ModelWrapper(str(res["final_model"]))
    inter = out / "build" / "intermediate_models"
    return {"name": name, "model": model, "golden": g, "res": res, "qonnx": qonnx,
            "finn": finn, "inter": inter, "dir": out,
            "proof": prove_thresholds(qonnx, finn)}


def test_bit_exact_at_every_stage(built: dict) -> None:
    g, table = built["golden"], built["res"]["verification"]
    assert len(g.inputs["x"]) >= MIN_VECTORS
    assert (g.sets == "ties").sum() == 2000
    if built["name"] != "bn_sigmoid":
        # After a BatchNorm (scale not a power of two) no quantizer input is an exact tie.
        assert (g.ties > 0).sum() >= 1000, "the tie-heavy set must put quantizer inputs on ties"
    assert (g.sets == "extremes").sum() >= 500
    assert set(table) == {"qonnx", "finn_converted", "streamlined", "hw_folded"}
    for stage, row in table.items():
        assert row == {"vectors": len(g.inputs["x"]), "mismatches": 0}, (stage, row)


def test_every_threshold_layer_proven_exhaustively(built: dict) -> None:
    finn, proof = built["finn"], built["proof"]
    assert list(proof) == [n.name for n in thresholding_nodes(finn)]
    for layer, r in proof.items():
        assert r["exhaustive"] is True and r["mismatches"] == 0, (layer, r)
        assert r["points"] == (r["range"][1] - r["range"][0] + 1) * r["channels"]
    ops = [n.op_type for n in finn.graph.node]
    if built["name"] == "learned_mid":
        # index Thresholding -> CodebookLookup -> MVAU: the lookup is a hardware layer.
        assert ops[:4] == ["MVAU_rtl", "Thresholding_rtl", "CodebookLookup_rtl", "MVAU_rtl"]
    if built["name"] == "soft_bit":
        # The index on the tanh quantizer's codes: a Thresholding fed by a Thresholding,
        # proven from the quantizer's QONNX output (was "NOT PROVEN").
        last = proof[thresholding_nodes(finn)[-1].name]
        assert last["fed_by"] == thresholding_nodes(finn)[-2].name
        assert last["points"] == 64 * 4


def test_provenance_explicit_and_kept(built: dict) -> None:
    """Export tags its MultiThresholds; after conversion every MultiThreshold has one
    (FINN's conversions tagged uniform_quantizer), and it survives streamlining."""
    exported = {get_provenance(n) for n in built["qonnx"].graph.node
                if n.op_type == "MultiThreshold"}
    expect = {"learned_mid": {LEARNED_BOUNDARIES}, "bn_sigmoid": set(),
              "soft_bit": {CODEBOOK_INDEX}}[built["name"]]
    assert exported == expect
    for step in ("step_qonnx_to_finn_half_even", "step_streamline_half_even"):
        m = ModelWrapper(str(built["inter"] / f"{step}.onnx"))
        provs = [provenance_of(n) for n in m.get_nodes_by_op_type("MultiThreshold")]
        assert provs and all(p is not None for p in provs), (step, provs)
        for n in m.get_nodes_by_op_type("MultiThreshold"):
            has_level = any(a.name == LOWEST_LEVEL_ATTR for a in n.attribute)
            assert has_level == (get_provenance(n) == UNIFORM_QUANTIZER), n.name
    provs = {get_provenance(n) for n in ModelWrapper(str(
        built["inter"] / "step_streamline_half_even.onnx")).get_nodes_by_op_type("MultiThreshold")}
    expect = {"learned_mid": {EXACT_INTEGER, UNIFORM_QUANTIZER},
              "bn_sigmoid": {EXACT_INTEGER},
              "soft_bit": {UNIFORM_QUANTIZER, ACTIVATION_STAIRCASE, CODEBOOK_INDEX}}
    assert provs == expect[built["name"]]


def test_integer_half_even_move_on_non_uniform_layers_is_caught(built: dict) -> None:
    """What hw.ties' integer step would do to a layer it took for a uniform quantizer
    (odd-level thresholds on integers one step up) changes the function: the exhaustive
    proof of every such layer sees it."""
    finn = built["finn"]
    shifted = ModelWrapper(finn.model.__deepcopy__())
    for node in thresholding_nodes(shifted):
        t = np.array(shifted.get_initializer(node.input[1]), np.float32)
        odd = (np.arange(1, t.shape[-1] + 1) % 2 == 1)[None, :]
        shifted.set_initializer(node.input[1], np.where(odd, t + 1, t).astype(np.float32))
    proof = prove_thresholds(built["qonnx"], shifted)
    assert all(r["mismatches"] > 0 for r in proof.values()), proof


def test_ties_leave_learned_boundaries_alone(tmp_path) -> None:
    """hw.ties moves only uniform quantizers' thresholds. Negative control: learned
    boundaries that inputs reach exactly (here: placed on observed pre-activations), moved
    the way ties moves a uniform quantizer's odd levels, change the outputs."""
    from qonnx.core.onnx_exec import execute_onnx

    from hw.ties import place_half_even_after_conversion
    from hw.verify import with_batch

    model = make_model("learned_mid")
    x = np.random.default_rng(0).integers(-128, 128, (4000, N_IN)).astype(np.float32)
    mw = with_batch(export_codes_model(model, tmp_path / "model_qonnx.onnx"), len(x))
    (mt,) = mw.get_nodes_by_op_type("MultiThreshold")
    assert get_provenance(mt) == LEARNED_BOUNDARIES
    ctx = execute_onnx(mw, {"x": x}, return_full_exec_context=True)
    pre = np.asarray(ctx[mt.input[0]])  # (N, C) values the boundaries are compared with
    t = np.asarray(mw.get_initializer(mt.input[1]))
    # Learned boundaries that sit on values the inputs take: sorted per-channel quantiles.
    q = np.quantile(pre, np.linspace(0.1, 0.9, t.shape[1]), axis=0, method="nearest").T
    mw.set_initializer(mt.input[1], np.sort(q, axis=1).astype(np.float32))
    ref = execute_onnx(mw, {"x": x})["y"]
    kept = place_half_even_after_conversion(ModelWrapper(mw.model.__deepcopy__()))
    assert np.array_equal(kept.get_initializer(mt.input[1]), mw.get_initializer(mt.input[1]))
    assert np.array_equal(execute_onnx(kept, {"x": x})["y"], ref)
    wrong = ModelWrapper(mw.model.__deepcopy__())
    set_provenance(wrong.get_nodes_by_op_type("MultiThreshold")[0], UNIFORM_QUANTIZER)
    wrong = place_half_even_after_conversion(wrong)
    differ = int((execute_onnx(wrong, {"x": x})["y"] != ref).any(1).sum())
    assert differ > 0
    print(f"learned boundaries moved as a uniform quantizer: {differ} of {len(x)} vectors differ")


def test_threshold_moved_by_one_is_caught_by_the_proof(built: dict) -> None:
    """Negative control: one threshold of every layer moved by one step, one at a time."""
    from hw.threshold_proof import layer_thresholds

    finn = built["finn"]
    for node in thresholding_nodes(finn):
        dt = finn.get_tensor_datatype(node.input[0])
        t = layer_thresholds(finn, node)
        # The middle threshold among those inside the input range (the others clip).
        inside = np.argwhere((t >= dt.min()) & (t <= dt.max()))
        c, j = (int(v) for v in inside[len(inside) // 2])
        moved = shift_threshold(finn, node.name, c, j, +1)
        r = prove_thresholds(built["qonnx"], moved)[node.name]
        assert r["exhaustive"] and r["mismatches"] >= 1, (node.name, r)
        assert r["first_mismatches"][0][0] == c


def test_negative_batchnorm_scale_refused_by_name(tmp_path) -> None:
    model = make_model("bn_sigmoid")
    with torch.no_grad():
        model.bn2.weight[1] = -0.8
    mw = export_codes_model(model, tmp_path / "model_qonnx.onnx")
    check_qonnx_model(mw)
    with pytest.raises(UnsupportedModelError, match="negative scale on channel 1") as e:
        mw.transform(ExactThresholds())
    assert e.value.op_type == "Quant" and e.value.node_name in str(e.value)
    assert "BatchNormalization" in str(e.value)


class _NonPow2Hidden(torch.nn.Module):
    """A non-power-of-two quantizer mid-network (after ReLU): refused by name."""

    def __init__(self, after_tanh: bool) -> None:
        super().__init__()
        from zoo.blocks import fixed_quant_identity, quant_linear

        self.iq = fixed_quant_identity(8, -7)
        self.fc1 = quant_linear(N_IN, 4, 4, 16)
        self.act = torch.nn.Tanh() if after_tanh else torch.nn.ReLU()
        self.q = const_quant_identity(6, 0.8 / 31)
        self.fc2 = quant_linear(4, 2, 4, 16)
        self.oq = fixed_quant_identity(6, -3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.oq(self.fc2(self.q(self.act(self.fc1(self.iq(x)))))).value


@pytest.mark.parametrize("after_tanh", [False, True])
def test_non_pow2_quantizer_elsewhere_refused_by_name(after_tanh: bool, tmp_path) -> None:
    from brevitas.export import export_qonnx
    from qonnx.util.cleanup import cleanup_model

    from export.qonnx_export import input_quant_to_codes

    torch.manual_seed(0)
    m = _NonPow2Hidden(after_tanh).eval()
    export_qonnx(m, input_t=torch.zeros(1, N_IN), export_path=str(tmp_path / "m.onnx"),
                 dynamo=False)
    mw = cleanup_model(ModelWrapper(str(tmp_path / "m.onnx")))
    input_quant_to_codes(mw, mw.graph.input[0].name)
    with pytest.raises(UnsupportedModelError, match="not a constant power of two") as e:
        check_qonnx_model(mw)
    assert e.value.op_type == "Quant" and e.value.node_name.startswith("Quant")
    # The activation quantizer itself, whichever Quant the check met first (the next
    # layer's bias quantizer inherits the scale):
    (act,) = [n for n in mw.graph.node if n.op_type in ("Tanh", "Relu")]
    q = mw.find_consumer(act.output[0])
    why = "not read by a codebook-index" if after_tanh else "does not follow a Tanh/Sigmoid"
    with pytest.raises(UnsupportedModelError, match=f"'{q.name}'.*{why}"):
        check_non_pow2_quant(mw, q)


def test_untagged_multithreshold_refused_by_name(built: dict) -> None:
    """A MultiThreshold without provenance is refused at the QONNX check and by hw.ties."""
    m = ModelWrapper(str(built["inter"] / "step_qonnx_to_finn_half_even.onnx"))
    mt = m.get_nodes_by_op_type("MultiThreshold")[0]
    for a in list(mt.attribute):
        if a.name == PROVENANCE_ATTR:
            mt.attribute.remove(a)
    with pytest.raises(UnsupportedModelError, match="provenance None") as e:
        place_half_even_on_integers(m)
    assert e.value.node_name == mt.name
    q = ModelWrapper(built["qonnx"].model.__deepcopy__())
    for n in q.get_nodes_by_op_type("MultiThreshold"):
        for a in list(n.attribute):
            if a.name == PROVENANCE_ATTR:
                n.attribute.remove(a)
        # soft_bit: its non-power-of-two Quant is refused first (its reader is no longer
        # a codebook index); otherwise the MultiThreshold itself.
        with pytest.raises(UnsupportedModelError,
                           match=f"'{n.name}'.*provenance None|not read by a codebook-index"):
            check_qonnx_model(q)


def finn_algebra_proof(tmp_path, name: str = "bn_sigmoid") -> dict[str, Any]:
    """The BatchNorm model compiled with FINN's own float folding (ExactThresholds off):
    its exhaustive proof and stage table (measured, see the test below)."""
    model = make_model(name)
    export_codes_model(model, tmp_path / "model_qonnx.onnx")
    rng = np.random.default_rng(1)
    g = build_golden(model, {"x": np.tanh(rng.normal(0, 2, (8000, N_IN)))}, n_ties=2000)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ExactThresholds, "apply", lambda self, m: (m, False))
        res = compile_and_verify(tmp_path / "model_qonnx.onnx", tmp_path / "build", DESIGN,
                                 load_board("pynq-z2"), g.inputs["x"], g.outputs["y"],
                                 resume=False)
    proof = prove_thresholds(ModelWrapper(str(tmp_path / "model_qonnx.onnx")),
                             ModelWrapper(str(res["final_model"])))
    return {"verification": res["verification"], "proof": proof}


@pytest.mark.slow
def test_bit_exact_in_verilator(built: dict) -> None:
    """The stitched RTL of the final HW model (CodebookLookup_rtl included) equals
    Brevitas on every golden vector, under random valid/ready gaps and at full rate."""
    from hw.rtlsim import harness

    g = built["golden"]
    x, y = {"x": g.inputs["x"]}, {"y": g.outputs["y"]}
    sim = harness.build(built["finn"], built["dir"] / "rtlsim", load_board("pynq-z2")["part"],
                        names=(["x"], ["y"]))
    bp = harness.simulate(sim, x, seed=7, p_valid=0.6, p_ready=0.5, tag="bp")
    cmp = harness.compare(bp.outputs, y)
    assert cmp["vectors"] == len(g.inputs["x"]) and cmp["mismatches"] == 0, cmp
    bad = {"y": y["y"].copy()}
    bad["y"][len(bad["y"]) // 2, 0] += 1  # negative control: one changed code is seen
    assert harness.compare(bp.outputs, bad)["mismatches"] == 1
    fr = harness.simulate(sim, x, seed=8, tag="full_rate")
    assert harness.compare(fr.outputs, y)["mismatches"] == 0
    print(f"\n{built['name']}: latency {fr.latency_cycles} cycles, II {fr.ii_cycles} cycles")


def adversarial_learned_model(make: Any = make_model) -> torch.nn.Module:
    """learned_mid with boundaries FINN's float32 folding gets wrong: ``b = (n + 2^-19) S``
    (S the accumulator scale) just above a grid point, after a large bias ``4000 S``.
    FINN folds the bias into the threshold in float32, ``fl(b - 4000 S) / S = n - 4000``
    (the 2^-19 is lost: 31 significant bits), so it counts ``acc = n - 4000``, where the
    model, comparing ``(acc + 4000) S >= b``, does not: one accumulator value per
    boundary and channel, which no random vector reaches."""
    model = make("learned_mid")
    s_acc = float(model.input_quant.act_quant.scale() * model.fc1.quant_weight().scale)
    with torch.no_grad():
        model.fc1.bias.fill_(4000 * s_acc)
        # |n| < 16, so that n + 2^-19 is a float32 (23 significant bits).
        n = torch.linspace(-12, 12, model.lq.levels - 1).round()
        b = (n + 2.0**-19) * s_acc
        model.lq.boundaries.copy_(b.repeat(model.lq.channels, 1))
    return model


def test_finn_float_folding_off_by_one_caught_and_fixed(tmp_path) -> None:
    """FINN's own folding of learned boundaries (ExactThresholds off): the exhaustive proof
    finds the off-by-one thresholds; with ExactThresholds (the flow) the layer is exact."""
    real = make_model
    globals()["make_model"] = lambda name, seed=0: adversarial_learned_model()
    try:
        finn_way = finn_algebra_proof(tmp_path / "finn", "learned_mid")
        model = adversarial_learned_model()
        export_codes_model(model, tmp_path / "exact" / "model_qonnx.onnx")
        x = np.random.default_rng(0).integers(-128, 128, (2000, N_IN))
        y = model.output_codes(x=torch.from_numpy(x).float())["y"].numpy()
        res = compile_and_verify(tmp_path / "exact" / "model_qonnx.onnx",
                                 tmp_path / "exact" / "build", DESIGN,
                                 load_board("pynq-z2"), x, y, resume=False)
    finally:
        globals()["make_model"] = real
    first = next(iter(finn_way["proof"].values()))  # the learned index layer
    channels, boundaries = first["channels"], first["thresholds"]
    assert first["exhaustive"] and first["mismatches"] == channels * boundaries, first
    # The mismatching accumulators are exactly n - 4096, counted by FINN, not the model.
    _, acc, got, want = first["first_mismatches"][0]
    assert got == want + 1 and acc == -12 - 4000
    print(f"\nFINN's float folding: {first['mismatches']} of {first['points']} points off "
          f"(vectors: {finn_way['verification']['hw_folded']})")
    assert all(r["mismatches"] == 0 for r in res["verification"].values())
    proof = prove_thresholds(ModelWrapper(str(tmp_path / "exact" / "model_qonnx.onnx")),
                             ModelWrapper(str(res["final_model"])))
    assert all(r["exhaustive"] and r["mismatches"] == 0 for r in proof.values()), proof


def test_softbit_64_levels_exact_on_every_accumulator_and_proven(tmp_path) -> None:
    """The soft-bit paper's 64 uniform levels on [-0.8, 0.8] after tanh (mid-rise, no
    zero-point-1/2 Quant): exported as Tanh -> MultiThreshold(63 fixed boundaries,
    learned_boundaries), enumerated by ExactThresholds into integer thresholds that equal
    the torch reference (torch.tanh, float32, ``tanh >= b``) on every accumulator value,
    bit-exact at every stage on >= 10,000 vectors, every Thresholding layer proven."""
    from hw.threshold_proof import _activation_scale, _const_tensors, _integer_weights

    torch.manual_seed(0)
    model = calibrate(SoftBit64Model())
    head = model.heads["y"]
    k = np.arange(64)
    assert np.array_equal(head.level_values, (-0.8 + k * 1.6 / 63).astype(np.float32))
    assert np.array_equal(head.boundaries(), (-0.8 + (k[:63] + 0.5) * 1.6 / 63).astype(np.float32))
    assert 0.0 not in head.level_values  # mid-rise
    spec = model.iospec().outputs[0]
    assert spec.datatype == "UINT6" and spec.post == "codebook"
    assert spec.codebook == tuple(float(v) for v in head.level_values)

    qonnx = export_codes_model(model, tmp_path / "model_qonnx.onnx")
    check_qonnx_model(qonnx)
    (mt,) = qonnx.get_nodes_by_op_type("MultiThreshold")
    assert get_provenance(mt) == LEARNED_BOUNDARIES
    assert qonnx.find_producer(mt.input[0]).op_type == "Tanh"
    assert np.array_equal(qonnx.get_initializer(mt.input[1]), head.boundaries()[None, :])

    # The enumerated integer thresholds vs the torch reference on every accumulator value.
    report: dict[str, Any] = {}
    exact = ModelWrapper(qonnx.model.__deepcopy__()).transform(ExactThresholds(report))
    (et,) = [n for n in exact.get_nodes_by_op_type("MultiThreshold")
             if get_provenance(n) == EXACT_INTEGER]
    thr = np.asarray(exact.get_initializer(et.input[1]), np.float64)  # (3, 63)
    consts = _const_tensors(qonnx)
    gemm = qonnx.find_producer(qonnx.find_producer(mt.input[0]).input[0])
    s_in = _activation_scale(qonnx, gemm.input[0], consts)
    _, s_w = _integer_weights(qonnx, gemm, consts, (16, 3))
    lo, hi = report[mt.name]["accumulator"]
    acc = np.arange(lo, hi + 1)
    prod = acc[:, None] * (s_in * s_w)[None, :]
    hw_index = (prod[:, :, None] >= thr[None]).sum(-1)
    bias = np.asarray(consts[gemm.input[2]], np.float32)
    pre32 = (prod.astype(np.float32) + bias).astype(np.float32)
    assert np.array_equal(pre32.astype(np.float64), prod + bias.astype(np.float64))  # exact
    ref = head.codes(torch.from_numpy(pre32)).numpy()
    assert hw_index.shape == (hi - lo + 1, 3)
    assert int((hw_index != ref).sum()) == 0, np.argwhere(hw_index != ref)[:10]
    # How far the activation stays from any boundary, in float32 ulps (onnxruntime's Tanh,
    # which ExactThresholds executes, differs from torch.tanh by up to a few ulps). The
    # boundary at 0 is hit exactly where the pre-activation is 0: tanh(0) = 0 in both.
    t = np.tanh(pre32.astype(np.float64))
    b = head.boundaries().astype(np.float64)
    on_zero = pre32 == 0
    gap = np.abs(t[..., None] - b).min(-1)[~on_zero] / np.spacing(np.float32(0.8))
    print(f"\nsoftbit_64: {hw_index.size} accumulator points (range [{lo}, {hi}] x 3), "
          f"0 mismatches; {int(on_zero.sum())} on the boundary 0 exactly; otherwise closest "
          f"activation to a boundary: {gap.min():.1f} ulp (of 0.8)")

    rng = np.random.default_rng(1)
    g = build_golden(model, {"x": np.tanh(rng.normal(0, 2, (8000, N_IN)))}, n_ties=2000)
    res = compile_and_verify(tmp_path / "model_qonnx.onnx", tmp_path / "build", DESIGN,
                             load_board("pynq-z2"), g.inputs["x"], g.outputs["y"],
                             resume=False)
    for stage, row in res["verification"].items():
        assert row == {"vectors": len(g.inputs["x"]), "mismatches": 0}, (stage, row)
    assert len(g.inputs["x"]) >= MIN_VECTORS
    finn = ModelWrapper(str(res["final_model"]))
    proof = prove_thresholds(qonnx, finn)
    assert list(proof) == [n.name for n in thresholding_nodes(finn)] and len(proof) == 2
    for layer, r in proof.items():
        assert r["exhaustive"] is True and r["mismatches"] == 0, (layer, r)
        assert r["points"] == (r["range"][1] - r["range"][0] + 1) * r["channels"]
    last = proof[thresholding_nodes(finn)[-1].name]
    assert last["channels"] == 3 and last["thresholds"] == 63
    print(f"softbit_64: vectors {len(g.inputs['x'])}, stages {res['verification']}; proof "
          + ", ".join(f"{k}: {r['points']} points, {r['mismatches']} mismatches"
                      for k, r in proof.items()))
