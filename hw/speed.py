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
   6-bit multiplies per DSP where the RTL MVU packs two);
4. keeps those within ``utilization_ceiling`` of every resource of the part and picks the
   lowest II, then the lowest latency.

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
    impl: str
    ii_cycles: int
    folding: dict[str, dict[str, int]] = field(default_factory=dict)
    latency_cycles: int = 0
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
    """Resources, latency and fit of one candidate (module doc, steps 3-4)."""
    from finn.builder.build_dataflow_steps import step_minimize_bit_width

    from hw.resources import estimate, fits
    from hw.transforms.unroll import UnrollDenseChains

    m = step_minimize_bit_width(apply_folding(model, cand.folding), cfg)
    if cand.impl == "unrolled":
        m = m.transform(UnrollDenseChains("unrolled", cutoff))
    est = estimate(m, part)
    total, cap = est["total"], est["capacity"]
    cand.resources = {k: float(total.get(k) or 0) for k in cap}
    cand.utilization = {k: round((total.get(k) or 0) / cap[k], 4) for k in cap if cap[k]}
    cand.fits, cand.reasons = fits(est, part, ceiling)
    cycles = [getCustomOp(n).get_exp_cycles() for n in m.graph.node]
    lat = [getCustomOp(n).get_nodeattr("latency") for n in m.graph.node
           if n.op_type.startswith("UnrolledMLP")]
    cand.latency_cycles = int(sum(lat) if lat else sum(cycles))
    return cand


def search(model: ModelWrapper, cfg: Any, part: str, ceiling: float = 0.8,
           cutoff: float = 2.0, progress: bool = True) -> dict[str, Any]:
    """Every candidate evaluated in order of II; the first that fits wins (module doc)."""
    from tqdm import tqdm

    cands = [Candidate("unrolled", "unrolled", 1, folding_for_ii(model, 10**9) or {})]
    for ii in reachable_iis(model):
        f = folding_for_ii(model, ii)
        if f is not None:
            cands.append(Candidate(f"folded-ii{ii}", "folded", ii, f))
    chosen, tried = None, []
    for c in tqdm(cands, desc="SPEED=max search", disable=not progress):
        evaluate(model, c, cfg, part, ceiling, cutoff)
        tried.append(c)
        if c.fits and (chosen is None or (c.ii_cycles, c.latency_cycles)
                       < (chosen.ii_cycles, chosen.latency_cycles)):
            chosen = c
        if chosen is not None and c.ii_cycles > chosen.ii_cycles:
            break
    if chosen is None:
        raise RuntimeError("no configuration fits the part within the ceiling: "
                           + "; ".join(f"{c.name}: {', '.join(c.reasons)}" for c in tried[:3]))
    return {"part": part, "ceiling": ceiling, "chosen": asdict(chosen),
            "candidates": [asdict(c) for c in tried],
            "rule": "lowest II within the ceiling by the corrected model, then lowest latency"}


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
