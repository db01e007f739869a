"""host.integer: the package's FINN graph executed bit-exactly in numpy, and the
``integer`` backend.

Fast (no ``bitstreams/``): the small test MLP compiled by the offline flow
(tests.test_host_driver.host_package) and synthetic FINN graphs written here:

* codes == FINN's own execution of ``model_finn.onnx`` (hw.verify.execute_codes) == the
  Brevitas codes, on every golden vector and on random codes over the whole input range
  with its extremes; every threshold method (affine, lut, searchsorted) alone;
* negative control: one weight changed in a copy of the model -> mismatches (and the
  executor still equals FINN on the changed copy);
* the protobuf reader == ``onnx.load`` on every node, attribute and initializer;
* the exactness bound picks float32 / float64 / int64 (with inputs where float32 would
  be wrong), hardware datatypes that would wrap are refused, unsupported nodes are
  refused by name, a DAG with two inputs, two outputs, FIFO and DWC nodes;
* the backend behind Accelerator (one and two streams), ``host verify --backend
  integer``, a model changed after the package was opened, board-side imports and
  numpy 1.x.

Slow: >= 100,000 vectors of the built default package against the RTL co-simulation
and Brevitas; the reader and FINN on every built package.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import host.integer as hi
from contract.iospec import Golden
from host.integer import (
    IntegerGraphError,
    IntegerModel,
    UnsupportedLayerError,
    load_graph,
    load_package_model,
)
from host.package import open_package

REPO = Path(__file__).resolve().parent.parent
BITSTREAMS = REPO / "bitstreams"
DEFAULT_PKG = BITSTREAMS / "eqnet-fq-uniform-2x2-64qam-pynq-z2"
RTL = "finn.custom_op.fpgadataflow.rtl"


# ------------------------------------------------------------------ helpers
def edge_codes(model: IntegerModel, n: int, seed: int) -> dict[str, np.ndarray]:
    """Random codes over each input's whole range, with its extremes: all-min, all-max,
    alternating, one-hot extremes, and rows drawn from {min, max} only."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, s in model.inputs.items():
        a = rng.integers(s.lo, s.hi + 1, (n, s.features), dtype=np.int64)
        f = s.features
        a[0], a[1] = s.lo, s.hi
        a[2, ::2], a[2, 1::2] = s.lo, s.hi
        a[3, ::2], a[3, 1::2] = s.hi, s.lo
        a[4:4 + f] = 0
        a[4:4 + f][np.arange(f), np.arange(f)] = s.hi
        a[4 + f:4 + 2 * f] = 0
        a[4 + f:4 + 2 * f][np.arange(f), np.arange(f)] = s.lo
        m = 4 + 2 * f
        a[m:m + n // 4] = np.where(rng.random((n // 4, f)) < 0.5, s.lo, s.hi)
        out[k] = a
    return out


def finn_codes(path: Path, codes: dict[str, np.ndarray], outputs: list[str]
               ) -> dict[str, np.ndarray]:
    """FINN's Python execution of a FINN model (exec_mode cppsim), by tensor name."""
    import hw  # noqa: F401  (offline FINN bootstrap)
    from hw.verify import execute_codes

    got = execute_codes(path, dict(codes), {o: 1.0 for o in outputs}, "finn", batch=8192)
    assert isinstance(got, dict)
    return got


def assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray], what: str) -> None:
    assert list(got) == list(want), what
    for k in want:
        assert got[k].dtype == np.int64, (what, k, got[k].dtype)
        bad = (got[k] != np.asarray(want[k])).any(axis=1)
        assert not bad.any(), f"{what}: output {k!r}: {int(bad.sum())} of {len(bad)} " \
                              f"vectors differ, first {np.flatnonzero(bad)[:5].tolist()}"


