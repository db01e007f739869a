"""``target_fps: max`` (``SPEED=max``): the fastest configuration that fits the board.

A *configuration* is a folding of every MVAU/Thresholding layer plus an ``impl`` per
dense layer (hw/transforms/unroll.py). The search:

1. runs the design's FINN flow up to the RTL-specialized, unfolded graph (shared with
   the normal build's steps, in its own build folder);
2. lists candidates: the fully unrolled chain (II = 1), and for every reachable
   initiation interval II the cheapest folding of every layer that meets it
   (:func:`folding_for_ii`: per MVAU the (PE, SIMD) with the fewest lanes, then the
   widest SIMD; per Thresholding the smallest PE);
3. applies each candidate to the graph, minimizes bit widths as the build will, and
   counts its resources with the corrected model (hw/resources.py; never FINN's own
   estimate, which leaves out FIFOs, width converters and MVAU LUTs, and assumes four
   6-bit multiplies per DSP where the RTL MVU packs two). A candidate's II is the
   larger of its layers' and its IODMAs' (hw/iodma.py; unrolled streams padded as the
   build pads them, hw/transforms/iodma_pad.py);
4. keeps those within ``utilization_ceiling`` of every resource of the part and picks the
   lowest II, then the lowest latency;
5. when neither the unrolled chain nor the folding at II = 1 fits, tries *hybrids* below
   the best folded II: some dense layers unrolled (their cost does not depend on II:
   no DSPs, LUTs instead), the rest folded for the II. Each layer's cost is measured
   once per impl (:func:`layer_costs`), every subset of unrolled layers is priced by
   summing them (plus the folded graph's FIFOs and width converters), and the cheapest
   predicted fits are evaluated whole, as in step 3, before one is accepted.

The winner is written as a FINN folding JSON plus an ``impl`` into
``build/<design>-<board>-max/search.json``; :func:`resolved_design` turns the design
into the one the build then runs. Yosys confirms the fit on the built package
(``make sim``), and the manifest records the model, FINN's estimate and Yosys side by
side.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

SEARCH_UNTIL = "step_check_rtl_only"  # the last flow step the search runs


@dataclass
class Candidate:
    """One configuration: ``impl`` folded/unrolled, its ``folding`` (node -> attrs), the
    modelled II and latency in cycles, resources and whether they fit."""

    name: str
    impl: str | dict[str, str]
    ii_cycles: int
    folding: dict[str, dict[str, int]] = field(default_factory=dict)
    latency_cycles: int = 0
    rtl_ii_cycles: int = 0  # the layers' own II; ii_cycles is max(this, dma_cycles)
    dma_cycles: int = 0     # IODMA words per vector, the slowest graph stream
    resources: dict[str, float] = field(default_factory=dict)
    utilization: dict[str, float] = field(default_factory=dict)
    fits: bool = False
    reasons: list[str] = field(default_factory=list)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def folding_for_ii(model: ModelWrapper, ii: int) -> dict[str, dict[str, int]] | None:
    """The cheapest folding with every layer at most ``ii`` cycles per vector, or None
    when some layer cannot reach it (module doc, step 2)."""
    fold: dict[str, dict[str, int]] = {}
    for n in model.graph.node:
        inst = getCustomOp(n)
        if n.op_type.startswith("MVAU"):
            mw, mh = inst.get_nodeattr("MW"), inst.get_nodeattr("MH")
            best = None
            for simd in _divisors(mw):
                for pe in _divisors(mh):
                    if (mw // simd) * (mh // pe) <= ii:
                        key = (pe * simd, -simd)
                        if best is None or key < best[0]:
                            best = (key, pe, simd)
            if best is None:
                return None
            fold[n.name] = {"PE": best[1], "SIMD": best[2]}
        elif n.op_type.startswith("Thresholding"):
            c = inst.get_nodeattr("NumChannels")
            pe = next((p for p in _divisors(c) if c // p <= ii), None)
            if pe is None:
                return None
            fold[n.name] = {"PE": pe}
    return fold


def reachable_iis(model: ModelWrapper, limit: int = 4096) -> list[int]:
    """Every II some folding of the slowest layer type gives, ascending (<= limit)."""
    iis: set[int] = {1}
    for n in model.graph.node:
        inst = getCustomOp(n)
        if n.op_type.startswith("MVAU"):
            mw, mh = inst.get_nodeattr("MW"), inst.get_nodeattr("MH")
            iis |= {(mw // s) * (mh // p) for s in _divisors(mw) for p in _divisors(mh)}
        elif n.op_type.startswith("Thresholding"):
            c = inst.get_nodeattr("NumChannels")
            iis |= {c // p for p in _divisors(c)}
    return sorted(i for i in iis if i <= limit)


def apply_folding(model: ModelWrapper, folding: dict[str, dict[str, int]]) -> ModelWrapper:
    """A copy of ``model`` with the folding's attributes set."""
    m = copy.deepcopy(model)
    for n in m.graph.node:
        for k, v in folding.get(n.name, {}).items():
            getCustomOp(n).set_nodeattr(k, int(v))
    return m


