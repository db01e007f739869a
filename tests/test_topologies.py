"""Model-zoo topologies through the flow: mapped bit-exactly down to Verilator, or refused
naming node and reason.

A mapped case runs every stage on >= 10,000 vectors (rounding ties, saturation
extremes, uniform random) against the Brevitas model's integer codes: QONNX execution,
FINN's execution of each intermediate model (compile_and_verify), then the stitched
RTL of the final HW model in Verilator under independent random valid/ready on every
stream (hw.rtlsim.harness), with the FIFOs of reconvergent fork/join paths sized by
simulation. The Verilator cases are slow (a FINN build and a Verilator build each);
``test_topology_streams_through_finn`` is the fast check of the same cases up to FINN's
HW layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from qonnx.core.modelwrapper import ModelWrapper

import tests.synthetic as syn
import tests.synthetic_quant as synq
from configs import load_board
from contract.iospec import IOSpec
from export.qonnx_export import export_codes_model
from hw.build import compile_and_verify
from hw.errors import UnsupportedModelError
from hw.steps import check_qonnx_model

DESIGN = {"hw": {"target_fps": 100_000}}
N_VECTORS = 10_000
P_VALID, P_READY = 0.6, 0.5  # random input valid gaps / output back-pressure per stream


@dataclass(frozen=True)
class Case:
    """A zoo topology: its model, its input widths, what it exercises, and the RTL layer
    types its final HW model must consist of."""

    make: Any
    n_in: int | tuple[int, ...]
    what: str
    ops: frozenset[str]
    calibrate: Any = syn.calibrate


MLP = frozenset({"MVAU_rtl", "Thresholding_rtl"})


CASES = {
    "residual_shared_quantizer": Case(syn.ResidualModel, 8, "fork + residual add",
                                      MLP | {"DuplicateStreams_rtl", "ElementwiseAdd_rtl"}),
    "branches_fan_out_concat": Case(syn.BranchModel, 8,
                                    "fork into branches (merged first layer) + concat",
                                    MLP | {"StreamingSplit_rtl", "StreamingConcat_rtl"}),
    "concat_of_branches": Case(syn.ConcatModel, 8,
                               "fork + 3 branches + concat + dense (merged; concat folded "
                               "into the dense's weight rows)", MLP),
    "two_inputs_two_outputs": Case(syn.TwoInputJoinModel, (6, 4),
                                   "two inputs of different scales joined, two outputs",
                                   MLP | {"StreamingConcat_rtl", "StreamingSplit_rtl"}),
    "learned_quantizer_lookup": Case(synq.LearnedMidModel, 8,
                                     "learned non-uniform quantizer mid-network + lookup",
                                     MLP | {"CodebookLookup_rtl"},
                                     synq.calibrate),
    "batchnorm_sigmoid": Case(synq.BatchNormSigmoidModel, 8,
                              "BatchNorm folded into thresholds + sigmoid output", MLP,
                              synq.calibrate),
    "argmax_output": Case(syn.ArgmaxModel, 8, "argmax (LabelSelect) output",
                          MLP | {"LabelSelect_rtl"}),
    "g_12_branches": Case(syn.GBranchModel, 6,
                          "EQ-Net g: 6 -> 12 x [48 -> 48] -> 12 x 1",
                          MLP | {"StreamingSplit_rtl", "StreamingConcat_rtl"}),
    "softbit_non_pow2_tanh": Case(synq.SoftBitModel, 8,
                                  "tanh quantizer with a non-power-of-two scale", MLP,
                                  synq.calibrate),
    "softbit_64_levels": Case(synq.SoftBit64Model, 8,
                              "the soft-bit paper's 64 uniform levels on [-0.8, 0.8] after "
                              "tanh (mid-rise)", MLP, synq.calibrate),
}


def _model(case: Case) -> torch.nn.Module:
    return case.calibrate(case.make(), case.n_in)


def _flow(case: Case, tmp_path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray],
                                                dict[str, np.ndarray], IOSpec]:
    """Export, golden vectors and Brevitas codes, and FINN's flow verified at every stage."""
    model = _model(case)
    export_codes_model(model, tmp_path / "model_qonnx.onnx")
    spec = model.iospec()
    x = syn.golden_codes(model, N_VECTORS)
    with torch.no_grad():
        y = {k: v.numpy().astype(np.int64) for k, v in model.output_codes(
            **{k: torch.as_tensor(v, dtype=torch.float32) for k, v in x.items()}).items()}
    res = compile_and_verify(tmp_path / "model_qonnx.onnx", tmp_path / "build", DESIGN,
                             load_board("pynq-z2"), x, y)
    return res, x, y, spec