def mismatching(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> int:
    return int(np.any([(got[k] != np.asarray(want[k])).any(axis=1) for k in want],
                      axis=0).sum())


# ------------------------------------------------------------------ synthetic FINN graphs
def _annotate(g: onnx.GraphProto, tensor: str, dtype: str) -> None:
    a = g.quantization_annotation.add()
    a.tensor_name = tensor
    e = a.quant_parameter_tensor_names.add()
    e.key, e.value = "finn_datatype", dtype


def mvau(name: str, x: str, w: str, y: str, mw: int, mh: int, idt: str, wdt: str,
         odt: str, **extra: Any) -> onnx.NodeProto:
    """An MVAU_rtl node with the attributes FINN writes (noActivation=1 unless given)."""
    attrs = {"ActVal": 0, "MH": mh, "MW": mw, "PE": 1, "SIMD": 1, "backend": "fpgadataflow",
             "binaryXnorMode": 0, "inputDataType": idt, "mem_mode": "internal_decoupled",
             "noActivation": 1, "numInputVectors": [1], "outputDataType": odt,
             "weightDataType": wdt, "accDataType": odt, "resType": "auto",
             "ram_style": "auto", **extra}
    inputs = [x, w] + ([extra.pop("thresholds")] if "thresholds" in extra else [])
    attrs.pop("thresholds", None)
    return helper.make_node("MVAU_rtl", inputs, [y], name=name, domain=RTL, **attrs)


def thresholding(name: str, x: str, t: str, y: str, c: int, steps: int, idt: str, odt: str,
                 act: int = 0, tdt: str | None = None) -> onnx.NodeProto:
    return helper.make_node("Thresholding_rtl", [x, t], [y], name=name, domain=RTL,
                            ActVal=act, NumChannels=c, PE=1, backend="fpgadataflow",
                            inputDataType=idt, numInputVectors=[1], numSteps=steps,
                            outputDataType=odt, weightDataType=tdt or idt)


def write_model(path: Path, nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray],
                ins: dict[str, tuple[int, str]], outs: dict[str, tuple[int, str]],
                dtypes: dict[str, str] | None = None, meta: dict[str, str] | None = None
                ) -> Path:
    """A FINN-style model: graph inputs/outputs [1, F] FLOAT with finn_datatype
    annotations, float32 initializers (as FINN stores them)."""
    vin = [helper.make_tensor_value_info(k, TensorProto.FLOAT, [1, f]) for k, (f, _) in
           ins.items()]
    vout = [helper.make_tensor_value_info(k, TensorProto.FLOAT, [1, f]) for k, (f, _) in
            outs.items()]
    g = helper.make_graph(nodes, "finn", vin, vout,
                          [numpy_helper.from_array(np.asarray(v, np.float32), k)
                           for k, v in inits.items()])
    for k, (_, dt) in {**ins, **outs}.items():
        _annotate(g, k, dt)
    for k, dt in (dtypes or {}).items():
        _annotate(g, k, dt)
    for k, v in (meta or {}).items():
        m = g.metadata_props.add()
        m.key, m.value = k, v
    onnx.save(helper.make_model(g), str(path))
    return path


def half_even_thresholds(c: int, k: int, step: int, rng: np.random.Generator,
                         act: int = 0) -> np.ndarray:
    """Integer thresholds of ``clip(round_half_even((a + b_c) / step), act, act + k)``
    per channel (output = count + ActVal ``act``): the pattern hw/ties.py leaves, steps
    alternating step - 1 / step + 1."""
    b = rng.integers(-3 * step, 3 * step, c)
    levels = np.arange(1, k + 1) + act                  # the output reached at T_j
    edge = (levels - 0.5) * step - b[:, None]           # the tie point below it
    return (edge + (levels % 2 == 1)).astype(np.float64)  # odd: the tie rounds down