def evaluate(model: ModelWrapper, cand: Candidate, cfg: Any, part: str,
             ceiling: float, cutoff: float) -> Candidate:
    """Resources, latency, II and fit of one candidate (module doc, steps 3-4)."""
    return _evaluate(model, cand, cfg, part, ceiling, cutoff)[0]


def _evaluate(model: ModelWrapper, cand: Candidate, cfg: Any, part: str,
              ceiling: float, cutoff: float) -> tuple[Candidate, dict[str, Any]]:
    """:func:`evaluate`, and the resource estimate (hw.resources.estimate) behind it."""
    from finn.builder.build_dataflow_steps import step_minimize_bit_width

    from hw.iodma import port_width
    from hw.resources import estimate, fits
    from hw.transforms.iodma_pad import PadStreamsForIODMA
    from hw.transforms.unroll import UnrollDenseChains

    m = step_minimize_bit_width(apply_folding(model, cand.folding), cfg)
    if cand.impl != "folded":
        m = m.transform(UnrollDenseChains(cand.impl, cutoff))
    pad = PadStreamsForIODMA(port_width(cfg.board))
    m = m.transform(pad)
    cand.rtl_ii_cycles = cand.rtl_ii_cycles or cand.ii_cycles
    cand.dma_cycles = max(r["cycles_after"] for r in pad.report)
    cand.ii_cycles = max(cand.rtl_ii_cycles, cand.dma_cycles)
    est = estimate(m, part)
    total, cap = est["total"], est["capacity"]
    cand.resources = {k: float(total.get(k) or 0) for k in cap}
    cand.utilization = {k: round((total.get(k) or 0) / cap[k], 4) for k in cap if cap[k]}
    cand.fits, cand.reasons = fits(est, part, ceiling)
    # pipeline depth of an unrolled node, cycles per vector of a folded one (FINN's model)
    cand.latency_cycles = int(sum(
        getCustomOp(n).get_nodeattr("latency") if n.op_type.startswith("UnrolledMLP")
        else getCustomOp(n).get_exp_cycles() for n in m.graph.node))
    return cand, est


def dense_layers(model: ModelWrapper) -> list[list[str]]:
    """Node names of each dense layer in graph order: an MVAU and the Thresholding it
    feeds, or a lone MVAU or Thresholding (the unit a hybrid unrolls or folds)."""
    layers: list[list[str]] = []
    for n in model.graph.node:
        kind = n.op_type.split("_")[0]
        if kind == "Thresholding" and layers:
            prev = model.find_producer(n.input[0])
            if prev is not None and prev.op_type.startswith("MVAU") and layers[-1] == [prev.name]:
                layers[-1].append(n.name)
                continue
        if kind in ("MVAU", "Thresholding"):
            layers.append([n.name])
    return layers


