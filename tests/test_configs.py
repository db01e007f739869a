"""Design and board configurations: every shipped YAML validates (unchanged dicts), and
each class of mistake is refused with a ConfigError naming the file, the key path, the bad
value and what is allowed (negative controls next to a passing copy: positive control)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import configs
from configs import ConfigError, load_board, load_design, validate_board_file, validate_design_file
from configs.__main__ import main as configs_main
from configs.schema import TASK_NAMES, Board, Design, _choices, validate_data

DESIGN = "eqnet-fq-uniform-2x2-64qam"  # the flat-layout design (one MLP)
BOARD = "pynq-z2"


def _raw(kind: str, name: str) -> dict[str, Any]:
    return yaml.safe_load((configs.CONFIG_DIR / kind / f"{name}.yaml").read_text())


def _write(tmp_path: Path, cfg: Any, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(cfg if isinstance(cfg, str) else yaml.safe_dump(cfg, sort_keys=False))
    return path


# --- every shipped config validates, and the loaded dict is the YAML's, unchanged ---------


@pytest.mark.parametrize("name", configs.designs())
def test_design_validates(name: str) -> None:
    raw = _raw("designs", name)
    assert load_design(name) == raw
    assert validate_design_file(configs.CONFIG_DIR / "designs" / f"{name}.yaml", name) == raw
    # The schema round-trips the file exactly (types included: no int -> float, no
    # injected defaults), so hashes of these dicts (hw.flow.build_inputs_key) do not move.
    dumped = Design.model_validate(raw).model_dump(mode="json", exclude_unset=True)
    assert json.dumps(dumped, sort_keys=True) == json.dumps(raw, sort_keys=True)


@pytest.mark.parametrize("name", configs.boards())
def test_board_validates(name: str) -> None:
    raw = _raw("boards", name)
    assert load_board(name) == raw
    assert validate_board_file(configs.CONFIG_DIR / "boards" / f"{name}.yaml", name) == raw
    dumped = Board.model_validate(raw).model_dump(mode="json", exclude_unset=True)
    assert json.dumps(dumped, sort_keys=True) == json.dumps(raw, sort_keys=True)


def test_load_design_is_safe_load() -> None:
    path = configs.CONFIG_DIR / "designs" / f"{DESIGN}.yaml"
    d = load_design(DESIGN)
    assert d == yaml.safe_load(path.read_text())
    assert json.dumps(d, sort_keys=True) == json.dumps(yaml.safe_load(path.read_text()),
                                                       sort_keys=True)
    assert type(d) is dict and type(d["model"]) is dict


def test_shipped_configs_cli_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert configs_main(["check"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(configs.designs()) + len(configs.boards())
    assert all(line.startswith("ok ") for line in out)


# --- negative controls: designs ---------------------------------------------------------


def _set(section: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def f(d: dict[str, Any]) -> None:
        d[section][key] = value
    return f


def _drop(section: str, key: str) -> Callable[[dict[str, Any]], None]:
    def f(d: dict[str, Any]) -> None:
        del d[section][key]
    return f


def _typo(d: dict[str, Any]) -> None:
    d["model"]["out_activaton"] = d["model"].pop("out_activation")


def _recipe(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def f(d: dict[str, Any]) -> None:
        d["train"]["recipes"]["short"][key] = value
    return f


# (id, mutation, key path, substrings the message must also contain)
DESIGN_CASES: list[tuple[str, Callable[[dict[str, Any]], None], str, list[str]]] = [
    ("typo-out_activaton", _typo, "model.out_activaton",
     ["unknown key", "did you mean 'out_activation'", "out_activation, out_quant"]),
    ("weight_bits-0", _set("model", "weight_bits", 0), "model.weight_bits",
     ["got 0", "integer 2..8"]),
    ("act_bits-40", _set("model", "act_bits", 40), "model.act_bits",
     ["got 40", "integer 1..8"]),
    ("missing-hidden", _drop("model", "hidden"), "model.hidden",
     ["missing required key", "list of integers >= 1"]),
    ("hidden-str", _set("model", "hidden", "48"), "model.hidden",
     ["got '48'", "a string", "list of integers >= 1"]),
    ("hidden-item", _set("model", "hidden", [48, 0]), "model.hidden[1]",
     ["got 0", "list of integers >= 1"]),
    ("weight_bits-float", _set("model", "weight_bits", 6.0), "model.weight_bits",
     ["got 6.0", "a float", "integer 2..8"]),
    ("activation-unknown", _set("model", "out_activation", "relu6"), "model.out_activation",
     ["got 'relu6'", "'tanh', 'sigmoid' or 'none'"]),
    ("activation-near", _set("model", "out_activation", "tahn"), "model.out_activation",
     ["did you mean 'tanh'", "'tanh', 'sigmoid' or 'none'"]),
    ("bias_bits-8", _set("model", "bias_bits", 8), "model.bias_bits",
     ["got 8", "allowed: 16"]),
    ("unsigned-input", lambda d: d["model"]["input_quant"].update(signed=False),
     "model.input_quant.signed", ["got False", "allowed: true"]),
    ("input-bits-17", lambda d: d["model"]["input_quant"].update(bits=17),
     "model.input_quant.bits", ["got 17", "integer 2..16"]),
    ("out-bits-1", lambda d: d["model"]["out_quant"].update(bits=1),
     "model.out_quant.bits", ["got 1", "integer 2..8"]),
    ("scale_log2-float", lambda d: d["model"]["out_quant"].update(scale_log2=-5.0),
     "model.out_quant.scale_log2", ["got -5.0", "integer -32..32"]),
    ("in_features-mismatch", _set("model", "in_features", 10), "model.in_features",
     ["10 != data.n_t * data.bits_per_symbol", "allowed: 12"]),
    ("data-kind", _set("data", "kind", "awgn"), "data.kind", ["got 'awgn'", "'mimo_llr'"]),
    ("data-feature", _set("data", "feature", "bits"), "data.feature",
     ["got 'bits'", "'soft_bits' or 'llr'"]),
    ("snr-order", _set("data", "snr_db", [24.0, 6.0]), "data.snr_db",
     ["got [24.0, 6.0]", "lo <= hi"]),
    ("snr-length", _set("data", "snr_db", [6.0]), "data.snr_db",
     ["got [6.0]", "pair [lo, hi]"]),
    ("bits_per_symbol-odd", _set("data", "bits_per_symbol", 5), "data.bits_per_symbol",
     ["got 5", "1 (BPSK) or an even integer"]),
    ("loss-unknown", _set("train", "loss", "l1"), "train.loss",
     ["got 'l1'", "'mse' or 'weighted_mse'"]),
    ("lr-string", _recipe("lr", "3e-3"), "train.recipes.short.lr",
     ["got '3e-3'", "write 3.0e-3", "a number > 0"]),
    ("epochs-0", _recipe("epochs", 0), "train.recipes.short.epochs",
     ["got 0", "integer >= 1"]),
    ("batch-gt-samples", _recipe("batch_size", 10**7), "train.recipes.short.samples",
     ["batch_size 10000000", "samples >= batch_size"]),
    ("recipe-typo", _recipe("epoch", 3), "train.recipes.short.epoch",
     ["unknown key", "did you mean 'epochs'"]),
    ("target_fps-negative", _set("hw", "target_fps", -5), "hw.target_fps",
     ["got -5", "a number > 0"]),
    ("folding-not-path", _set("hw", "folding_config", 3), "hw.folding_config",
     ["got 3", "null or a non-empty path string"]),
    ("no-folding", _drop("hw", "target_fps"), "hw.target_fps",
     ["missing", "folding_config"]),
    ("golden-0", _set("export", "golden_vectors", 0), "export.golden_vectors",
     ["got 0", "integer >= 1"]),
    ("missing-section", lambda d: d.pop("train"), "train", ["missing required key"]),
]


@pytest.fixture
def design_cfg() -> dict[str, Any]:
    return _raw("designs", DESIGN)


def test_design_copy_passes(tmp_path: Path, design_cfg: dict[str, Any]) -> None:
    """Positive control for the cases below: the unmutated copy, written the same way."""
    path = _write(tmp_path, design_cfg, DESIGN)
    assert validate_design_file(path, DESIGN) == design_cfg


@pytest.mark.parametrize("mutate,key,expect", [c[1:] for c in DESIGN_CASES],
                         ids=[c[0] for c in DESIGN_CASES])
def test_bad_design_refused(tmp_path: Path, design_cfg: dict[str, Any],
                            mutate: Callable[[dict[str, Any]], None], key: str,
                            expect: list[str]) -> None:
    cfg = copy.deepcopy(design_cfg)
    mutate(cfg)
    path = _write(tmp_path, cfg, DESIGN)
    with pytest.raises(ConfigError) as ei:
        validate_design_file(path)
    msg = str(ei.value)
    assert str(path) in msg
    assert f"{key}: " in msg, msg
    for s in expect:
        assert s in msg, (s, msg)
    assert ei.value.path == path
    assert any(p.key == key for p in ei.value.problems), ei.value.problems
    assert isinstance(ei.value, ValueError)


def test_several_problems_all_listed(tmp_path: Path, design_cfg: dict[str, Any]) -> None:
    _typo(design_cfg)
    design_cfg["model"]["weight_bits"] = 0
    design_cfg["model"]["act_bits"] = 40
    design_cfg["data"]["kind"] = "awgn"
    path = _write(tmp_path, design_cfg, DESIGN)
    with pytest.raises(ConfigError) as ei:
        validate_design_file(path)
    keys = {p.key for p in ei.value.problems}
    assert keys == {"model.out_activaton", "model.weight_bits", "model.act_bits", "data.kind"}
    assert "4 problems" in str(ei.value)


def test_yaml_syntax_error(tmp_path: Path) -> None:
    text = (configs.CONFIG_DIR / "designs" / f"{DESIGN}.yaml").read_text()
    lines = text.splitlines()
    i = next(n for n, line in enumerate(lines) if line.startswith("  hidden:"))
    lines[i] = "  hidden: [48, 48"          # unclosed flow sequence
    path = _write(tmp_path, "\n".join(lines) + "\n", DESIGN)
    with pytest.raises(ConfigError) as ei:
        validate_design_file(path)
    msg = str(ei.value)
    assert str(path) in msg and "YAML syntax error" in msg
    assert f"line {i + 2}" in msg, msg      # where PyYAML finds the missing ']'


def test_duplicate_key_refused(tmp_path: Path) -> None:
    text = (configs.CONFIG_DIR / "boards" / f"{BOARD}.yaml").read_text()
    path = _write(tmp_path, text + "clock_mhz: 250\n", BOARD)
    with pytest.raises(ConfigError, match="duplicate key 'clock_mhz'") as ei:
        validate_board_file(path)
    assert str(path) in str(ei.value)
    assert yaml.safe_load(path.read_text())["clock_mhz"] == 250  # what PyYAML did silently


@pytest.mark.parametrize("text,what", [("", "nothing (empty file)"), ("- 1\n- 2\n", "a list"),
                                       ("just a string\n", "a string")])
def test_not_a_mapping(tmp_path: Path, text: str, what: str) -> None:
    path = _write(tmp_path, text, DESIGN)
    with pytest.raises(ConfigError) as ei:
        validate_design_file(path)
    assert str(path) in str(ei.value) and f"not {what}" in str(ei.value)


# --- the paths layout (zoo.network.QuantNet), synthetic_teacher data, training tasks ------

TWO_IO, CODEBOOK = "synth-two-io", "synth-codebook"


def _path(out: str, **changes: Any) -> Callable[[dict[str, Any]], None]:
    def f(d: dict[str, Any]) -> None:
        d["model"]["paths"][out].update(changes)
    return f


def _head(out: str, **changes: Any) -> Callable[[dict[str, Any]], None]:
    def f(d: dict[str, Any]) -> None:
        d["model"]["paths"][out]["head"].update(changes)
    return f


def _rename_input(old: str, new: str) -> Callable[[dict[str, Any]], None]:
    def f(d: dict[str, Any]) -> None:
        d["model"]["inputs"] = {new if k == old else k: v
                                for k, v in d["model"]["inputs"].items()}
        for p in d["model"]["paths"].values():
            p["from"] = new if p["from"] == old else p["from"]
    return f


def _form_typo(d: dict[str, Any]) -> None:
    d["model"]["paths"]["p"]["form"] = d["model"]["paths"]["p"].pop("from")


def _clash(d: dict[str, Any]) -> None:
    d["model"]["paths"]["a"] = copy.deepcopy(d["model"]["paths"]["q"])


def _eqnet_data(d: dict[str, Any]) -> None:
    d["data"] = _raw("designs", DESIGN)["data"]


# (id, design, mutation, key path, substrings the message must also contain)
LAYOUT_CASES: list[tuple[str, str, Callable[[dict[str, Any]], None], str, list[str]]] = [
    ("from-unknown", TWO_IO, _path("p", **{"from": "c"}), "model.paths.p.from",
     ["'c' is not an input", "allowed: 'a' or 'b'"]),
    ("from-typo", TWO_IO, _form_typo, "model.paths.p.form",
     ["unknown key (did you mean 'from'?)", "allowed keys here: from, hidden, "
      "input_layers, branches, residual_blocks, out_features, head"]),
    ("levels-on-quant", TWO_IO, _head("p", levels=8), "model.paths.p.head.levels",
     ["given for a 'quant' head", "omit it, or kind: codebook"]),
    ("codebook-no-levels", CODEBOOK, lambda d: d["model"]["paths"]["y"]["head"].pop("levels"),
     "model.paths.y.head.levels", ["missing required key (kind is 'codebook')",
                                   "integer 2..256"]),
    ("levels-300", CODEBOOK, _head("y", levels=300), "model.paths.y.head.levels",
     ["got 300", "integer 2..256"]),
    ("levels-gt-codes", CODEBOOK, _head("y", bits=2), "model.paths.y.head.levels",
     ["8 levels > the 4 codes of the 2-bit fine quantizer", "allowed: integer 2..4"]),
    ("head-kind", TWO_IO, _head("p", kind="lut"), "model.paths.p.head.kind",
     ["got 'lut'", "'quant', 'codebook' or 'kmeans'"]),
    ("kmeans-with-bits", TWO_IO, _head("p", kind="kmeans", levels=8),
     "model.paths.p.head.bits", ["given for a 'kmeans' head", "omit it"]),
    ("kmeans-no-levels", TWO_IO, lambda d: d["model"]["paths"]["p"].update(
        head={"kind": "kmeans", "activation": "tanh"}), "model.paths.p.head.levels",
     ["missing required key (kind is 'kmeans')", "integer 2..256"]),
    ("noise-on-quant", TWO_IO, _head("p", noise_std=0.001), "model.paths.p.head.noise_std",
     ["given for a 'quant' head", "omit it, or kind: kmeans"]),
    ("branches-0", TWO_IO, _path("p", branches=0), "model.paths.p.branches",
     ["got 0", "an integer 1..256"]),
    ("input-layers-names", TWO_IO, _path("p", input_layers={"b": 4}),
     "model.paths.p.input_layers", ["names ['b'], from names ['a']",
                                    "one width for every input of from"]),
    ("codebook-input-no-levels", TWO_IO, lambda d: d["model"]["inputs"]["a"].update(
        kind="codebook"), "model.inputs.a.levels",
     ["missing required key (kind is 'codebook')", "integer 2..256"]),
    ("levels-on-quant-input", TWO_IO, lambda d: d["model"]["inputs"]["a"].update(levels=4),
     "model.inputs.a.levels", ["given for a 'quant' input", "omit it, or kind: codebook"]),
    ("head-activation", TWO_IO, _head("q", activation="relu"), "model.paths.q.head.activation",
     ["got 'relu'", "'tanh', 'sigmoid' or 'none'"]),
    ("head-bits-9", TWO_IO, _head("q", bits=9), "model.paths.q.head.bits",
     ["got 9", "integer 2..8"]),
    ("head-narrow-str", TWO_IO, _head("p", narrow="yes"), "model.paths.p.head.narrow",
     ["got 'yes'", "true or false"]),
    ("head-missing-bits", TWO_IO, lambda d: d["model"]["paths"]["p"]["head"].pop("bits"),
     "model.paths.p.head.bits", ["missing required key", "integer 2..8"]),
    ("input-bits-17", TWO_IO, lambda d: d["model"]["inputs"]["a"].update(bits=17),
     "model.inputs.a.bits", ["got 17", "integer 2..16"]),
    ("input-narrow", TWO_IO, lambda d: d["model"]["inputs"]["a"].update(narrow=True),
     "model.inputs.a.narrow", ["unknown key", "features, bits, scale_log2"]),
    ("input-name", TWO_IO, _rename_input("a", "a-1"), "model.inputs.a-1",
     ["tensor name 'a-1' is not an identifier", "letters, digits and '_'"]),
    ("output-name", TWO_IO, lambda d: d["model"]["paths"].update(
        {"9q": d["model"]["paths"].pop("q")}), "model.paths.9q",
     ["tensor name '9q' is not an identifier", "not starting with a digit"]),
    ("name-clash", TWO_IO, _clash, "model.paths.a",
     ["output name 'a' is also an input name", "unique across inputs and outputs"]),
    ("hidden-item", TWO_IO, _path("p", hidden=[16, 0]), "model.paths.p.hidden[1]",
     ["got 0", "integers >= 1"]),
    ("paths-empty", TWO_IO, lambda d: d["model"].update(paths={}), "model.paths",
     ["got {}", "non-empty mapping"]),
    ("inputs-missing", TWO_IO, lambda d: d["model"].pop("inputs"), "model.inputs",
     ["missing required key", "non-empty mapping name -> {features, bits, scale_log2}"]),
    ("mlp-key-in-paths", TWO_IO, lambda d: d["model"].update(in_features=8),
     "model.in_features", ["unknown key", "inputs, paths, weight_bits, act_bits"]),
    ("paths-bias_bits-8", TWO_IO, lambda d: d["model"].update(bias_bits=8), "model.bias_bits",
     ["got 8", "16"]),
    ("paths-batch_norm", TWO_IO, lambda d: d["model"].update(batch_norm=1),
     "model.batch_norm", ["got 1", "true or false"]),
    ("teacher_seed", TWO_IO, lambda d: d["data"].update(teacher_seed=-1), "data.teacher_seed",
     ["got -1", "integer >= 0"]),
    ("teacher-extra-key", TWO_IO, lambda d: d["data"].update(n_t=2), "data.n_t",
     ["unknown key", "allowed keys here: kind, teacher_seed"]),
    ("mimo-data-paths", TWO_IO, _eqnet_data, "model.inputs.a",
     ["data kind 'mimo_llr' has no feature 'a'", "an input named after one of 'llr', "]),
    ("mimo-data-paths-width", TWO_IO, lambda d: (_eqnet_data(d), _rename_input("a", "y")(d)),
     "model.inputs.y.features", ["8 != the 4 features of 'y' for this data section"]),
    ("snr-both", DESIGN, lambda d: d["data"].update(snr_points=[10.0, 12.0]), "data.snr_db",
     ["both snr_db and snr_points given", "exactly one of them"]),
    ("snr-none", DESIGN, lambda d: d["data"].pop("snr_db"), "data.snr_db",
     ["missing required key", "snr_points"]),
    ("mlp-no-feature", DESIGN, lambda d: d["data"].pop("feature"), "data.feature",
     ["missing required key (the single-MLP layout reads one feature)"]),
    ("synthetic-data-mlp", DESIGN, lambda d: d.update(data={"kind": "synthetic_teacher"}),
     "data.kind", ["draws inputs and targets from model.inputs",
                   "'mimo_llr' for the single-MLP layout"]),
    ("data-kind-missing", DESIGN, lambda d: d["data"].pop("kind"), "data.kind",
     ["missing required key", "'mimo_llr', 'synthetic_teacher' or 'bae_link'"]),
    ("data-kind-near", TWO_IO, lambda d: d["data"].update(kind="synthetic_teachr"),
     "data.kind", ["did you mean 'synthetic_teacher'"]),
    ("task-unknown", TWO_IO, lambda d: d["train"].update(task="denoising"), "train.task",
     ["got 'denoising'", _choices(TASK_NAMES)]),
    ("task-reconstruction-paths", TWO_IO, lambda d: d["train"].update(task="reconstruction"),
     "train.task", ["'reconstruction' trains a one-input, one-output network",
                    "'regression', 'classification' or 'eqnet_stage1'"]),
    ("stage1-on-synthetic", TWO_IO, lambda d: d["train"].update(task="eqnet_stage1"),
     "train.task", ["'eqnet_stage1' trains a paths-layout network on mimo_llr data"]),
    ("from-run-no-source", TWO_IO, lambda d: d["train"].update(task="from_run"),
     "train.source", ["missing required key (train.task is 'from_run')", "{design, key}"]),
    ("source-on-regression", TWO_IO, lambda d: d["train"].update(
        source={"design": "x", "key": "decoder"}), "train.source",
     ["only read by the from_run task", "omit it, or train.task: from_run"]),
    ("decoder-on-regression", TWO_IO, lambda d: d["train"].update(decoder_hidden=[8]),
     "train.decoder_hidden", ["only read by the reconstruction task (train.task is "
                              "'regression')", "omit it"]),
    ("loss-on-default-regression", CODEBOOK, lambda d: d["train"].update(loss="mse"),
     "train.loss", ["the default task of the paths layout is 'regression'"]),
    ("reconstruction-no-decoder", DESIGN, _drop("train", "decoder_hidden"),
     "train.decoder_hidden", ["missing required key (the default task of the mlp layout is "
                              "'reconstruction')", "list of integers >= 1"]),
    ("reconstruction-no-loss_eps", DESIGN, lambda d: (d["train"].pop("loss_eps"),
                                                     d["train"].update(task="reconstruction")),
     "train.loss_eps", ["missing required key (train.task is 'reconstruction')"]),
    ("regression-mimo", DESIGN, lambda d: d["train"].update(task="regression"), "train.task",
     ["'regression' trains against target:<output> features", "data kind 'mimo_llr' has none"]),
    ("input_name-bad", DESIGN, _set("model", "input_name", "soft bits"), "model.input_name",
     ["got 'soft bits'", "an identifier"]),
    ("output_name-clash", DESIGN, lambda d: d["model"].update(input_name="z", output_name="z"),
     "model.output_name", ["'z' is also the input_name"]),
]


@pytest.mark.parametrize("name", [TWO_IO, CODEBOOK])
def test_paths_copy_passes(tmp_path: Path, name: str) -> None:
    """Positive controls: the paths designs, written the same way, and their layout."""
    cfg = _raw("designs", name)
    assert validate_design_file(_write(tmp_path, cfg, name), name) == cfg
    model = Design.model_validate(cfg)
    assert model.layout == "paths" and model.task == "regression"
    assert model.model.paths[next(iter(cfg["model"]["paths"]))].from_ in cfg["model"]["inputs"]


@pytest.mark.parametrize("name,change", [
    (DESIGN, lambda d: d["train"].update(task="reconstruction")),
    (DESIGN, lambda d: d["model"].update(input_name="soft_bits", output_name="latent")),
    (TWO_IO, lambda d: d["train"].pop("task")),
    (TWO_IO, lambda d: d["train"].update(task="classification")),
    (TWO_IO, lambda d: d["data"].pop("teacher_seed")),
    (TWO_IO, lambda d: d["model"].update(bias_bits=16, batch_norm=True)),
    (TWO_IO, _path("p", hidden=[])),
    (CODEBOOK, _head("y", narrow=True, levels=255, kind="codebook")),
], ids=["task-explicit", "io-names", "task-default", "classification", "teacher-default",
        "bias-bn", "no-hidden", "levels-max"])
def test_optional_keys_accepted(tmp_path: Path, name: str,
                                change: Callable[[dict[str, Any]], None]) -> None:
    cfg = _raw("designs", name)
    change(cfg)
    assert validate_design_file(_write(tmp_path, cfg, name)) == cfg
    dumped = Design.model_validate(cfg).model_dump(mode="json", exclude_unset=True)
    assert json.dumps(dumped, sort_keys=True) == json.dumps(cfg, sort_keys=True)


@pytest.mark.parametrize("name,mutate,key,expect", [c[1:] for c in LAYOUT_CASES],
                         ids=[c[0] for c in LAYOUT_CASES])
def test_bad_layout_refused(tmp_path: Path, name: str,
                            mutate: Callable[[dict[str, Any]], None], key: str,
                            expect: list[str]) -> None:
    cfg = _raw("designs", name)
    mutate(cfg)
    path = _write(tmp_path, cfg, name)
    with pytest.raises(ConfigError) as ei:
        validate_design_file(path)
    msg = str(ei.value)
    assert str(path) in msg and f"{key}: " in msg, msg
    for s in expect:
        assert s in msg, (s, msg)
    assert any(p.key == key for p in ei.value.problems), ei.value.problems


def test_paths_problems_all_listed(tmp_path: Path) -> None:
    """Problems in several paths, heads and inputs are reported together (no union tag in
    the key paths: model.paths..., not model.paths.paths...)."""
    cfg = _raw("designs", TWO_IO)
    cfg["model"]["inputs"]["b"]["bits"] = 1
    cfg["model"]["paths"]["p"]["head"]["bits"] = 9
    cfg["model"]["paths"]["q"]["out_features"] = 0
    cfg["data"]["teacher_seed"] = "0"
    path = _write(tmp_path, cfg, TWO_IO)
    with pytest.raises(ConfigError) as ei:
        validate_design_file(path)
    keys = {p.key for p in ei.value.problems}
    assert keys == {"model.inputs.b.bits", "model.paths.p.head.bits",
                    "model.paths.q.out_features", "data.teacher_seed"}, ei.value.problems
    assert "write the number without quotes: 0" in str(ei.value)


# --- negative controls: boards -----------------------------------------------------------


BOARD_CASES: list[tuple[str, Callable[[dict[str, Any]], None], str, list[str]]] = [
    ("clock-negative", lambda b: b.update(clock_mhz=-100), "clock_mhz",
     ["got -100", "a number > 0"]),
    ("clock-string", lambda b: b.update(clock_mhz="100"), "clock_mhz",
     ["got '100'", "a string", "a number > 0"]),
    ("unknown-key", lambda b: b.update(clok_mhz=125), "clok_mhz",
     ["unknown key", "did you mean 'clock_mhz'", "finn_board, part, family, shell"]),
    ("shell-alveo", lambda b: b.update(shell="vitis_alveo"), "shell",
     ["got 'vitis_alveo'", "'vivado_zynq'"]),
    ("family-unknown", lambda b: b.update(family="xc6"), "family",
     ["got 'xc6'", "'xc7', 'xcup' or 'xcu'"]),
    ("family-vs-part", lambda b: b.update(family="xcup"), "family",
     ["'xcup' does not match part 'xc7z020clg400-1'", "allowed: 'xc7'"]),
    ("part-empty", lambda b: b.update(part=""), "part", ["got ''", "non-empty string"]),
    ("finn_board-missing", lambda b: b.pop("finn_board"), "finn_board",
     ["missing required key", "non-empty string"]),
]


@pytest.fixture
def board_cfg() -> dict[str, Any]:
    return _raw("boards", BOARD)


def test_board_copy_passes(tmp_path: Path, board_cfg: dict[str, Any]) -> None:
    path = _write(tmp_path, board_cfg, BOARD)
    assert validate_board_file(path, BOARD) == board_cfg


@pytest.mark.parametrize("mutate,key,expect", [c[1:] for c in BOARD_CASES],
                         ids=[c[0] for c in BOARD_CASES])
def test_bad_board_refused(tmp_path: Path, board_cfg: dict[str, Any],
                           mutate: Callable[[dict[str, Any]], None], key: str,
                           expect: list[str]) -> None:
    mutate(board_cfg)
    path = _write(tmp_path, board_cfg, BOARD)
    with pytest.raises(ConfigError) as ei:
        validate_board_file(path)
    msg = str(ei.value)
    assert str(path) in msg and f"{key}: " in msg, msg
    for s in expect:
        assert s in msg, (s, msg)


# --- load_* by name: unknown names, name mismatch, and the CLI ----------------------------


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of configs/ (designs/, boards/) that load_design/load_board read instead."""
    for kind in ("designs", "boards"):
        (tmp_path / kind).mkdir()
        for f in (configs.CONFIG_DIR / kind).glob("*.yaml"):
            (tmp_path / kind / f.name).write_text(f.read_text())
    monkeypatch.setattr(configs, "CONFIG_DIR", tmp_path)
    return tmp_path


