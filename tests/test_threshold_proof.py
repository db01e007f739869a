"""Every Thresholding layer proven over its whole integer input range, and its RTL memories.

Vectors cannot prove hidden thresholds; the negative controls show a one-step threshold
move that every golden vector misses and the exhaustive proof catches.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from hw.build import compile_and_verify
from hw.package import collect_rtl
from hw.threshold_proof import (
    layer_thresholds,
    layer_values,
    prove_layer,
    prove_thresholds,
    shift_threshold,
    threshold_coverage,
    thresholding_nodes,
)
from hw.verify import execute_codes
from tests.conftest import FLOW_DESIGN


@pytest.fixture(scope="module")
def compiled(small_mlp_export: dict, pynq_z2: dict,
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The small MLP compiled once for this file, its package-like rtl/ folder and proof."""
    g = small_mlp_export["golden"]
    out = tmp_path_factory.mktemp("threshold_proof")
    res = compile_and_verify(small_mlp_export["qonnx"], out / "build", FLOW_DESIGN, pynq_z2,
                             g["inputs"], g["outputs"])
    finn = ModelWrapper(str(res["final_model"]))
    qonnx = ModelWrapper(str(small_mlp_export["qonnx"]))
    collect_rtl(finn, out / "rtl")
    return {"res": res, "finn": finn, "qonnx": qonnx, "dir": out, "rtl": out / "rtl",
            "proof": prove_thresholds(qonnx, finn, out / "rtl"),
            "coverage": threshold_coverage(finn, g["inputs"])}


def _hidden_layers(finn: ModelWrapper) -> list[str]:
    out = finn.graph.output[0].name
    return [n.name for n in thresholding_nodes(finn) if n.output[0] != out]


def test_every_threshold_layer_proven_exhaustively(compiled: dict) -> None:
    finn, proof = compiled["finn"], compiled["proof"]
    assert all(r["mismatches"] == 0 for r in compiled["res"]["verification"].values())
    layers = thresholding_nodes(finn)
    assert len(layers) == 3 and len(_hidden_layers(finn)) == 2  # 2 ReLU + 1 tanh output
    assert list(proof) == [n.name for n in layers]
    for node in layers:
        r = proof[node.name]
        idt = finn.get_tensor_datatype(node.input[0])
        span = int(idt.max()) - int(idt.min()) + 1
        assert r["exhaustive"] is True, r
        assert r["range"] == [int(idt.min()), int(idt.max())]
        assert r["points"] == span * r["channels"] > 0
        assert r["mismatches"] == 0, r["first_mismatches"]
        # The reference came from the QONNX weights, not FINN's thresholds.
        assert r["matmul"].startswith(("Gemm", "MatMul")) and r["mvau"].startswith("MVAU")
        mem = r["rtl_memory"]
        pe = getCustomOp(node).get_nodeattr("PE")
        stages = int(np.ceil(np.log2(r["thresholds"] + 1)))
        assert mem["files"] == pe * stages and not mem["missing_files"]
        assert mem["entries"] == r["channels"] * r["thresholds"]
        assert mem["mismatches"] == 0, mem["first_mismatches"]
        assert mem["search_points"] == r["points"] and mem["search_mismatches"] == 0
    out_layer = proof[layers[-1].name]
    assert out_layer["act_val"] == -31 and out_layer["output_datatype"] == "INT6"


def test_coverage_numbers_are_consistent(compiled: dict, small_mlp_export: dict) -> None:
    finn, cov = compiled["finn"], compiled["coverage"]
    n = len(small_mlp_export["golden"]["inputs"])
    for node in thresholding_nodes(finn):
        c = cov[node.name]
        t = layer_thresholds(finn, node)
        assert c["vectors"] == n and c["edges"] == t.size
        assert 0 <= c["edges_hit"] <= c["edges_touched"] <= c["edges"]
        assert len(c["untouched_edges"]) == c["edges"] - c["edges_touched"]
        assert c["codes_possible"] == t.shape[1] + 1
        act = getCustomOp(node).get_nodeattr("ActVal")
        assert set(c["codes_produced"]) <= set(range(act, act + c["codes_possible"]))
        # FINN's execution agrees with the formula the proof uses: count(T <= a) + ActVal.
        assert c["semantics_mismatches"] == 0