def impl_map(layers: list[list[str]], unrolled: tuple[int, ...]) -> dict[str, str]:
    """The design's ``hw.impl`` mapping that unrolls the layers at ``unrolled``."""
    return {"default": "folded",
            **{name: "unrolled" for i in unrolled for name in layers[i]}}


def _res(row: dict[str, Any]) -> dict[str, float]:
    return {k: float(row.get(k) or 0) for k in ("LUT", "FF", "DSP", "BRAM18")}


def layer_costs(model: ModelWrapper, layers: list[list[str]], cfg: Any, part: str,
                cutoff: float, folding: dict[str, dict[str, int]]) -> list[dict[str, float]]:
    """Each dense layer's resources when unrolled alone (corrected model; independent of
    II). ``folding`` is any folding of the other layers (their cost is not used)."""
    out = []
    for i in range(len(layers)):
        c = Candidate(f"layer{i}-unrolled", impl_map(layers, (i,)), 1, folding)
        _, est = _evaluate(model, c, cfg, part, 1.0, cutoff)
        rows = [r for r in est["layers"].values() if r["op_type"].startswith("UnrolledMLP")]
        out.append(_res(rows[0]["model"]))
    return out


def predicted_hybrids(layers: list[list[str]], unrolled_cost: list[dict[str, float]],
                      folded_est: dict[str, Any], ceiling: float
                      ) -> list[tuple[float, tuple[int, ...]]]:
    """Every proper, non-empty subset of layers to unroll that the summed per-layer costs
    predict to fit, as ``(max utilization, subset)``, most margin first. The folded
    layers cost what they cost in ``folded_est`` (the all-folded graph at the II), and
    its FIFOs and width converters are kept as they are."""
    from itertools import combinations

    rows, cap = folded_est["layers"], folded_est["capacity"]
    folded = [{k: sum(_res(rows[n]["model"])[k] for n in ly) for k in cap} for ly in layers]
    glue = {k: sum(_res(r["model"])[k] for r in rows.values() if r["glue"]) for k in cap}
    out = []
    for size in range(1, len(layers)):
        for sub in combinations(range(len(layers)), size):
            tot = {k: glue[k] + sum(unrolled_cost[i][k] if i in sub else folded[i][k]
                                    for i in range(len(layers))) for k in cap}
            util = max(tot[k] / cap[k] for k in cap if cap[k])
            if util <= ceiling:
                out.append((round(util, 4), sub))
    return sorted(out)


