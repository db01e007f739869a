"""Model-zoo topologies through the flow: mapped bit-exactly, or refused naming node and reason."""

from __future__ import annotations

import pytest
import torch

from configs import load_board
from export.golden import reference_codes
from export.qonnx_export import export_codes_model
from hw.build import compile_and_verify
from hw.errors import UnsupportedModelError
from hw.steps import check_qonnx_model
from tests.synthetic import (
    AbsModel,
    BranchModel,
    ConcatModel,
    ResidualModel,
    calibrate,
    random_codes,
)

DESIGN = {"hw": {"target_fps": 100_000}}

# (model, what FINN 1.6.1 does with it offline). "mapped" means bit-exact at every stage.
CASES = {
    "residual_shared_quantizer": (ResidualModel, "DuplicateStreams_hls"),
    "branches_fan_out_concat": (BranchModel, "MultiThreshold"),
    "concat_of_branches": (ConcatModel, "DuplicateStreams_hls"),
}


def compile_model(model: torch.nn.Module, n_in: int, tmp_path) -> dict:
    export_codes_model(model, tmp_path / "model_qonnx.onnx")
    x = random_codes(300, n_in)
    y = reference_codes(model, x)
    return compile_and_verify(tmp_path / "model_qonnx.onnx", tmp_path / "build", DESIGN,
                              load_board("pynq-z2"), x, y)


@pytest.mark.parametrize("case", sorted(CASES))
def test_topology_mapped_or_refused_by_name(case: str, tmp_path) -> None:
    cls, refused_op = CASES[case]
    model = calibrate(cls(), 8)
    try:
        res = compile_model(model, 8, tmp_path)
    except UnsupportedModelError as e:
        # Refused: the error names the node, its op type and a reason.
        assert e.op_type == refused_op, str(e)
        assert e.node_name.startswith(refused_op.split("_")[0]), str(e)
        assert e.node_name in str(e) and len(e.reason) > 30
        return
    for stage, row in res["verification"].items():
        assert row["mismatches"] == 0, (case, stage, row)
    pytest.fail(f"{case} now maps bit-exactly: update CASES to say so ({res['verification']})")


def test_unsupported_operator_refused_with_node_name(tmp_path) -> None:
    model = calibrate(AbsModel(), 8)
    mw = export_codes_model(model, tmp_path / "model_qonnx.onnx")
    with pytest.raises(UnsupportedModelError, match=r"node 'Abs_0' \(Abs\) is not supported"):
        check_qonnx_model(mw)
    # Through the whole builder, the same named error reaches the caller.
    with pytest.raises(UnsupportedModelError, match="Abs_0"):
        compile_model(model, 8, tmp_path / "flow")
