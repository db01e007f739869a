"""Named I/O streams in host/: a package with two inputs and two outputs (datatypes and
scales differing per stream, a codebook index output) end to end where no trained model
is needed.

* the codec per stream (:class:`host.codec.StreamSpec`, the rules of contract.iospec),
  the codebook lookup;
* :class:`host.driver.Accelerator` with dicts in and out (and plain arrays for one input)
  through an in-test :class:`host.driver.Backend` that computes a known integer function
  (``tests.test_host_package.known_function``), and through the ``reference`` backend's
  QONNX execution of the fake package's executable ``model_qonnx.onnx``;
* the IODMA backends (rtlsim, pynq) take one IODMA per stream; ``host bench`` refuses
  several streams by name, before measuring anything;
* the contract re-derived from the ONNX models with two inputs and two outputs, the
  manifest checked against ``iospec.json``, a package in the old single-stream format
  refused with a request to rebuild it;
* ``host verify`` per named output (golden), and its fresh checks with a zoo ``QuantNet``
  (two inputs, a ModuleDict of input quantizers, a codebook head) standing in for a
  trained checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contract.iospec import Golden, IOSpec
from host.driver import Accelerator, Backend, MultiStreamError
from host.package import Package, open_package
from hw.package import write_manifest
from tests.test_host_integrity import manifest_of, refused, reseal
from tests.test_host_package import (
    CODEBOOK,
    MULTI,
    SINGLE,
    fake_models,
    fake_package,
    fake_spec,
    known_function,
    stream,
)

ONE_IN_TWO_OUT = {"inputs": [stream("s", 4, "INT8", 2 ** -7, elems=4)],
                  "outputs": [stream("u", 2, "INT6", 2 ** -5),
                              stream("v", 4, "UINT2", codebook=CODEBOOK, elems=2)]}


class NetBackend(Backend):
    """The fake network in numpy: ``known_function`` of the package's contract."""

    name = "net"

    def __init__(self, package: Package, batch_size: int) -> None:
        super().__init__(package, batch_size)
        self.spec, self.seen = package.iospec(), []

    def run(self, codes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.ensure_open()
        self.seen.append([(k, v.shape, v.dtype) for k, v in codes.items()])
        return known_function(self.spec, codes)


@pytest.fixture
def multi(tmp_path: Path) -> Path:
    return fake_package(tmp_path / "m-pynq-z2", streams=MULTI)


def golden_of(root: Path) -> Golden:
    return Golden.load(root / "golden.npz")


# ------------------------------------------------------------------ codec per stream
def test_streams_from_the_manifest(multi: Path) -> None:
    p = open_package(multi)
    assert list(p.inputs) == p.input_names == ["a", "b"]
    assert list(p.outputs) == p.output_names == ["y", "idx"]
    a, b = p.inputs["a"], p.inputs["b"]
    y, idx = p.outputs["y"], p.outputs["idx"]
    assert (a.features, a.dtype.name, a.scale, a.beats, a.elems_per_beat, a.width_bits) == (
        4, "INT8", 2 ** -7, 2, 2, 16)
    assert (b.features, b.dtype.name, b.scale, b.beats, b.elems_per_beat, b.width_bits) == (
        3, "INT4", 0.25, 1, 3, 12)
    assert b.packed_shape(5) == (5, 1, 2) and a.packed_shape(5) == (5, 2, 2)
    assert (y.dtype.name, y.scale, y.post) == ("INT6", 2 ** -5, "scale")
    assert (idx.dtype.name, idx.scale, idx.codebook, idx.post) == ("UINT2", None, CODEBOOK,
                                                                   "codebook")
    assert p.iospec() == fake_spec(MULTI)


def test_float_to_code_per_stream(multi: Path) -> None:
    from host.codec import pack, unpack

    p = open_package(multi)
    a, b = p.inputs["a"], p.inputs["b"]
    x = np.array([[0.3, -0.3, 10.0, -np.inf]])
    assert a.to_codes(x).tolist() == [[38, -38, 127, -128]]       # 2^-7, INT8
    assert b.to_codes(x[:, :3]).tolist() == [[1, -1, 7]]          # 2^-2, INT4
    assert b.to_codes(np.array([[0.375, 0.625, -100.0]])).tolist() == [[2, 2, -8]]  # ties
    with pytest.raises(ValueError, match=r"b: codes span \[-9, 0\], outside INT4"):
        b.check_codes(np.array([[-9, 0, 0]]))
    with pytest.raises(ValueError, match=r"a: input contains NaN at vector 0, feature 1"):
        a.to_codes(np.array([[0.0, np.nan, 0.0, 0.0]]))
    rng = np.random.default_rng(0)
    for s in (*p.inputs.values(), *p.outputs.values()):
        codes = rng.integers(s.dtype.min, s.dtype.max + 1, (9, s.features))
        packed = pack(codes, s)
        assert packed.shape == s.packed_shape(9)
        assert np.array_equal(unpack(packed, s), codes)


def test_codebook_lookup(multi: Path) -> None:
    idx = open_package(multi).outputs["idx"]
    got = idx.to_float(np.array([[0, 1, 2], [3, 3, 0]]))
    assert got.dtype == np.float32
    assert got.tolist() == [[-1.5, -0.25, 0.5], [2.0, 2.0, -1.5]]
    with pytest.raises(ValueError, match="idx: code outside the codebook's 4 levels"):
        idx.to_float(np.array([[0, 4, 0]]))
    # Floats take the nearest level (a value half-way between two takes the higher one).
    levels = [-1.5, -0.25, 0.5, 2.0]
    assert idx.to_codes(np.array([[-1.0, 0.2, 5.0], [-0.875, -9.0, 1.25]])).tolist() == \
        [[0, 2, 3], [1, 0, 3]]
    assert idx.to_codes(np.array([levels[:3]])).tolist() == [[0, 1, 2]]


# ------------------------------------------------------------------ the driver, by name
def test_execute_codes_by_name_in_batches(multi: Path) -> None:
    g = golden_of(multi)
    with Accelerator(multi, NetBackend, batch_size=7) as acc:
        got = acc.execute_codes({"b": g.inputs["b"], "a": g.inputs["a"]})  # any order
        assert isinstance(got, dict) and list(got) == ["y", "idx"]
        for k in got:
            assert got[k].dtype == np.int64 and np.array_equal(got[k], g.outputs[k])
        assert acc.last["calls"] == 6 and acc.last["vectors"] == 40
        # the backend gets graph order, int64 codes, at most batch_size vectors
        assert acc.backend.seen[0] == [("a", (7, 4), np.int64), ("b", (7, 3), np.int64)]
        assert acc.backend.seen[-1] == [("a", (5, 4), np.int64), ("b", (5, 3), np.int64)]
        empty = acc.execute_codes({"a": np.zeros((0, 4)), "b": np.zeros((0, 3))})
        assert empty["y"].shape == (0, 2) and empty["idx"].shape == (0, 3)


def test_execute_floats_by_name_with_codebook(multi: Path) -> None:
    rng = np.random.default_rng(3)
    x = {"a": rng.uniform(-1.2, 1.2, (25, 4)), "b": rng.uniform(-2.5, 2.5, (25, 3))}
    with Accelerator(multi, NetBackend, batch_size=10) as acc:
        y = acc.execute(x)
        codes = known_function(fake_spec(MULTI), {k: acc.inputs[k].to_codes(v)
                                                  for k, v in x.items()})
        assert y["y"].dtype == y["idx"].dtype == np.float32
        assert np.array_equal(y["y"], (codes["y"] * 2.0 ** -5).astype(np.float32))
        assert np.array_equal(y["idx"], np.asarray(CODEBOOK, np.float32)[codes["idx"]])
        one = acc.execute({"a": x["a"][4], "b": x["b"][4]})  # one vector: (F,) -> (G,)
        assert one["y"].shape == (2,) and np.array_equal(one["idx"], y["idx"][4])


def test_named_calls_are_checked(multi: Path) -> None:
    g = golden_of(multi)
    with Accelerator(multi, NetBackend) as acc:
        with pytest.raises(MultiStreamError, match=r"2 inputs \['a', 'b'\]: pass a dict"):
            acc.execute_codes(g.inputs["a"])
        with pytest.raises(MultiStreamError, match="pass a dict"):
            acc.execute(np.zeros((1, 4)))
        with pytest.raises(ValueError, match=r"inputs are \['a', 'b'\]; missing \['b'\]"):
            acc.execute_codes({"a": g.inputs["a"]})
        with pytest.raises(ValueError, match=r"unknown \['c'\]"):
            acc.execute_codes({**g.inputs, "c": g.inputs["a"]})
        with pytest.raises(ValueError, match=r"different numbers of vectors \{'a': 40, "
                                             r"'b': 39\}"):
            acc.execute_codes({"a": g.inputs["a"], "b": g.inputs["b"][1:]})
        with pytest.raises(ValueError, match="b: codes span"):
            acc.execute_codes({"a": g.inputs["a"], "b": g.inputs["b"] + 8})
        with pytest.raises(MultiStreamError, match=r"use \.inputs\[name\]"):
            acc.input  # noqa: B018
        with pytest.raises(MultiStreamError, match=r"use \.outputs\[name\]"):
            acc.output  # noqa: B018


def test_plain_arrays_for_one_input(tmp_path: Path) -> None:
    single = fake_package(tmp_path / "s", streams=SINGLE)
    g = golden_of(single)
    with Accelerator(single, NetBackend) as acc:
        got = acc.execute_codes(g.inputs["soft_bits"])  # plain in, one output: plain out
        assert isinstance(got, np.ndarray) and np.array_equal(got, g.outputs["latent"])
        named = acc.execute_codes(g.inputs)               # a dict in: a dict out
        assert list(named) == ["latent"] and np.array_equal(named["latent"], got)
        assert acc.input.name == "soft_bits" and acc.output.name == "latent"
        assert acc.execute(np.zeros(12)).shape == (6,)
    two = fake_package(tmp_path / "t", streams=ONE_IN_TWO_OUT)
    g = golden_of(two)
    with Accelerator(two, NetBackend) as acc:
        got = acc.execute_codes(g.inputs["s"])            # plain in, two outputs: a dict
        assert list(got) == ["u", "v"] and np.array_equal(got["v"], g.outputs["v"])
        y = acc.execute(np.full((3, 4), 0.1))
        assert list(y) == ["u", "v"] and set(y["v"].ravel()) <= set(CODEBOOK)


def test_backend_answers_are_checked(multi: Path) -> None:
    class Missing(NetBackend):
        def run(self, codes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {"y": super().run(codes)["y"]}

    class Short(NetBackend):
        def run(self, codes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {k: v[:1] for k, v in super().run(codes).items()}

    g = golden_of(multi)
    with Accelerator(multi, Missing) as acc, pytest.raises(
            RuntimeError, match=r"backend net returned outputs \['y'\], the package's are "
                                r"\['y', 'idx'\]"):
        acc.execute_codes(g.inputs)
    with Accelerator(multi, Short) as acc, pytest.raises(
            RuntimeError, match=r"output 'y' of shape \(1, 2\), expected \(40, 2\)"):
        acc.execute_codes(g.inputs)


# ------------------------------------------------------------------ IODMA backends
def test_dma_backends_take_one_iodma_per_stream(multi: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """rtlsim and pynq accept several streams (one IODMA each, FINN's names idma0.. /
    odma0.. in I/O spec order); the pynq backend off-board refuses for want of a board,
    not of streams. (Through the RTL: tests/test_host_multistream.py; the pynq code path on
    a stub board: tests/test_host_stub_board.py.)"""
    import host.backends.rtlsim as rtlsim
    from host.driver import BoardUnavailableError, DmaBackend, dma_names

    assert dma_names(open_package(multi)) == (["idma0", "idma1"], ["odma0", "odma1"])
    built = []

    def no_rtl(package: Package, work: Path | None = None) -> None:
        built.append(package.name)
        raise FileNotFoundError("no RTL in the fake package")

    monkeypatch.setattr(rtlsim, "ensure_binary", no_rtl)
    with pytest.raises(FileNotFoundError, match="no RTL"):
        Accelerator(multi, "rtlsim")
    assert built == [multi.name]  # got as far as the Verilator build
    with pytest.raises(BoardUnavailableError):
        Accelerator(multi, "pynq")

    class Regs:
        def read(self, offset: int) -> int:
            return 0

        def write(self, offset: int, value: int) -> None:
            pass

    class Mem(DmaBackend):
        def allocate(self, shape: tuple[int, ...]) -> np.ndarray:
            return np.zeros(shape, np.uint8)

    with pytest.raises(ValueError, match=r"1 input and 2 output IODMAs for package "
                                         r"m-pynq-z2's 2 input stream\(s\) \['a', 'b'\]"):
        Mem(open_package(multi), 4, [Regs()], [Regs(), Regs()])


def test_bench_refuses_several_streams(multi: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from host.__main__ import main
    from host.bench import run_bench

    with pytest.raises(MultiStreamError, match=r"host bench carries one input .*\['a', 'b'\]"):
        run_bench(multi, tmp_path / "out", [1], 0.05)
    assert main(["bench", str(multi), "--out", str(tmp_path / "out")]) == 2
    assert "host bench" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ reference: QONNX
def test_reference_qonnx_runs_several_streams(multi: Path) -> None:
    """QONNX execution (hw.verify.execute_codes) of the fake package's model_qonnx.onnx,
    tensors by contract name: the known function, exactly."""
    g = golden_of(multi)
    with Accelerator(multi, "reference", kind="qonnx", batch_size=16) as acc:
        got = acc.execute_codes(g.inputs)
        assert acc.backend.name == "reference-qonnx" and acc.last["calls"] == 3
    for k in ("y", "idx"):
        assert np.array_equal(got[k], g.outputs[k]), k


def test_verify_golden_over_all_outputs(multi: Path) -> None:
    from host.verify import verify

    report, facts = verify(multi, "reference", vectors=0, kind="qonnx")
    assert [(r["check"], r["vectors"], r["failed"]) for r in report.rows] == [
        ("golden:channel", 20, 0), ("golden:extremes", 20, 0)]
    assert facts["backend"] == "reference-qonnx"

    class OneWrong(NetBackend):
        """idx of golden vector 3 off by one: the vector fails although y is right."""

        offset = 0

        def run(self, codes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            out = super().run(codes)
            i = 3 - self.offset
            if 0 <= i < len(out["idx"]):
                out["idx"][i, 1] ^= 1
            self.offset += len(out["idx"])
            return out

    report, _ = verify(multi, OneWrong, vectors=0, batch_size=2)
    assert [(r["check"], r["failed"], r["first_failures"]) for r in report.rows] == [
        ("golden:channel", 1, [3]), ("golden:extremes", 0, [])]
    assert report.passed == 39 and report.failed == 1


def test_cli_verify_reference_qonnx(multi: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from host.__main__ import main

    rc = main(["verify", str(multi), "--backend", "reference", "--reference", "qonnx",
               "--vectors", "0", "--batch-size", "7"])
    out = capsys.readouterr().out
    assert rc == 0 and out.strip().endswith("40 passed, 0 failed"), out


# ------------------------------------------------------------------ re-derived contract
def test_contract_re_derived_per_stream(multi: Path) -> None:
    d = open_package(multi).derived_io
    assert [(t["name"], t["shape"], t["datatype"], t["scale"]) for t in d["inputs"]] == [
        ("a", [1, 4], "INT8", 2 ** -7), ("b", [1, 3], "INT4", 0.25)]
    assert [(t["name"], t["shape"], t["datatype"], t["scale"]) for t in d["outputs"]] == [
        ("y", [1, 2], "INT6", 2 ** -5), ("idx", [1, 3], "UINT2", 1.0)]
    assert "Mul 'Mul_1'" in d["inputs"][1]["source"]["scale"]
    assert "host_output_scale:idx='1.0'" in d["outputs"][1]["source"]["scale"]


def _set(side: str, i: int, **kv: Any) -> Any:
    def fn(m: dict[str, Any]) -> None:
        m["io"][side][i].update(kv)
    return fn


@pytest.mark.parametrize("edit,expected", [
    (_set("inputs", 1, scale=0.125),
     ["io.inputs[1].scale ('b'): manifest.json says 0.125, model_qonnx.onnx (Mul 'Mul_1'",
      "says 0.25"]),
    (_set("inputs", 1, datatype="INT5", stream_width_bits=15),
     ["io.inputs[1].datatype ('b'): manifest.json says \"INT5\"", "finn_datatype of 'b'",
      "\"INT4\""]),
    (_set("outputs", 0, shape=[1, 2, 1]),
     ["io.outputs[0].shape ('y')", "graph output 0 'y'"]),
    (lambda m: m["io"]["outputs"].reverse(),
     ["io.outputs: manifest.json names [\"idx\", \"y\"], model_finn.onnx has graph outputs "
      "[\"y\", \"idx\"]"]),
])
def test_manifest_disagreeing_per_stream(multi: Path, edit: Any, expected: list[str]) -> None:
    reseal(multi, edit)
    msg = refused(lambda: open_package(multi))
    assert "disagrees with the hashed ONNX models" in msg
    for e in expected:
        assert e in msg, (e, msg)


@pytest.mark.parametrize("scales,expected", [
    ({"idx": 0.5}, "io.outputs[1].scale ('idx'): manifest.json has a codebook (index codes, "
                   "host scale 1.0), model_finn.onnx (graph metadata "
                   "host_output_scale:idx='0.5') says 0.5"),
    ({"y": 2 ** -4}, "io.outputs[0].scale ('y'): manifest.json says 0.03125, model_finn.onnx "
                     "(graph metadata host_output_scale:y='0.0625') says 0.0625"),
    ({"b": 0.5}, "io.inputs[1].scale ('b'): manifest.json says 0.25"),
])
def test_models_disagreeing_per_stream(multi: Path, scales: dict[str, float],
                                       expected: str) -> None:
    fake_models(multi, MULTI, scales=scales)
    reseal(multi, lambda m: None)
    assert expected in refused(lambda: open_package(multi))


def finn_with_metadata(path: Path, meta: dict[str, str], outputs: tuple[str, ...] = ("y",
                                                                                 "idx")) -> Path:
    """A FINN-like model with graph outputs ``outputs`` and graph metadata ``meta``."""
    import onnx
    from onnx import TensorProto, helper

    vin = helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 4])
    vout = [helper.make_tensor_value_info(o, TensorProto.FLOAT, [1, 2]) for o in outputs]
    g = helper.make_graph([helper.make_node("Identity", ["a"], [o]) for o in outputs], "finn",
                          [vin], vout)
    for k, v in meta.items():
        e = g.metadata_props.add()
        e.key, e.value = k, v
    onnx.save(helper.make_model(g), str(path))
    return path


def test_output_scale_keys(tmp_path: Path) -> None:
    """``host_output_scale:<output name>``, or under the FINN name that ``contract_io``
    records at that position (a model whose graph names were restored to the contract's),
    or ``host_output_scale:<index>``; conflicting keys and missing ones are refused."""
    from host.onnx_facts import OnnxFormatError, load, output_scale

    def scales(meta: dict[str, str]) -> list[tuple[float, str]]:
        m = load(finn_with_metadata(tmp_path / "m.onnx", meta))
        return [output_scale(m, i) for i in range(2)]

    by_name = scales({"host_output_scale:y": "0.25", "host_output_scale:idx": "1.0"})
    assert [v for v, _ in by_name] == [0.25, 1.0]
    assert "graph metadata host_output_scale:y='0.25'" in by_name[0][1]
    recorded = scales({"contract_io": json.dumps({"inputs": ["global_in"],
                                                  "outputs": ["global_out", "global_out_1"]}),
                       "host_output_scale:global_out": "0.5",
                       "host_output_scale:global_out_1": "1.0"})
    assert [v for v, _ in recorded] == [0.5, 1.0]
    assert "host_output_scale:global_out_1='1.0'" in recorded[1][1]
    assert [v for v, _ in scales({"host_output_scale:0": "0.125",
                                  "host_output_scale:1": "1.0"})] == [0.125, 1.0]
    with pytest.raises(OnnxFormatError, match=r"graph output 0 \('y'\) has conflicting "
                                              r"scales: .*y='0.25'.*0='0.5'"):
        scales({"host_output_scale:y": "0.25", "host_output_scale:0": "0.5"})
    with pytest.raises(OnnxFormatError, match=r"no metadata 'host_output_scale:y' / "
                                              r"'host_output_scale:0' for graph output 0 "
                                              r"\('y'\) \(it has the single "
                                              r"'host_output_scale'.*rebuild"):
        scales({"host_output_scale": "0.25"})
    with pytest.raises(OnnxFormatError, match="is not a number"):
        scales({"host_output_scale:y": "a quarter"})


def test_qonnx_input_missing_is_refused(multi: Path, tmp_path: Path) -> None:
    """model_qonnx.onnx without graph input ``b``: its scale cannot be re-derived."""
    aside = tmp_path / "aside"
    aside.mkdir()
    fake_models(aside, {"inputs": MULTI["inputs"][:1], "outputs": MULTI["outputs"][:1]})
    (multi / "model_qonnx.onnx").write_bytes((aside / "model_qonnx.onnx").read_bytes())
    reseal(multi, lambda m: None)
    msg = refused(lambda: open_package(multi))
    assert "cannot re-derive" in msg and "model_qonnx.onnx: no graph input 'b' (graph " \
        "inputs: ['a'])" in msg


# ------------------------------------------------------------------ iospec.json
@pytest.mark.parametrize("edit,expected", [
    (_set("outputs", 1, codebook=[-1.5, -0.25, 0.5, 3.0]),
     "io.outputs[1].codebook ('idx'): manifest.json says [-1.5, -0.25, 0.5, 3.0], "
     "iospec.json says [-1.5, -0.25, 0.5, 2.0]"),
    (_set("outputs", 1, post="argmax"),
     "io.outputs[1].post ('idx'): manifest.json says \"argmax\", iospec.json says "
     "\"codebook\""),
    (_set("outputs", 0, doc="latent codes"),
     None),  # not a contract field: opens
])
def test_manifest_checked_against_iospec(multi: Path, edit: Any, expected: str | None
                                         ) -> None:
    reseal(multi, edit)
    if expected is None:
        open_package(multi)
        return
    msg = refused(lambda: open_package(multi))
    assert "disagrees with iospec.json" in msg and expected in msg, msg


def test_iospec_file_disagreeing_is_refused(multi: Path) -> None:
    spec = json.loads((multi / "iospec.json").read_text())
    spec["inputs"][1]["scale"] = 0.5
    (multi / "iospec.json").write_text(json.dumps(spec))
    reseal(multi, lambda m: None)
    msg = refused(lambda: open_package(multi))
    assert "io.inputs[1].scale ('b'): manifest.json says 0.25, iospec.json says 0.5" in msg
    spec["inputs"][1]["scale"], spec["inputs"][1]["name"] = 0.25, "c"
    (multi / "iospec.json").write_text(json.dumps(spec))
    reseal(multi, lambda m: None)
    assert "io.inputs: manifest.json names [\"a\", \"b\"], iospec.json names [\"a\", \"c\"]" \
        in refused(lambda: open_package(multi))
    spec["version"] = 99
    (multi / "iospec.json").write_text(json.dumps(spec))
    reseal(multi, lambda m: None)
    assert "iospec.json is not a valid I/O spec" in refused(lambda: open_package(multi))
    (multi / "iospec.json").unlink()  # negative control: a package without one opens
    reseal(multi, lambda m: None)
    assert open_package(multi).derived_io["inputs"][1]["scale"] == 0.25


# ------------------------------------------------------------------ io format
def test_old_single_stream_package_is_refused_with_rebuild(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = fake_package(tmp_path / "old")
    m = manifest_of(root)
    new = m["io"]
    m["io"] = {"input": {k: v for k, v in new["inputs"][0].items() if k not in ("name",
                                                                              "post")},
               "output": {k: v for k, v in new["outputs"][0].items() if k not in ("name",
                                                                                "post")}}
    write_manifest(root, m)
    msg = refused(lambda: open_package(root))
    assert "single-stream format ('io.input'/'io.output')" in msg
    assert "rebuild the package: make hw DESIGN=x BOARD=pynq-z2" in msg
    assert "rebuild" in refused(lambda: open_package(root, verify=False))
    from host.__main__ import main

    assert main(["verify", str(root), "--backend", "rtlsim", "--vectors", "0"]) == 2
    assert "IOFormatIntegrityError" in capsys.readouterr().err


@pytest.mark.parametrize("edit,expected", [
    (lambda m: m["io"]["inputs"][0].pop("folded_shape"),
     "io.inputs[0] ('soft_bits'): key 'folded_shape' missing"),
    (_set("outputs", 0, name="soft_bits"), "tensor names must be unique"),
    (lambda m: m["io"].update(outputs=[]), "at least one input and one output"),
    (lambda m: m.update(io={"inputs": {}}), "'io' must be {'inputs': [...], 'outputs'"),
    (_set("inputs", 0, scale=-1.0), "io.inputs[0] ('soft_bits'): soft_bits: scale -1.0"),
])
def test_malformed_io_is_refused(tmp_path: Path, edit: Any, expected: str) -> None:
    root = fake_package(tmp_path / "p")
    reseal(root, edit)
    msg = refused(lambda: open_package(root))
    assert expected in msg, msg


# ------------------------------------------------------------------ Brevitas, fresh
TWO_IO_DESIGN: dict[str, Any] = {
    "name": "test-two-io",
    "data": {"kind": "synthetic_teacher", "teacher_seed": 0},
    "model": {
        "inputs": {"a": {"features": 5, "bits": 8, "scale_log2": -7},
                   "b": {"features": 3, "bits": 4, "scale_log2": -2}},
        "paths": {"y": {"from": "a", "hidden": [8], "out_features": 2,
                        "head": {"activation": "tanh", "bits": 6, "scale_log2": -5}},
                  "idx": {"from": "b", "hidden": [], "out_features": 3,
                          "head": {"kind": "codebook", "activation": "none", "bits": 6,
                                   "scale_log2": -3, "levels": 4}}},
        "weight_bits": 4, "act_bits": 4,
    },
}


@pytest.fixture
def quantnet_pkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """An untrained zoo QuantNet of TWO_IO_DESIGN as the design's "checkpoint"
    (export.reference.load_brevitas and configs.load_design patched), in a package whose
    streams and golden codes are its own."""
    import torch

    import configs
    import export.reference
    from host.backends.reference import brevitas_codes
    from zoo.network import QuantNet

    torch.manual_seed(0)
    m = TWO_IO_DESIGN["model"]
    net = QuantNet(m["inputs"], m["paths"], m["weight_bits"], m["act_bits"]).eval()
    spec: IOSpec = net.iospec()
    rng = np.random.default_rng(0)
    ins = {t.name: rng.integers(t.dtype.min, t.dtype.max + 1, (30, t.features))
           for t in spec.inputs}
    golden = Golden(ins, brevitas_codes(net, ins), np.array(["channel"] * 30),
                    np.zeros(30, np.int64))
    streams = {"inputs": [{"tensor": t, "elems": 1} for t in spec.inputs],
               "outputs": [{"tensor": t, "elems": 1} for t in spec.outputs]}
    root = fake_package(tmp_path / "q", streams=streams, golden=golden,
                        design=TWO_IO_DESIGN["name"])
    loads: list[Any] = []

    def load_brevitas(design_name: str, run_dir: Any = None) -> Any:
        loads.append((design_name, run_dir))
        return net

    monkeypatch.setattr(export.reference, "load_brevitas", load_brevitas)
    monkeypatch.setattr(configs, "load_design", lambda name: TWO_IO_DESIGN)
    return {"root": root, "net": net, "spec": spec, "loads": loads}


def test_reference_brevitas_and_fresh_checks(quantnet_pkg: dict[str, Any]) -> None:
    """The brevitas reference backend on two named streams (a codebook among them) and
    host verify's fresh checks: zoo data per named input, the host's to_codes against the
    ModuleDict of input quantizers, execute() floats against the Brevitas float outputs
    (codebook values)."""
    from host.verify import verify

    report, facts = verify(quantnet_pkg["root"], "reference", vectors=300, seed=5,
                           run_dir="runs/elsewhere")
    rows = {r["check"]: (r["vectors"], r["failed"]) for r in report.rows}
    assert rows["golden:channel"] == (30, 0)
    assert rows["fresh:input-codes(host==brevitas)"] == (300, 0)
    assert rows["fresh:codes"] == (300, 0) and rows["fresh:execute(float)"] == (300, 0)
    assert report.failed == 0 and facts["backend"] == "reference-brevitas-cpu"
    assert ("test-two-io", "runs/elsewhere") in quantnet_pkg["loads"]


def test_fresh_float_check_sees_a_wrong_codebook(quantnet_pkg: dict[str, Any]) -> None:
    """Negative control: levels changed in the network after packaging; the codes still
    agree, the float outputs (codebook values) do not."""
    import torch

    from host.verify import verify

    with torch.no_grad():
        quantnet_pkg["net"].heads["idx"].levels.add_(0.5)
    report, _ = verify(quantnet_pkg["root"], "reference", vectors=50, seed=5)
    rows = {r["check"]: r["failed"] for r in report.rows}
    assert rows["fresh:codes"] == 0 and rows["fresh:execute(float)"] == 50


def test_reference_brevitas_refuses_another_network(quantnet_pkg: dict[str, Any],
                                                    tmp_path: Path) -> None:
    other = fake_package(tmp_path / "other", streams=ONE_IN_TWO_OUT, design="test-two-io")
    with pytest.raises(ValueError, match=r"declares inputs \['a', 'b'\] and outputs "
                                         r"\['y', 'idx'\]; package other has \['s'\] and "
                                         r"\['u', 'v'\]"):
        Accelerator(other, "reference")
