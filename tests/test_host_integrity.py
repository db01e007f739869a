"""The host's edges: a hashed I/O contract, the contract re-derived from the hashed ONNX
models, unlisted files, the expected board, non-finite inputs, closed backends, CLI ranges
and a testbench that makes no progress.

Every refusal has its negative control (the untampered package opens). Refusals are
matched by class-name suffix ``IntegrityError`` and by message, so that each test fails
on the code before these checks existed (no exception) rather than on an import.
Fast: fake packages written by hw.package.write_manifest (tests.test_host_package), except
the ONNX-reader comparison, which needs the small MLP's real QONNX and FINN models.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from host.codec import StreamSpec
from host.driver import Accelerator
from host.package import open_package
from hw.package import write_manifest
from tests.test_host_package import fake_io, fake_models, fake_package

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PKG = REPO / "bitstreams" / "eqnet-fq-uniform-2x2-64qam-pynq-z2"
SCALE_IN, SCALE_IN_BAD = 0.0078125, 0.0079125
SCALE_OUT, SCALE_OUT_BAD = 0.03125, 0.03225


def refused(fn: Callable[[], Any]) -> str:
    """The message of the IntegrityError ``fn`` raises (fails if it raises none)."""
    with pytest.raises(Exception) as e:  # noqa: B017  (class checked by name below)
        fn()
    assert type(e.value).__name__.endswith("IntegrityError"), repr(e.value)
    return str(e.value)


def manifest_of(root: Path) -> dict[str, Any]:
    return json.loads((root / "manifest.json").read_text())


def edit_manifest(root: Path, fn: Callable[[dict[str, Any]], None]) -> None:
    """Change manifest.json in place, as a text editor would (the contract is untouched)."""
    m = manifest_of(root)
    fn(m)
    (root / "manifest.json").write_text(json.dumps(m, indent=2) + "\n")


def set_scale(side: str, value: float) -> Callable[[dict[str, Any]], None]:
    """Set the scale of the first tensor of ``side`` (inputs / outputs)."""
    def fn(m: dict[str, Any]) -> None:
        m["io"][side][0]["scale"] = value
    return fn


@pytest.fixture
def pkg(tmp_path: Path) -> Path:
    return fake_package(tmp_path / "x-pynq-z2")


# ------------------------------------------------------------------ the contract digest
def test_write_manifest_seals_the_contract(pkg: Path) -> None:
    from host.package import canonical_json, contract_digest

    m = manifest_of(pkg)
    c = m["contract"]
    assert {"design", "board", "part", "clock_mhz", "io", "digest"} <= set(c)
    assert c["io"] == m["io"] and c["board"] == "pynq-z2" and c["part"] == m["part"]
    fields = {k: m[k] for k in ("design", "board", "part", "clock_mhz", "io", "artifacts")}
    assert c["digest"] == contract_digest(m) == hashlib.sha256(json.dumps(
        fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert canonical_json({"b": 1, "a": [1.5, "x"]}) == b'{"a":[1.5,"x"],"b":1}'
    assert "manifest.json" not in m["artifacts"]
    assert open_package(pkg).digest == c["digest"]  # negative control: untampered opens


def test_rewriting_through_write_manifest_reseals(pkg: Path) -> None:
    """make sim / make bitstream add sections and files, then call write_manifest again."""
    m = manifest_of(pkg)
    (pkg / "rtl" / "stitched").mkdir()
    (pkg / "rtl" / "stitched" / "finn_top.sv").write_text("module finn_top; endmodule\n")
    m["verification"] = {"rtlsim": {"vectors": 1, "mismatches": 0}}
    write_manifest(pkg, m)
    p = open_package(pkg)
    assert "rtl/stitched/finn_top.sv" in p.checked and p.digest == manifest_of(pkg)[
        "contract"]["digest"] != ""


@pytest.mark.parametrize("side,good,bad", [("inputs", SCALE_IN, SCALE_IN_BAD),
                                           ("outputs", SCALE_OUT, SCALE_OUT_BAD)])
def test_edited_scale_is_refused_by_the_digest(pkg: Path, side: str, good: float,
                                               bad: float) -> None:
    stored = manifest_of(pkg)["contract"]["digest"]
    edit_manifest(pkg, set_scale(side, bad))
    msg = refused(lambda: open_package(pkg))
    assert "manifest.json" in msg and f"io.{side}[0].scale" in msg
    assert str(bad) in msg and str(good) in msg and stored in msg
    recomputed = msg.split("recomputed from manifest.json:")[1].split()[0]
    assert len(recomputed) == 64 and recomputed != stored
    edit_manifest(pkg, set_scale(side, good))  # negative control: restored -> opens
    assert open_package(pkg).io[side][0]["scale"] == good


def test_edited_scale_through_the_accelerator_is_refused(pkg: Path) -> None:
    """Defect 1: the host took the edited scale and quantized 1,663 of 2,000 vectors wrong."""
    edit_manifest(pkg, set_scale("inputs", SCALE_IN_BAD))
    msg = refused(lambda: Accelerator(pkg, "reference", kind="qonnx"))
    assert "io.inputs[0].scale" in msg


def test_edited_digest_or_contract_copy_is_refused(pkg: Path) -> None:
    def digest(m: dict[str, Any]) -> None:
        m["contract"]["digest"] = "0" * 64
    edit_manifest(pkg, digest)
    msg = refused(lambda: open_package(pkg))
    assert "0" * 64 in msg and "contract section itself or its digest" in msg

    root = fake_package(pkg.parent / "y")

    def copy(m: dict[str, Any]) -> None:
        m["contract"]["board"] = "zcu104"
    edit_manifest(root, copy)
    assert "board" in refused(lambda: open_package(root))


def test_removed_contract_is_refused(pkg: Path) -> None:
    edit_manifest(pkg, lambda m: m.pop("contract"))
    msg = refused(lambda: open_package(pkg))
    assert "manifest.json" in msg and "no 'contract'" in msg


def test_artifact_table_is_covered_by_the_digest(pkg: Path) -> None:
    """A file swapped together with its hash in the table: the sealed table differs."""
    (pkg / "golden.npz").write_bytes(b"other")

    def rehash(m: dict[str, Any]) -> None:
        m["artifacts"]["golden.npz"] = hashlib.sha256(b"other").hexdigest()
    edit_manifest(pkg, rehash)
    msg = refused(lambda: open_package(pkg))
    assert "artifacts: the hash table differs" in msg


# ------------------------------------------------------------------ re-derived from ONNX
def reseal(root: Path, fn: Callable[[dict[str, Any]], None]) -> None:
    """Edit the manifest and write it with a fresh digest (a consistent, wrong manifest)."""
    m = manifest_of(root)
    fn(m)
    write_manifest(root, m)


@pytest.mark.parametrize("side,key,bad,good,source", [
    ("inputs", "scale", SCALE_IN_BAD, SCALE_IN, "model_qonnx.onnx (Mul 'InputScale'"),
    ("outputs", "scale", SCALE_OUT_BAD, SCALE_OUT, "metadata host_output_scale:latent="),
    ("outputs", "datatype", "INT7", "INT6", "finn_datatype of 'latent'"),
    ("inputs", "shape", [1, 12, 1], [1, 12], "graph input 0 'soft_bits'"),
])
def test_manifest_disagreeing_with_the_models_is_refused(pkg: Path, side: str, key: str,
                                                         bad: Any, good: Any,
                                                         source: str) -> None:
    def fn(m: dict[str, Any]) -> None:
        m["io"][side][0][key] = bad
        if key == "datatype":  # a consistent stream: the width follows the datatype
            m["io"][side][0]["stream_width_bits"] = 7
    reseal(pkg, fn)
    msg = refused(lambda: open_package(pkg))
    assert f"io.{side}[0].{key} (" in msg and source in msg
    assert json.dumps(bad) in msg and json.dumps(good) in msg

    def back(m: dict[str, Any]) -> None:
        m["io"][side][0][key] = good
        if key == "datatype":
            m["io"][side][0]["stream_width_bits"] = 6
    reseal(pkg, back)  # negative control
    assert open_package(pkg).derived_io[side][0][key] == good


def test_models_with_another_scale_are_refused(tmp_path: Path) -> None:
    """The other direction: the models say 2^-6, the (sealed) manifest 2^-7."""
    root = fake_package(tmp_path / "p")
    fake_models(root, scales={"soft_bits": 2 ** -6})
    reseal(root, lambda m: None)
    msg = refused(lambda: open_package(root))
    assert "io.inputs[0].scale ('soft_bits')" in msg and "0.015625" in msg
    assert "0.0078125" in msg


def test_missing_model_is_refused(tmp_path: Path) -> None:
    root = fake_package(tmp_path / "p")
    (root / "model_finn.onnx").unlink()
    reseal(root, lambda m: None)
    msg = refused(lambda: open_package(root))
    assert "model_finn.onnx is not a hashed artifact" in msg


# ------------------------------------------------------------------ unlisted files
def test_unlisted_files_are_refused_by_name(pkg: Path) -> None:
    (pkg / "notes.txt").write_text("hi")
    (pkg / "rtl" / "extra").mkdir()
    (pkg / "rtl" / "extra" / "evil.dat").write_text("ff\n")
    msg = refused(lambda: open_package(pkg))
    assert "2 file(s) not listed" in msg and "notes.txt" in msg and "rtl/extra/evil.dat" in msg
    (pkg / "notes.txt").unlink()
    shutil.rmtree(pkg / "rtl" / "extra")
    open_package(pkg)  # negative control


def test_nested_manifest_json_is_an_artifact(tmp_path: Path) -> None:
    root = fake_package(tmp_path / "p", extra={"bitstream/driver/manifest.json": b"{}"})
    assert "bitstream/driver/manifest.json" in manifest_of(root)["artifacts"]
    (root / "bitstream" / "driver" / "manifest.json").write_bytes(b'{"x": 1}')
    assert "bitstream/driver/manifest.json" in refused(lambda: open_package(root))


# ------------------------------------------------------------------ expected board
def test_package_for_another_board_is_refused(tmp_path: Path) -> None:
    """A zcu104 package copied under a pynq-z2 name."""
    built = fake_package(tmp_path / "x-zcu104", board="zcu104")
    copy = tmp_path / "x-pynq-z2"
    shutil.copytree(built, copy)
    open_package(copy)  # intact: without an expectation it opens
    msg = refused(lambda: open_package(copy, expect_board="pynq-z2"))
    assert "'zcu104'" in msg and "xczu7ev-ffvc1156-2-e" in msg and "'pynq-z2'" in msg
    assert open_package(copy, expect_board="zcu104").board == "zcu104"  # negative control
    msg = refused(lambda: Accelerator(copy, "reference", kind="qonnx", expect_board="pynq-z2"))
    assert "'zcu104'" in msg
    checked = open_package(copy)
    assert "'pynq-z2'" in refused(lambda: Accelerator(checked, "reference", kind="qonnx",
                                                      expect_board="pynq-z2"))
    Accelerator(checked, "reference", kind="qonnx", expect_board="zcu104").close()


def test_cli_board_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from host.__main__ import main

    root = fake_package(tmp_path / "x-pynq-z2", board="zcu104")
    rc = main(["verify", str(root), "--board", "pynq-z2", "--backend", "reference",
               "--vectors", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and "IntegrityError" in err and "'zcu104'" in err and "'pynq-z2'" in err


# ------------------------------------------------------------------ non-finite and huge data
def spec() -> StreamSpec:
    return StreamSpec.from_manifest(fake_io()["inputs"][0])


def test_nan_is_refused_by_position() -> None:
    x = np.zeros((5, 12))
    x[3, 7] = np.nan
    with pytest.raises(ValueError, match=r"soft_bits: input contains NaN at vector 3, "
                                         r"feature 7 \(1 NaN"):
        spec().to_codes(x)
    x[3, 7] = 0.0
    assert spec().to_codes(x).tolist() == np.zeros((5, 12), int).tolist()


def test_huge_and_infinite_inputs_saturate() -> None:
    """The contract is clip(round_half_even(x / scale)): saturating, also for 1e30, 1e308
    and +-inf (documented in host.codec)."""
    x = np.array([[1e30, -1e30, 1e308, -1e308, np.inf, -np.inf, 0.0, 1.0, -1.0, 127.5 * SCALE_IN,
                   -128.5 * SCALE_IN, 3e38]])
    assert spec().to_codes(x).tolist() == [[127, -128, 127, -128, 127, -128, 0, 127,
                                                   -128, 127, -128, 127]]


def test_execute_names_nan_and_saturates_huge(pkg: Path) -> None:
    with Accelerator(pkg, "reference", kind="qonnx") as acc:
        x = np.zeros((4, 12))
        x[2, 5] = np.nan
        with pytest.raises(ValueError, match="NaN at vector 2, feature 5"):
            acc.execute(x)
        with pytest.raises(ValueError, match="NaN at vector 0, feature 5"):
            acc.execute(x[2])


@pytest.mark.parametrize("codes,match", [
    (np.full((2, 12), 1e30), r"codes span \[1e\+30, 1e\+30\], outside INT8 .*first 1e\+30"),
    (np.full((2, 12), 2 ** 63 + 5, np.uint64), r"first 9223372036854775813 at vector 0"),
    (np.where(np.eye(2, 12) > 0, np.nan, 0.0), "codes contain nan at vector 0, feature 0"),
    (np.where(np.eye(2, 12) > 0, -np.inf, 0.0), "codes contain -inf at vector 0, feature 0"),
    (np.where(np.eye(2, 12) > 0, 0.5, 0.0), "integers .*0.5 at vector 0, feature 0"),
])
def test_check_codes_names_the_bad_value(codes: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match) as e:
        spec().check_codes(codes)
    assert "-9223372036854775808" not in str(e.value)


# ------------------------------------------------------------------ closed backends
def test_closed_reference_backend(pkg: Path) -> None:
    acc = Accelerator(pkg, "reference", kind="qonnx")
    acc.close()
    acc.close()  # harmless
    for call in (lambda: acc.execute_codes(np.zeros((1, 12), np.int64)),
                 lambda: acc.execute(np.zeros(12)),
                 lambda: acc.backend.run({"soft_bits": np.zeros((1, 12))})):
        with pytest.raises(RuntimeError, match="backend closed"):
            call()


def test_closed_rtlsim_backend_says_closed(pkg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 2: after close() the rtlsim backend reported a DMA-address error."""
    import host.backends.rtlsim as rtlsim

    monkeypatch.setattr(rtlsim, "ensure_binary", lambda package, work: (pkg / "nope", pkg))
    acc = Accelerator(pkg, "rtlsim", batch_size=4)
    acc.close()
    acc.close()
    with pytest.raises(RuntimeError, match="backend closed") as e:
        acc.execute_codes(np.zeros((2, 12), np.int64))
    with pytest.raises(RuntimeError, match="backend closed"):
        acc.backend.run({"soft_bits": np.zeros((2, 12), np.int64)})
    assert "DMA" not in str(e.value)