def test_hidden_threshold_move_missed_by_vectors_caught_by_proof(
        compiled: dict, small_mlp_export: dict, tmp_path: Path) -> None:
    finn, qonnx, cov = compiled["finn"], compiled["qonnx"], compiled["coverage"]
    g = small_mlp_export["golden"]
    candidates = []
    for name in _hidden_layers(finn):
        node = next(n for n in finn.graph.node if n.name == name)
        idt = finn.get_tensor_datatype(node.input[0])
        t = layer_thresholds(finn, node)
        for c, j in cov[name]["untouched_edges"]:
            # Both integers next to the edge inside the input range: a +1 move shows there.
            if int(idt.min()) < np.ceil(t[c, j]) <= int(idt.max()):
                candidates.append((name, c, j))
    # The tie-heavy golden set of the small MLP leaves many hidden edges unreached.
    assert candidates, "every hidden edge is reached by the golden vectors"
    name, c, j = candidates[0]
    shifted = shift_threshold(finn, name, c, j, +1)
    node = next(n for n in shifted.graph.node if n.name == name)
    r = prove_layer(qonnx, shifted, node)
    assert r["mismatches"] == 1, r  # exactly the accumulator value at the old edge
    assert r["first_mismatches"][0][0] == c
    path = tmp_path / "shifted.onnx"
    shifted.save(str(path))
    got = execute_codes(path, g["inputs"], compiled["res"]["io"]["outputs"][0]["scale"], "shifted")
    assert int(np.any(got != g["outputs"], axis=1).sum()) == 0  # no golden vector notices
    # Sensitivity of that execution: the same move on an edge some vector sits on is seen.
    acc, _ = layer_values(finn, g["inputs"])[name]
    t = np.ceil(layer_thresholds(finn, node))
    on_edge = [(int(np.sum(acc[:, c] == t[c, j])), c, j) for c, j in np.ndindex(t.shape)]
    _, c2, j2 = max(on_edge)  # the edge most vectors sit on
    seen = shift_threshold(finn, name, c2, j2, +1)
    seen.save(str(path))
    got = execute_codes(path, g["inputs"], compiled["res"]["io"]["outputs"][0]["scale"], "seen")
    assert int(np.any(got != g["outputs"], axis=1).sum()) > 0


def test_corrupted_rtl_threshold_memory_is_reported(compiled: dict, tmp_path: Path) -> None:
    finn, qonnx = compiled["finn"], compiled["qonnx"]
    rtl = tmp_path / "rtl"
    shutil.copytree(compiled["rtl"], rtl)
    name = _hidden_layers(finn)[0]
    dat = sorted((rtl / name).glob("*_threshs_0_0.dat"))[0]
    lines = dat.read_text().split()
    word = lines[0]
    lines[0] = f"{(int(word, 16) + 1) % 16 ** len(word):0{len(word)}x}"
    dat.write_text("\n".join(lines) + "\n")
    proof = prove_thresholds(qonnx, finn, rtl)
    mem = proof[name]["rtl_memory"]
    assert mem["mismatches"] == 1 and mem["first_mismatches"][0][:3] == (0, 0, 0)
    assert mem["search_mismatches"] >= 1
    assert proof[name]["mismatches"] == 0  # the model itself is still right
    for other in set(proof) - {name}:
        assert proof[other]["rtl_memory"]["mismatches"] == 0


def test_unmatched_or_huge_layers_are_not_called_proven(compiled: dict,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import hw.threshold_proof as tp

    finn, qonnx = compiled["finn"], compiled["qonnx"]
    node = thresholding_nodes(finn)[1]
    # An MVAU whose weights no longer equal any QONNX layer's: no reference, no proof.
    changed = ModelWrapper(finn.model.__deepcopy__())
    mvau = changed.find_producer(node.input[0])
    w = changed.get_initializer(mvau.input[1]).copy()
    w[0, 0] += 1
    changed.set_initializer(mvau.input[1], w)
    r = prove_layer(qonnx, changed, node)
    assert r["exhaustive"] is False and r["mismatches"] is None and r["points"] == 0
    assert "integer weights" in r["reason"]
    # A range above the enumeration limit: only the points either side of every edge.
    monkeypatch.setattr(tp, "MAX_POINTS", 1000)
    r = prove_layer(qonnx, finn, node)
    span = r["range"][1] - r["range"][0] + 1
    assert r["exhaustive"] is False and "2**24" in r["reason"]
    assert 0 < r["points"] < span * r["channels"] and r["mismatches"] == 0