def test_unknown_name_lists_available() -> None:
    with pytest.raises(FileNotFoundError, match=f"unknown design 'nope'; available: .*{DESIGN}"):
        load_design("nope")
    with pytest.raises(FileNotFoundError, match=f"unknown board 'nope'; available: .*{BOARD}"):
        load_board("nope")


def test_name_mismatch(config_dir: Path) -> None:
    assert load_board(BOARD) == _raw("boards", BOARD)             # positive control
    path = config_dir / "boards" / f"{BOARD}.yaml"
    path.write_text(path.read_text().replace(f"name: {BOARD}", "name: pynq-z1"))
    with pytest.raises(ConfigError) as ei:
        load_board(BOARD)
    msg = str(ei.value)
    assert str(path) in msg and "name: got 'pynq-z1'" in msg and f"allowed: '{BOARD}'" in msg


def test_load_design_refuses_before_work(config_dir: Path) -> None:
    """What `make train` hits first: train/__main__.py calls load_design before any work."""
    path = config_dir / "designs" / f"{DESIGN}.yaml"
    path.write_text(path.read_text().replace("  weight_bits: 6", "  weight_bits: 0"))
    with pytest.raises(ConfigError, match=r"model\.weight_bits: got 0"):
        load_design(DESIGN)


def test_cli_check_fails(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = config_dir / "boards" / "zcu104.yaml"
    path.write_text(path.read_text().replace("clock_mhz: 200", "clock_mhz: -200"))
    assert configs_main(["check"]) == 1
    out = capsys.readouterr().out
    assert "FAIL board  zcu104" in out and "clock_mhz: got -200" in out
    assert f"ok   board  {BOARD}" in out and f"ok   design {DESIGN}" in out
    assert configs_main(["check", BOARD]) == 0                   # only the named one
    assert configs_main(["check", "no-such-config"]) == 1
    assert "unknown name 'no-such-config'" in capsys.readouterr().out


def test_snr_points_and_paths_inputs_named_after_mimo_features(tmp_path: Path) -> None:
    """Positive controls of the cases above: discrete SNR points (cycled through, as EQ-Net's
    six training SNRs) and a paths-layout model whose inputs are mimo_llr features."""
    from zoo.datasets import design_data

    d = _raw("designs", DESIGN)
    d["data"].pop("snr_db")
    d["data"]["snr_points"] = [10.0, 20.0, 30.0]
    validate_data(d, Design, tmp_path / f"{DESIGN}.yaml", "design")
    data = design_data(d, 6, seed=0, cache_dir=None)
    noise = data["noise_std"][:, 0] ** 2  # N0 = 10^(-SNR/10): the points in order, twice
    np.testing.assert_allclose(noise, 10.0 ** (-np.array([10, 20, 30, 10, 20, 30]) / 10))
    two = _raw("designs", TWO_IO)
    two["data"] = d["data"]
    two["model"]["inputs"] = {"y": {"features": 4, "bits": 8, "scale_log2": -5},
                              "b": two["model"]["inputs"]["b"]}
    two["model"]["inputs"]["b"] = {"kind": "codebook", "features": 4, "levels": 8, "bits": 8,
                                   "scale_log2": -7}
    two["model"]["paths"]["p"]["from"] = "y"
    with pytest.raises(ConfigError, match="'regression' trains against target"):
        validate_data(two, Design, tmp_path / f"{TWO_IO}.yaml", "design")