def search(model: ModelWrapper, cfg: Any, part: str, ceiling: float = 0.8,
           cutoff: float = 2.0, progress: bool = True, confirm: int = 3) -> dict[str, Any]:
    """Every candidate evaluated in order of II; the first that fits wins, then hybrids
    below its II (module doc). ``confirm``: predicted hybrids evaluated whole per II."""
    from tqdm import tqdm

    cands = [Candidate("unrolled", "unrolled", 1, folding_for_ii(model, 10**9) or {})]
    for ii in reachable_iis(model):
        f = folding_for_ii(model, ii)
        if f is not None:
            cands.append(Candidate(f"folded-ii{ii}", "folded", ii, f))
    chosen, tried, ests = None, [], {}

    def better(c: Candidate) -> bool:
        return c.fits and (chosen is None or (c.ii_cycles, c.latency_cycles)
                           < (chosen.ii_cycles, chosen.latency_cycles))

    for c in tqdm(cands, desc="SPEED=max search", disable=not progress):
        _, ests[c.name] = _evaluate(model, c, cfg, part, ceiling, cutoff)
        tried.append(c)
        if better(c):
            chosen = c
        if chosen is not None and c.ii_cycles > chosen.ii_cycles:
            break
    hybrids: dict[str, Any] = {"layers": dense_layers(model), "tried": []}
    below = [c for c in tried if c.impl == "folded" and c.name in ests
             and (chosen is None or c.rtl_ii_cycles < chosen.ii_cycles)]
    if below and len(hybrids["layers"]) > 1:
        layers = hybrids["layers"]
        costs = layer_costs(model, layers, cfg, part, cutoff, below[-1].folding)
        hybrids["unrolled_layer_cost"] = costs
        for fc in tqdm(below, desc="hybrids", disable=not progress):
            found = None
            for util, sub in predicted_hybrids(layers, costs, ests[fc.name], ceiling)[:confirm]:
                h = Candidate(f"hybrid-ii{fc.rtl_ii_cycles}-u{'.'.join(map(str, sub))}",
                              impl_map(layers, sub), fc.rtl_ii_cycles, fc.folding)
                evaluate(model, h, cfg, part, ceiling, cutoff)
                hybrids["tried"].append({**asdict(h), "predicted_utilization": util})
                if better(h) and (found is None or h.latency_cycles < found.latency_cycles):
                    found = h
            if found is not None:
                chosen = found
                tried.append(found)
                break
    if chosen is None:
        raise RuntimeError("no configuration fits the part within the ceiling: "
                           + "; ".join(f"{c.name}: {', '.join(c.reasons)}" for c in tried[:3]))
    return {"part": part, "ceiling": ceiling, "chosen": asdict(chosen),
            "candidates": [asdict(c) for c in tried], "hybrids": hybrids,
            "rule": "lowest II (layers' and IODMAs') within the ceiling by the corrected "
                    "model, then lowest latency; hybrids below the best folded II"}


def folding_json(folding: dict[str, dict[str, int]]) -> dict[str, Any]:
    """FINN's folding-config layout."""
    return {"Defaults": {}, **folding}


def resolved_design(design: dict[str, Any], result: dict[str, Any], work: Path
                    ) -> tuple[dict[str, Any], Path]:
    """The design with the search's choice in place of ``target_fps: max`` / ``impl: auto``
    and the folding JSON it names (written into ``work``)."""
    ch = result["chosen"]
    work.mkdir(parents=True, exist_ok=True)
    fpath = work / "folding.json"
    fpath.write_text(json.dumps(folding_json(ch["folding"]), indent=1) + "\n")
    d = copy.deepcopy(design)
    hw = d.setdefault("hw", {})
    hw.pop("target_fps", None)
    hw["folding_config"] = str(fpath)
    hw["impl"] = ch["impl"]
    return d, fpath


def run_search(design_name: str, board_name: str, run: Path, work: Path,
               progress: bool = True) -> dict[str, Any]:
    """Flow up to :data:`SEARCH_UNTIL` in ``work/flow``, then :func:`search`; writes and
    returns ``work/search.json``."""
    from configs import load_board, load_design
    from hw.flow import OFFLINE_STEPS, dataflow_config, run_finn_build

    design, board = load_design(design_name), load_board(board_name)
    qonnx = run / "export" / "model_qonnx.onnx"
    if not qonnx.is_file():
        raise FileNotFoundError(f"{qonnx} not found: run `make export DESIGN={design_name}`")
    steps = OFFLINE_STEPS[:OFFLINE_STEPS.index(SEARCH_UNTIL) + 1]
    flow_dir = work / "flow"
    base = {**design, "hw": {"target_fps": 1}}  # folding is set per candidate
    run_finn_build(qonnx, flow_dir, base, board, steps=steps)
    model = ModelWrapper(str(flow_dir / "intermediate_models" / f"{SEARCH_UNTIL}.onnx"))
    cfg = dataflow_config(flow_dir, base, board, [])
    hw = design.get("hw", {})
    result = search(model, cfg, board["part"], float(hw.get("utilization_ceiling", 0.8)),
                    float(hw.get("unroll_cutoff", 2.0)), progress)
    result.update({"design": design_name, "board": board_name,
                   "clock_mhz": board["clock_mhz"]})
    (work / "search.json").write_text(json.dumps(result, indent=1) + "\n")
    return result