def _assert_stages_exact(case: str, res: dict[str, Any]) -> None:
    assert len(res["verification"]) >= 4, res["verification"]
    for stage, row in res["verification"].items():
        assert row["vectors"] >= N_VECTORS, (case, stage, row)
        assert row["mismatches"] == 0, (case, stage, row)


@pytest.mark.parametrize("case", sorted(CASES))
def test_topology_streams_through_finn(case: str, tmp_path) -> None:
    """Every case reaches FINN's HW layers, all RTL, bit-exact at every Python stage."""
    res, _, _, _ = _flow(CASES[case], tmp_path)
    _assert_stages_exact(case, res)
    final = ModelWrapper(str(res["final_model"]))
    ops = {n.op_type for n in final.graph.node}
    assert ops == CASES[case].ops, ops
    if case == "g_12_branches":
        # Decided by the weight count and recorded: the 12 first layers (6 -> 48) merge
        # into one 6 -> 576 layer, the 48 -> 48 hidden layers stay forked (block-diagonal
        # would be 12x the weights), and the 12 outputs stay a concat.
        chosen = {r["kind"]: r["chosen"] for r in res["branch_merge"]}
        assert chosen == {"shared_input": "merged", "split_siblings": "forked",
                          "concat_join": "concat kept"}, res["branch_merge"]
        log = (tmp_path / "build" / "build_dataflow.log").read_text()
        assert "branch merge: shared_input 12 branches" in log


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_topology_mapped_bit_exact_in_verilator(case: str, tmp_path) -> None:
    """The stitched RTL of the final HW model equals Brevitas on every vector, under
    random back-pressure, with the reconvergent FIFOs sized by simulation."""
    from hw.rtlsim import harness

    res, x, y, spec = _flow(CASES[case], tmp_path)
    _assert_stages_exact(case, res)
    final = ModelWrapper(str(res["final_model"]))
    names = (spec.input_names, spec.output_names)
    sizing = harness.size_fifos(final, tmp_path / "fifo", x, names=names,
                                fpgapart=load_board("pynq-z2")["part"])
    built = sizing["built"]
    bp = harness.simulate(built, x, seed=7, p_valid=P_VALID, p_ready=P_READY, tag="bp")
    cmp = harness.compare(bp.outputs, y)
    assert cmp["vectors"] == N_VECTORS and cmp["mismatches"] == 0, (case, cmp)
    # Negative control: the same comparison sees a single changed code.
    bad = {k: v.copy() for k, v in y.items()}
    first = next(iter(bad))
    bad[first][N_VECTORS // 2, 0] += 1
    assert harness.compare(bp.outputs, bad)["mismatches"] == 1
    fr = harness.simulate(built, x, seed=8, tag="full_rate")
    assert harness.compare(fr.outputs, y)["mismatches"] == 0
    print(f"\n{case}: latency {fr.latency_cycles} cycles, II {fr.ii_cycles} cycles, "
          f"FIFO depths {sizing['depths']} (peaks {sizing['peaks']})")


def test_unsupported_operator_refused_with_node_name(tmp_path) -> None:
    model = syn.calibrate(syn.AbsModel(), 8)
    mw = export_codes_model(model, tmp_path / "model_qonnx.onnx")
    with pytest.raises(UnsupportedModelError, match=r"node 'Abs_0' \(Abs\) is not supported"):
        check_qonnx_model(mw)
    # Through the whole builder, the same named error reaches the caller.
    x = syn.random_codes(300, 8)
    with pytest.raises(UnsupportedModelError, match="Abs_0"):
        compile_and_verify(tmp_path / "model_qonnx.onnx", tmp_path / "flow" / "build", DESIGN,
                           load_board("pynq-z2"), x, x[:, :4])