@pytest.mark.parametrize("opt", ["p_valid", "p_ready"])
@pytest.mark.parametrize("p", [0.0, -0.1, 1.5, float("nan")])
def test_rtlsim_backend_refuses_probabilities(pkg: Path, opt: str, p: float) -> None:
    with pytest.raises(ValueError, match=rf"{opt} = .*must be in \(0, 1\]"):
        Accelerator(pkg, "rtlsim", **{opt: p})


# ------------------------------------------------------------------ the testbench stalls
def fake_testbench(tmp_path: Path, rc: int, stats: str) -> Path:
    """A stand-in for the Verilator binary: reads the testbench's key=value config (its only
    argument, hw/rtlsim/tb_top.cpp), writes ``stats`` where it says, no output beats, and
    exits ``rc``."""
    exe = tmp_path / "Vfinn_top"
    exe.write_text("#!/bin/sh\nstats=$(sed -n 's/^stats=//p' \"$1\")\n"
                   f"printf '{stats}' > \"$stats\"\nexit {rc}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe


def test_stalled_testbench_raises_with_counts(tmp_path: Path) -> None:
    from host.backends.rtlsim import stream

    exe = fake_testbench(tmp_path, 2, "rc=2\\ncycles=1000001\\nsent_beats=0\\ngot_beats=0\\n"
                                      "first_in=0\\nfirst_out=0\\ndone=\\n")
    with pytest.raises(RuntimeError) as e:
        stream(exe, tmp_path, ["00"] * 4, 2, 2, 6, 1, 0.0, 1.0)
    msg = str(e.value)
    assert "stalled" in msg and "0 of 4 input beats" in msg and "0 of 12 output beats" in msg
    assert "input valid p=0.0" in msg and "log: (empty)" in msg


def test_crashed_testbench_without_stats_raises(tmp_path: Path) -> None:
    from host.backends.rtlsim import stream

    exe = tmp_path / "Vfinn_top"
    exe.write_text("#!/bin/sh\necho boom >&2\nexit 139\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(RuntimeError, match="exit 139; no statistics written.*boom"):
        stream(exe, tmp_path, ["00"], 1, 1, 1, 1, 1.0, 1.0)


# ------------------------------------------------------------------ CLI ranges
@pytest.mark.parametrize("args,flag,allowed", [
    (["--vectors", "-5"], "--vectors", ">= 0"),
    (["--batch-size", "0"], "--batch-size", ">= 1"),
    (["--p-valid", "1.5"], "--p-valid", "(0, 1]"),
    (["--p-valid", "0"], "--p-valid", "(0, 1]"),
    (["--p-ready", "0"], "--p-ready", "(0, 1]"),
    (["--p-ready", "nan"], "--p-ready", "(0, 1]"),
    (["--p-valid", "x"], "--p-valid", "(0, 1]"),
])
def test_verify_cli_validates_ranges(pkg: Path, args: list[str], flag: str, allowed: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from host.__main__ import main

    with pytest.raises(SystemExit) as e:
        main(["verify", str(pkg), "--backend", "rtlsim", *args])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"argument {flag}" in err and allowed in err


@pytest.mark.parametrize("args,flag,allowed", [
    (["--batch-sizes", "1,0,16"], "--batch-sizes", ">= 1"),
    (["--min-time", "0"], "--min-time", "> 0"),
    (["--threads", "0"], "--threads", ">= 1"),
])
def test_bench_cli_validates_ranges(pkg: Path, args: list[str], flag: str, allowed: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from host.__main__ import main

    with pytest.raises(SystemExit) as e:
        main(["bench", str(pkg), *args])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"argument {flag}" in err and allowed in err


# ------------------------------------------------------------------ our ONNX reader vs onnx
def assert_reader_matches_onnx(path: Path) -> None:
    """Every field host.onnx_facts reads equals onnx.load's."""
    import onnx
    from onnx import numpy_helper

    from host.onnx_facts import load

    ref, ours = onnx.load(str(path)), load(path)
    g, o = ref.graph, ours.graph
    assert [(n.name, n.op_type, list(n.input), list(n.output)) for n in g.node] == [
        (n.name, n.op_type, n.inputs, n.outputs) for n in o.nodes]
    assert [t.name for t in g.initializer] == list(o.initializers)
    for t in g.initializer:
        mine = o.initializers[t.name]
        assert mine.dims == list(t.dims) and mine.data_type == t.data_type
        if t.data_type in (1, 11):
            assert np.array_equal(numpy_helper.to_array(t).ravel(), np.array(mine.values()))

    def shape(vi: Any) -> list[Any]:
        return [d.dim_value if d.HasField("dim_value") else d.dim_param
                for d in vi.type.tensor_type.shape.dim]

    for mine, theirs in ((o.inputs, g.input), (o.outputs, g.output)):
        assert [(v.name, v.elem_type, v.shape) for v in mine] == [
            (v.name, v.type.tensor_type.elem_type, shape(v)) for v in theirs]
    assert o.annotations == {a.tensor_name: {e.key: e.value for e in
                                             a.quant_parameter_tensor_names}
                             for a in g.quantization_annotation}
    assert o.metadata == {p.key: p.value for p in g.metadata_props}
    assert ours.metadata == {p.key: p.value for p in ref.metadata_props}


def test_reader_on_synthetic_encodings(tmp_path: Path) -> None:
    """float_data (packed), double raw_data, symbolic dims, model-level metadata."""
    import onnx
    from onnx import TensorProto, helper

    from host.onnx_facts import derive_io, load

    fake_models(tmp_path)
    t = helper.make_tensor("s", TensorProto.FLOAT, [], [0.25])          # float_data
    d = helper.make_tensor("d", TensorProto.DOUBLE, [2], np.array([1.5, -2.0]).tobytes(),
                           raw=True)
    vin = helper.make_tensor_value_info("in", TensorProto.FLOAT, ["N", 3])
    g = helper.make_graph([helper.make_node("Mul", ["in", "s"], ["out"], name="m")], "g",
                          [vin], [helper.make_tensor_value_info("out", TensorProto.FLOAT,
                                                                ["N", 3])], [t, d])
    model = helper.make_model(g)
    helper.set_model_props(model, {"host_output_scale:0": "0.5"})
    onnx.save(model, str(tmp_path / "syn.onnx"))
    assert_reader_matches_onnx(tmp_path / "syn.onnx")
    assert load(tmp_path / "syn.onnx").graph.initializers["d"].values() == [1.5, -2.0]
    io = derive_io(tmp_path / "syn.onnx", tmp_path / "syn.onnx")  # model-level metadata
    assert io["inputs"][0]["scale"] == 0.25 and io["outputs"][0]["scale"] == 0.5
    assert io["inputs"][0]["shape"] == ["N", 3] and io["outputs"][0]["name"] == "out"
    # a model written before named streams: one host_output_scale, refused by name
    helper.set_model_props(model, {"host_output_scale": "0.5"})
    onnx.save(model, str(tmp_path / "old.onnx"))
    with pytest.raises(ValueError, match="no metadata 'host_output_scale:out' / "
                                         "'host_output_scale:0'.*rebuild"):
        derive_io(tmp_path / "syn.onnx", tmp_path / "old.onnx")
    for rel in ("model_qonnx.onnx", "model_finn.onnx"):
        assert_reader_matches_onnx(tmp_path / rel)


def test_reader_refuses_garbage(tmp_path: Path) -> None:
    from host.onnx_facts import OnnxFormatError, load

    (tmp_path / "bad.onnx").write_bytes(b"\x3a\xff\xff\xff")  # field 7, length past the end
    with pytest.raises(OnnxFormatError, match="bad.onnx"):
        load(tmp_path / "bad.onnx")
    root = fake_package(tmp_path / "p")
    (root / "model_qonnx.onnx").write_bytes(b"\x0b")  # group wire type
    reseal(root, lambda m: None)
    assert "cannot re-derive" in refused(lambda: open_package(root))


@pytest.fixture(scope="module")
def small_finn_pkg(small_mlp_export: dict[str, Any], pynq_z2: dict[str, Any],
                   tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.test_host_driver import host_package

    return host_package(small_mlp_export, pynq_z2, tmp_path_factory.mktemp("integrity_pkg"))


def test_reader_matches_onnx_on_the_small_mlp_package(small_finn_pkg: Path) -> None:
    """The real QONNX export and FINN model: the reader agrees with onnx.load, and the io
    it derives is the one hw.package.io_contract wrote (the package opens)."""
    for rel in ("model_qonnx.onnx", "model_finn.onnx"):
        assert_reader_matches_onnx(small_finn_pkg / rel)
    p = open_package(small_finn_pkg)
    for side in ("inputs", "outputs"):
        assert [t["name"] for t in p.derived_io[side]] == [t["name"] for t in p.io[side]]
        for derived, stated in zip(p.derived_io[side], p.io[side], strict=True):
            for key in ("shape", "datatype", "scale"):
                assert derived[key] == stated[key]


def test_real_package_copy_with_edited_scale(small_finn_pkg: Path, tmp_path: Path) -> None:
    copy = tmp_path / small_finn_pkg.name
    shutil.copytree(small_finn_pkg, copy)
    edit_manifest(copy, set_scale("inputs", SCALE_IN_BAD))
    assert "io.inputs[0].scale" in refused(lambda: open_package(copy))
    reseal(copy, lambda m: None)
    msg = refused(lambda: open_package(copy))
    assert "model_qonnx.onnx (Mul 'Mul_0'" in msg and str(SCALE_IN_BAD) in msg


@pytest.mark.skipif(not (DEFAULT_PKG / "manifest.json").is_file(),
                    reason="default package not built (make main)")
def test_reader_matches_onnx_on_the_default_package() -> None:
    for rel in ("model_qonnx.onnx", "model_finn.onnx"):
        assert_reader_matches_onnx(DEFAULT_PKG / rel)


def test_package_whose_manifest_records_failure_is_refused(tmp_path: Path) -> None:
    """A package whose own verification failed (a hand-copied ``.failed`` package, say) is
    refused by name; ``allow_failed`` opens it for debugging. Positive control: 0 mismatches."""
    from host.package import UnverifiedPackageError

    root = fake_package(tmp_path / "p")
    m = json.loads((root / "manifest.json").read_text())
    m["verification"] = {"qonnx": {"vectors": 10, "mismatches": 0}}
    write_manifest(root, m)
    open_package(root)
    m["verification"]["hw_folded"] = {"vectors": 10, "mismatches": 3}
    m["verification"]["exhaustive"] = {"Thresholding_rtl_0": {
        "points": 99, "mismatches": 1, "rtl_memory": {"files": 2, "mismatches": 0}}}
    write_manifest(root, m)
    with pytest.raises(UnverifiedPackageError, match=r"hw_folded \(3 of 10 vectors\).*"
                                                     r"exhaustive:Thresholding_rtl_0"):
        open_package(root)
    with pytest.raises(UnverifiedPackageError):
        Accelerator(root, backend="reference")
    assert open_package(root, allow_failed=True).manifest["verification"]["hw_folded"]