def two_stream_model(path: Path, fifo: bool = True, seed: int = 0) -> Path:
    """Inputs a (INT8 x 4), b (INT4 x 3); outputs y (INT6 x 2: matmul, DWC, half-even
    thresholds with ActVal -31) and idx (UINT2 x 3: FIFO, non-uniform thresholds on b,
    one row for all channels). Nodes written in reverse order."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-7, 8, (4, 2))
    t_y = half_even_thresholds(2, 62, 64, rng, act=-31)
    t_idx = np.array([[-5.0, -1.5, 4.0]])                # non-uniform, a fraction
    nodes = [mvau("MVAU_rtl_0", "a", "W0", "acc", 4, 2, "INT8", "INT4", "INT14")]
    if fifo:
        nodes += [helper.make_node("StreamingDataWidthConverter_rtl", ["acc"], ["acc_w"],
                                   name="DWC_0", domain=RTL),
                  helper.make_node("StreamingFIFO_rtl", ["b"], ["b_f"], name="FIFO_0",
                                   domain=RTL)]
    nodes += [thresholding("Thresholding_rtl_0", "acc_w" if fifo else "acc", "T0", "y", 2, 62,
                           "INT14", "INT6", act=-31, tdt="INT15"),
              thresholding("Thresholding_rtl_1", "b_f" if fifo else "b", "T1", "idx", 3, 3,
                           "INT4", "UINT2")]
    return write_model(path, nodes[::-1], {"W0": w, "T0": t_y, "T1": t_idx},
                       {"a": (4, "INT8"), "b": (3, "INT4")},
                       {"y": (2, "INT6"), "idx": (3, "UINT2")},
                       {"acc": "INT14", "W0": "INT4"},
                       {"host_output_scale:y": repr(2.0 ** -5), "host_output_scale:idx": "1.0"})


def plain_two_stream(path: Path, codes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """:func:`two_stream_model` computed by hand from its initializers (Python ints)."""
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    acc = codes["a"].astype(object) @ inits["W0"].astype(np.int64).astype(object)
    y = np.array([[sum(int(v) >= t for t in inits["T0"][c]) - 31 for c, v in enumerate(row)]
                  for row in acc], dtype=np.int64)
    idx = np.array([[sum(int(v) >= t for t in inits["T1"][0]) for v in row]
                    for row in codes["b"]], dtype=np.int64)
    return {"y": y, "idx": idx}


# ------------------------------------------------------------------ small MLP package
@pytest.fixture(scope="module")
def small(small_mlp_export: dict[str, Any], pynq_z2: dict[str, Any],
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tests.test_host_driver import host_package

    pkg = host_package(small_mlp_export, pynq_z2, tmp_path_factory.mktemp("integer_pkg"))
    g = Golden.load(pkg / "golden.npz")
    model = load_package_model(open_package(pkg))
    codes = edge_codes(model, 3000, seed=5)
    return {"pkg": pkg, "golden": g, "model": model, "codes": codes,
            "brevitas": small_mlp_export["model"],
            "finn_golden": finn_codes(pkg / "model_finn.onnx", g.inputs, ["y"]),
            "finn_codes": finn_codes(pkg / "model_finn.onnx", codes, ["y"])}


def test_codes_equal_finn_and_brevitas(small: dict[str, Any]) -> None:
    from host.backends.reference import brevitas_codes

    m, g = small["model"], small["golden"]
    assert [s["method"].split("+")[-1] for s in m.describe()] == ["affine", "affine", "lut"]
    assert_same(m.run(g.inputs), g.outputs, "golden vs Brevitas (export)")
    assert_same(m.run(g.inputs), small["finn_golden"], "golden vs FINN")
    c = small["codes"]
    assert_same(m.run(c), small["finn_codes"], "edge codes vs FINN")
    assert_same(m.run(c), brevitas_codes(small["brevitas"], c), "edge codes vs Brevitas")
    assert_same(m.run(c), m.run_plain(c), "edge codes vs run_plain")
    for n in (1, 2, 3, 17, 1000):  # batch sizes: workspaces, row folding, a remainder
        assert_same(m.run({"x": c["x"][:n]}), {"y": small["finn_codes"]["y"][:n]}, f"n={n}")
    assert_same(m.run(c, check=False), small["finn_codes"], "unchecked")


def test_threads_and_batch_sizes_share_one_model(small: dict[str, Any]) -> None:
    """Workspaces are per thread and batch size (more sizes than are kept): concurrent
    calls of one model give the same codes as FINN (empty batches included)."""
    from concurrent.futures import ThreadPoolExecutor

    m, c, want = small["model"], small["codes"]["x"], small["finn_codes"]["y"]
    sizes = [1, 5, 64, 333, 1000, 2999, 7, 64, 1] * 3

    def job(i: int) -> bool:
        n = sizes[i]
        return all(np.array_equal(m.run({"x": c[j:j + n]})["y"], want[j:j + n])
                   for j in range(0, 3 * n, n))
    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(job, range(len(sizes))))


@pytest.mark.parametrize("method", ["lut", "searchsorted"])
def test_every_threshold_method_equals_finn(small: dict[str, Any], method: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hi.Threshold, "fit_affine", lambda self: None)
    if method == "searchsorted":
        monkeypatch.setattr(hi, "LUT_MAX", 0)
    m = IntegerModel.load(small["pkg"] / "model_finn.onnx")
    assert {s["method"] for s in m.describe()} == {f"matmul+{method}"}
    assert_same(m.run(small["codes"]), small["finn_codes"], method)
    assert_same(m.run(small["golden"].inputs), small["golden"].outputs, method)


def test_threshold_layers_exhaustively(small: dict[str, Any]) -> None:
    """Every integer a threshold layer can see, every channel: the chosen method's
    function (affine: clip(rint(a*m + q)), lut: the table) == levels[count(T <= a)]
    with the thresholds as stored (FINN's multithreshold)."""
    m = small["model"]
    for st, lay in zip(m.steps, [x for x in m.order if x.thresholds is not None],
                       strict=True):
        th = st.threshold
        t = np.broadcast_to(lay.thresholds, (len(th.amin), lay.thresholds.shape[1]))
        fit, lut = th.fit_affine(), th.lut()
        for c in range(len(th.amin)):
            a = np.arange(th.amin[c], th.amax[c] + 1)
            want = lay.levels[(a[:, None].astype(np.float64) >= t[c][None]).sum(1)]
            if st.method.endswith("affine"):
                got = np.clip(np.rint(a * fit[0][c] + fit[1][c]), lay.levels[0],
                              lay.levels[-1])
            else:
                table, off, base, top = lut
                got = table[np.clip(a + off[c], base[c], top[c])]
            assert np.array_equal(got, want), (st.layer, c)


def test_negative_control_one_weight_changed(small: dict[str, Any], tmp_path: Path) -> None:
    model = onnx.load(str(small["pkg"] / "model_finn.onnx"))
    init = next(t for t in model.graph.initializer if t.name == model.graph.node[0].input[1])
    w = numpy_helper.to_array(init).copy()
    i, j = np.unravel_index(np.argmax(np.abs(w)), w.shape)
    w[i, j] -= np.sign(w[i, j])                 # one step towards 0: stays in range
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    bad = tmp_path / "model_finn.onnx"
    onnx.save(model, str(bad))
    changed = IntegerModel.load(bad)
    g, c = small["golden"], small["codes"]
    assert mismatching(changed.run(g.inputs), g.outputs) > 0
    assert mismatching(changed.run(c), small["finn_codes"]) > 0
    assert_same(changed.run(c), finn_codes(bad, c, ["y"]), "changed copy vs FINN on it")


# ------------------------------------------------------------------ the reader
def assert_reader_matches_onnx(path: Path) -> None:
    """Every node (name, op type, domain, inputs, outputs, every attribute) and every
    initializer (name, dims, data type, values and dtype) equals onnx.load's."""
    ref, ours = onnx.load(str(path)), load_graph(path)
    assert [(n.name, n.op_type, n.domain, list(n.input), list(n.output))
            for n in ref.graph.node] == [(n.name, n.op_type, n.domain, n.inputs, n.outputs)
                                         for n in ours.nodes]
    for rn, on in zip(ref.graph.node, ours.nodes, strict=True):
        assert [a.name for a in rn.attribute] == list(on.attributes)
        for a in rn.attribute:
            want, got = helper.get_attribute_value(a), on.attributes[a.name]
            if isinstance(want, onnx.TensorProto):
                want, got = numpy_helper.to_array(want), got.array()
                assert got.dtype == want.dtype and np.array_equal(got, want), a.name
            elif isinstance(want, list) and want and isinstance(want[0], onnx.TensorProto):
                assert [np.array_equal(numpy_helper.to_array(x), y.array())
                        for x, y in zip(want, got, strict=True)] == [True] * len(want)
            else:
                assert got == want and type(got) is type(want), (a.name, got, want)
    assert [t.name for t in ref.graph.initializer] == list(ours.initializers)
    for t in ref.graph.initializer:
        mine = ours.initializers[t.name]
        assert (mine.dims, mine.data_type) == (list(t.dims), t.data_type)
        want, got = numpy_helper.to_array(t), mine.array()
        assert got.dtype == want.dtype and got.shape == want.shape, t.name
        assert np.array_equal(got, want, equal_nan=want.dtype.kind == "f"), t.name


def test_reader_matches_onnx_on_the_small_package(small: dict[str, Any]) -> None:
    for rel in ("model_finn.onnx", "model_qonnx.onnx"):
        assert_reader_matches_onnx(small["pkg"] / rel)


def test_reader_on_every_encoding(tmp_path: Path) -> None:
    """Tensors in int32_data / int64_data / uint64_data / float_data / double_data and
    raw_data, negative varints, a scalar, FLOAT16 bits; attributes of every readable type."""
    rng = np.random.default_rng(0)
    arrays = {"f32": (TensorProto.FLOAT, rng.normal(size=(2, 3)).astype(np.float32)),
              "f64": (TensorProto.DOUBLE, rng.normal(size=(3,))),
              "i8": (TensorProto.INT8, np.array([-128, -1, 0, 127], np.int8)),
              "u8": (TensorProto.UINT8, np.array([0, 255, 7], np.uint8)),
              "i16": (TensorProto.INT16, np.array([-32768, 5], np.int16)),
              "u16": (TensorProto.UINT16, np.array([65535, 1], np.uint16)),
              "i32": (TensorProto.INT32, np.array([[-2 ** 31, 2 ** 31 - 1]], np.int32)),
              "i64": (TensorProto.INT64, np.array([-2 ** 63, 2 ** 63 - 1, -3], np.int64)),
              "u32": (TensorProto.UINT32, np.array([2 ** 32 - 1, 3], np.uint32)),
              "u64": (TensorProto.UINT64, np.array([2 ** 64 - 1, 9], np.uint64)),
              "b": (TensorProto.BOOL, np.array([True, False, True])),
              "f16": (TensorProto.FLOAT16, np.array([1.5, -2.25, 65504], np.float16)),
              "scalar": (TensorProto.FLOAT, np.array(0.75, np.float32))}
    inits = []
    for name, (dt, a) in arrays.items():
        inits.append(helper.make_tensor(name, dt, a.shape, a.flatten().tolist()
                                        if dt != TensorProto.FLOAT16 else a.flatten()))
        inits.append(helper.make_tensor(name + "_raw", dt, a.shape, a.tobytes(), raw=True))
    t = helper.make_tensor("t", TensorProto.INT32, [2], [-7, 9])
    node = helper.make_node("Thing", ["x"], ["y"], name="n0", domain="my.domain",
                            f=0.1, i=-5, s=b"\xffbytes", t=t, floats=[1.0, -0.5],
                            ints=[-1, 2 ** 40, 0], strings=[b"a", b"bc"], tensors=[t, t],
                            zero=0, empty_s="")
    g = helper.make_graph([node, helper.make_node("Relu", ["y"], ["z"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                          [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 2])],
                          inits)
    onnx.save(helper.make_model(g), str(tmp_path / "enc.onnx"))
    assert_reader_matches_onnx(tmp_path / "enc.onnx")
    for name, (_, a) in arrays.items():
        got = load_graph(tmp_path / "enc.onnx").initializers[name].array()
        assert got.dtype == a.dtype and np.array_equal(got, a)


# ------------------------------------------------------------------ synthetic graphs
def test_two_inputs_two_outputs_fifo_dwc_in_any_order(tmp_path: Path) -> None:
    path = two_stream_model(tmp_path / "m.onnx")
    m = IntegerModel.load(path)
    assert list(m.inputs) == ["a", "b"] and list(m.outputs) == ["y", "idx"]
    steps = {s["layer"]: s["method"] for s in m.describe()}
    assert steps == {"MVAU_rtl_0+Thresholding_rtl_0": "matmul+affine",
                     "Thresholding_rtl_1": "lut"}
    c = edge_codes(m, 2000, seed=3)
    want = plain_two_stream(path, c)
    assert_same(m.run(c), want, "vs Python ints")
    assert_same(m.run_plain(c), want, "run_plain vs Python ints")
    # FINN's execution of the same graph without the FIFO/DWC (its shape inference
    # wants their folded shapes)
    nofifo = two_stream_model(tmp_path / "nofifo.onnx", fifo=False)
    assert_same(m.run(c), finn_codes(nofifo, c, ["y", "idx"]), "vs FINN")
    # a standalone uniform threshold layer on a graph input: affine, scaled in numpy
    rng = np.random.default_rng(2)
    t = half_even_thresholds(3, 15, 8, rng)
    p = write_model(tmp_path / "alone.onnx",
                    [thresholding("T", "b", "Tt", "q", 3, 15, "INT8", "UINT4")], {"Tt": t},
                    {"b": (3, "INT8")}, {"q": (3, "UINT4")})
    alone = IntegerModel.load(p)
    assert alone.describe()[0]["method"] == "affine"
    every = {"b": np.repeat(np.arange(-128, 128), 3).reshape(-1, 3)}  # every input
    assert_same(alone.run(every), finn_codes(p, every, ["q"]), "standalone vs FINN")


def test_internal_thresholds_and_broadcast_row(tmp_path: Path) -> None:
    """MVAU with noActivation=0 (its thresholds as input 2) and a (1, K) threshold row."""
    rng = np.random.default_rng(4)
    w = rng.integers(-3, 4, (6, 5))
    t = np.sort(rng.integers(-60, 60, (1, 7)).astype(np.float64), axis=1)
    n = mvau("M", "x", "W", "y", 6, 5, "INT5", "INT3", "UINT3", noActivation=0,
             thresholds="T", accDataType="INT10")
    p = write_model(tmp_path / "m.onnx", [n], {"W": w, "T": t}, {"x": (6, "INT5")},
                    {"y": (5, "UINT3")})
    m = IntegerModel.load(p)
    c = edge_codes(m, 1500, seed=1)
    want = {"y": ((c["x"] @ w)[:, :, None] >= t[0]).sum(-1)}
    assert_same(m.run(c), want, "vs numpy")
    assert_same(m.run(c), finn_codes(p, c, ["y"]), "vs FINN")


@pytest.mark.parametrize("bits_in,bits_w,dtype", [(8, 8, "float32"), (24, 8, "float64"),
                                                  (32, 24, "int64")])
def test_exactness_bound_picks_the_dtype(tmp_path: Path, bits_in: int, bits_w: int,
                                         dtype: str) -> None:
    """max|x| * sum|W| per column: <= 2**24 float32, <= 2**53 float64, else int64. The
    inputs make float32 (and float64) wrong where they are not chosen."""
    mw, mh = 64, 3
    wmax = 2 ** (bits_w - 1) - 1
    rng = np.random.default_rng(bits_in)
    w = rng.integers(-wmax, wmax + 1, (mw, mh))
    w[:, 0] = wmax                               # one column at the worst case
    p = write_model(tmp_path / "m.onnx",
                    [mvau("M", "x", "W", "y", mw, mh, f"INT{bits_in}", f"INT{bits_w}",
                          "INT62")], {"W": w}, {"x": (mw, f"INT{bits_in}")},
                    {"y": (mh, "INT62")})
    m = IntegerModel.load(p)
    assert m.describe()[0]["dtype"] == dtype
    c = edge_codes(m, 500, seed=0)
    c["x"][5:50] = rng.integers(2 ** (bits_in - 1) - 9, 2 ** (bits_in - 1), (45, mw)) | 1
    want = (c["x"].astype(object) @ w.astype(object)).astype(np.int64)  # Python ints
    assert_same(m.run(c), {"y": want}, dtype)
    if dtype != "float32":  # the cheaper dtype would have been wrong
        cheaper = np.float32 if dtype == "float64" else np.float64
        assert (c["x"].astype(cheaper) @ w.astype(cheaper)).astype(np.int64).tolist() \
            != want.tolist()


def test_datatypes_the_hardware_would_wrap_are_refused(tmp_path: Path) -> None:
    w = np.full((4, 2), 7)
    p = write_model(tmp_path / "m.onnx",
                    [mvau("M", "x", "W", "y", 4, 2, "INT8", "INT4", "INT8")], {"W": w},
                    {"x": (4, "INT8")}, {"y": (2, "INT8")})
    with pytest.raises(IntegerGraphError, match=r"node 'M' \(MVAU_rtl\): its accumulator "
                                                r"spans \[-3584, 3556\], outside its "
                                                r"datatype INT8.*would wrap"):
        IntegerModel.load(p)


@pytest.mark.parametrize("op,attrs,message", [
    ("ElementwiseMul_rtl", {}, "not modelled by the integer executor"),
    ("Lookup_hls", {}, "not modelled by the integer executor"),
    ("LabelSelect_hls", {"K": 1}, "not modelled by the integer executor"),
    ("Add", {}, "not modelled by the integer executor"),
])
def test_unsupported_node_is_refused_by_name(tmp_path: Path, op: str, attrs: dict[str, Any],
                                             message: str) -> None:
    nodes = [mvau("MVAU_rtl_0", "x", "W", "acc", 4, 4, "INT8", "INT2", "INT12"),
             helper.make_node(op, ["acc"], ["y"], name=f"{op}_0", domain=RTL, **attrs)]
    p = write_model(tmp_path / "m.onnx", nodes, {"W": np.ones((4, 4))}, {"x": (4, "INT8")},
                    {"y": (4, "INT12")})
    with pytest.raises(UnsupportedLayerError, match=rf"node '{op}_0' \({op}\): {message}"):
        IntegerModel.load(p)


def test_other_refusals_name_the_node(tmp_path: Path) -> None:
    base = {"W": np.ones((4, 4))}
    cases = [
        (mvau("X", "x", "W", "y", 4, 4, "INT8", "INT2", "INT12", binaryXnorMode=1), base,
         UnsupportedLayerError, r"node 'X' \(MVAU_rtl\): binaryXnorMode=1"),
        (mvau("E", "x", "Wext", "y", 4, 4, "INT8", "INT2", "INT12"), {},
         UnsupportedLayerError, r"node 'E' \(MVAU_rtl\): its weights .* not an initializer"),
        (thresholding("U", "x", "T", "y", 4, 3, "INT8", "UINT2"),
         {"T": np.array([[0.0, 5.0, 2.0]])}, UnsupportedLayerError,
         r"node 'U' \(Thresholding_rtl\): thresholds of channel 0 are not non-decreasing"),
        (mvau("S", "x", "W", "y", 5, 4, "INT8", "INT2", "INT12"), base, IntegerGraphError,
         r"node 'S' \(MVAU_rtl\): weights of shape \(4, 4\), attributes say"),
        (mvau("C", "z", "W", "y", 4, 4, "INT8", "INT2", "INT12"), base, IntegerGraphError,
         r"node 'C' \(MVAU_rtl\): needs tensor 'z', which is produced by no node"),
    ]
    for i, (node, inits, err, message) in enumerate(cases):
        p = write_model(tmp_path / f"m{i}.onnx", [node], inits, {"x": (4, "INT8")},
                        {"y": (4, "INT12" if node.op_type == "MVAU_rtl" else "UINT2")})
        with pytest.raises(err, match=message):
            IntegerModel.load(p)


def test_inputs_are_checked(tmp_path: Path) -> None:
    m = IntegerModel.load(two_stream_model(tmp_path / "m.onnx"))
    ok = {"a": np.zeros((3, 4), np.int64), "b": np.zeros((3, 3), np.int64)}
    for bad, message in [({"a": ok["a"]}, "missing \\['b'\\]"),
                         ({**ok, "c": ok["b"]}, "unknown \\['c'\\]"),
                         ({**ok, "a": ok["a"] + 128}, "outside INT8"),
                         ({**ok, "b": ok["b"][:2]}, "different numbers of vectors"),
                         ({**ok, "a": ok["a"] + 0.5}, "must be integers"),
                         ({**ok, "b": ok["b"][:, :2]}, "expected \\(N, 3\\)")]:
        with pytest.raises(ValueError, match=message):
            m.run(bad)
    assert m.run({k: v.astype(np.float32) for k, v in ok.items()})["y"].dtype == np.int64


# ------------------------------------------------------------------ the backend
def test_backend_through_the_accelerator_and_cli(small: dict[str, Any], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from host.__main__ import main
    from host.driver import Accelerator, BackendClosedError
    from host.package import PackageIntegrityError

    g = small["golden"]
    with Accelerator(small["pkg"], backend="integer", batch_size=7) as acc:
        assert acc.backend.name == "integer"
        assert np.array_equal(acc.execute_codes(g.inputs["x"]), g.outputs["y"])
        assert acc.last["calls"] == -(-len(g) // 7)
        y = acc.execute(g.inputs["x"][:5] * acc.input.scale)   # floats in and out
        assert np.array_equal(y, g.outputs["y"][:5] * acc.output.scale)
    with pytest.raises(BackendClosedError):
        acc.execute_codes(g.inputs["x"][:1])
    assert main(["verify", str(small["pkg"]), "--backend", "integer", "--vectors", "0"]) == 0
    out = capsys.readouterr().out
    assert "backend integer" in out and out.strip().endswith(f"{len(g)} passed, 0 failed")
    # the model changed after the package was opened: refused at the read
    copy = tmp_path / small["pkg"].name
    shutil.copytree(small["pkg"], copy)
    pkg = open_package(copy)
    data = bytearray((copy / "model_finn.onnx").read_bytes())
    data[-1] ^= 1
    (copy / "model_finn.onnx").write_bytes(bytes(data))
    with pytest.raises(PackageIntegrityError, match="model_finn.onnx: sha256"):
        Accelerator(pkg, backend="integer")


def test_backend_with_two_streams(tmp_path: Path) -> None:
    """A package with two inputs and two outputs (a codebook index): the synthetic graph
    as its model_finn.onnx, golden codes from Python ints; verify passes, a changed
    golden code fails."""
    from host.driver import Accelerator
    from host.verify import verify
    from hw.package import write_manifest
    from tests.test_host_package import MULTI, fake_package

    root = fake_package(tmp_path / "two-pynq-z2", streams=MULTI)
    two_stream_model(root / "model_finn.onnx")
    m = IntegerModel.load(root / "model_finn.onnx")
    c = edge_codes(m, 300, seed=9)
    want = plain_two_stream(root / "model_finn.onnx", c)
    sets = np.array(["extremes"] * 300)
    np.savez(root / "golden.npz", **Golden(c, want, sets, np.zeros(300, np.int64)).to_npz())
    write_manifest(root, json.loads((root / "manifest.json").read_text()))
    with Accelerator(root, backend="integer", batch_size=64) as acc:
        assert_same(acc.execute_codes(c), want, "two streams")
    report, facts = verify(root, "integer", vectors=0)
    assert (report.passed, report.failed, facts["backend"]) == (300, 0, "integer")
    want["idx"][7, 1] = (want["idx"][7, 1] + 1) % 3
    np.savez(root / "golden.npz", **Golden(c, want, sets, np.zeros(300, np.int64)).to_npz())
    write_manifest(root, json.loads((root / "manifest.json").read_text()))
    report, _ = verify(root, "integer", vectors=0)
    assert report.failed == 1 and report.rows[0]["first_failures"] == [7]


def test_bench_rows_and_cli(small: dict[str, Any], tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    """``host bench``'s integer rows, and ``python -m host.integer PKG`` (JSON, every
    threshold method timed and checked equal, codes == run_plain on the timed batch)."""
    from host.bench import integer_rows
    from host.integer import main

    pkg = open_package(small["pkg"])
    x = small["golden"].inputs["x"][:64] * pkg.inputs["x"].scale
    rows, facts = integer_rows(pkg, x, [1, 16], 0.01)
    assert [(r["backend"], r["batch"]) for r in rows] == [("integer", 1), ("integer", 16)]
    assert all(r["vectors_per_s"] > 0 for r in rows) and len(facts["steps"]) == 3
    assert "num_threads=1" in facts["threads"]
    assert main([str(small["pkg"]), "--out", str(tmp_path), "--batch-sizes", "1,64",
                 "--min-time", "0.01"]) == 0
    res = json.loads((tmp_path / f"integer-{small['pkg'].name}.json").read_text())
    assert res["exact_vs_plain_on_timed_batch"] is True
    assert [r["batch"] for r in res["rows"]] == [1, 64, 1]
    methods = {m["chosen"]: set(m) for m in res["threshold_methods"]}
    assert {"affine_s", "lut_s", "searchsorted_s", "compare_s"} <= methods["matmul+affine"]
    assert "vectors/s" in capsys.readouterr().out


# ------------------------------------------------------------------ board side
FORBIDDEN = ["torch", "finn", "qonnx", "brevitas", "hw", "onnx", "onnxruntime", "export",
             "train", "threadpoolctl"]


def test_board_side_imports_only_numpy() -> None:
    code = ("import sys, host.integer, host.backends.integer; "
            f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]; assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_runs_with_numpy1(small: dict[str, Any], tmp_path: Path) -> None:
    """The board's environment (host/requirements-board.txt: numpy 1.x, no onnx): the
    executor reads the package's model and gives the golden codes."""
    from tests.test_host_numpy1 import board_venv

    py = board_venv()
    script = (
        "import sys, numpy as np\n"
        "from host.integer import IntegerModel\n"
        "from contract.iospec import Golden\n"
        "d = sys.argv[1]\n"
        "m = IntegerModel.load(d + '/model_finn.onnx')\n"
        "g = Golden.load(d + '/golden.npz')\n"
        "got = m.run(g.inputs)\n"
        "assert all(np.array_equal(got[k], g.outputs[k]) for k in g.outputs)\n"
        "assert got['y'].dtype == np.int64\n"
        f"bad = [k for k in {FORBIDDEN!r} if k in sys.modules]\n"
        "assert not bad, bad\n"
        "print('numpy', np.__version__, [s['method'] for s in m.describe()], len(g))\n")
    r = subprocess.run([str(py), "-c", script, str(small["pkg"])], cwd=REPO,
                       capture_output=True, text=True,
                       env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("numpy 1."), r.stdout


# ------------------------------------------------------------------ slow: built packages
def built_packages() -> list[Path]:
    return sorted(p for p in BITSTREAMS.glob("*-*") if (p / "manifest.json").is_file()
                  and not p.name.startswith(".") and not p.name.endswith(".failed"))


@pytest.mark.slow
def test_built_packages_reader_finn_and_golden() -> None:
    pkgs = built_packages()
    assert DEFAULT_PKG in pkgs, "build it: make main"
    for pkg in pkgs:
        for rel in ("model_finn.onnx", "model_qonnx.onnx"):
            assert_reader_matches_onnx(pkg / rel)
        m = load_package_model(open_package(pkg))
        g = Golden.load(pkg / "golden.npz")
        assert_same(m.run(g.inputs), {k: g.outputs[k] for k in m.outputs}, pkg.name)
        c = edge_codes(m, 4000, seed=11)
        assert_same(m.run(c), finn_codes(pkg / "model_finn.onnx", c, list(m.outputs)),
                    f"{pkg.name} vs FINN")


@pytest.mark.slow
def test_default_package_100k_vectors_vs_rtlsim_and_brevitas(tmp_path: Path) -> None:
    """Golden + fresh channel vectors + random codes with extremes (>= 100,000 vectors):
    the integer executor == the package's RTL in Verilator (rtlsim backend, random valid
    gaps and back-pressure) == the Brevitas network."""
    from configs import load_design
    from host.backends.reference import brevitas_codes, load_brevitas
    from host.driver import Accelerator
    from zoo.datasets import design_inputs

    assert (DEFAULT_PKG / "manifest.json").is_file(), "build it: make main"
    pkg = open_package(DEFAULT_PKG)
    m = load_package_model(pkg)
    (name, stream), = pkg.inputs.items()
    g = Golden.load(DEFAULT_PKG / "golden.npz")
    x = design_inputs(load_design(pkg.manifest["design"]), [name], 50_000, seed=2024,
                      cache_dir=None)[name]
    codes = np.concatenate([g.inputs[name], stream.to_codes(x),
                            edge_codes(m, 40_000, seed=12)[name]])
    assert len(codes) >= 100_000
    got = m.run({name: codes})
    with Accelerator(pkg, "rtlsim", batch_size=8192, work=tmp_path, p_valid=0.8,
                     p_ready=0.7, sim_seed=3) as acc:
        rtl = acc.execute_codes({name: codes})
        assert acc.last["vectors"] == len(codes) and acc.last["backend"] == "rtlsim"
    assert_same(got, rtl, "integer vs rtlsim")
    assert_same(got, brevitas_codes(load_brevitas(pkg), {name: codes}), "integer vs Brevitas")
    assert_same({k: v[:len(g)] for k, v in got.items()}, g.outputs, "golden")
