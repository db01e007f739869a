"""hw.speed: the configuration search of ``SPEED=max`` on a small FINN graph.

The graph is a 3-layer MLP of RTL MVAU + Thresholding nodes (12 -> 64 -> 64 -> 4).
Foldings meet their II; the search picks the lowest II that fits, then hybrids below
the best folded II when the part (or the ceiling) is too small for all-folded or
all-unrolled; a ceiling nothing fits is refused with the reasons.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from qonnx.custom_op.registry import getCustomOp

import hw  # noqa: F401  (offline FINN bootstrap)
from configs import load_board
from hw import speed
from hw.flow import dataflow_config


def mlp() -> Any:
    from hw.rtlsim import testgraphs

    g = testgraphs.GraphBuilder(0)
    x = g.input("x", "INT8", 12)
    h = g.threshold(g.mvau(x, 64, wbits=4), 4)
    h = g.threshold(g.mvau(h, 64, wbits=4), 4)
    y = g.threshold(g.mvau(h, 4, wbits=4), 4)
    return g.model(["x"], ["y"], {y: "y"})


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return dataflow_config(Path(tmp_path_factory.mktemp("cfg")), {"hw": {"target_fps": 1}},
                           load_board("pynq-z2"), [])


def test_folding_meets_each_reachable_ii() -> None:
    m = mlp()
    iis = speed.reachable_iis(m)
    assert iis[0] == 1 and 64 * 64 in iis and 12 * 64 in iis
    for ii in (1, 6, 64, 768):
        f = speed.folding_for_ii(m, ii)
        got = speed.apply_folding(m, f)
        worst = max(getCustomOp(n).get_exp_cycles() for n in got.graph.node)
        assert worst <= ii + 16, (ii, worst)  # FINN's exp_cycles adds pipeline slack
        # cheapest: no MVAU has more lanes than the II needs
        for n in got.graph.node:
            if n.op_type.startswith("MVAU"):
                i = getCustomOp(n)
                mw, mh = i.get_nodeattr("MW"), i.get_nodeattr("MH")
                lanes = i.get_nodeattr("PE") * i.get_nodeattr("SIMD")
                assert (mw * mh) // lanes <= ii
                assert lanes == min(s * p for s in speed._divisors(mw)
                                    for p in speed._divisors(mh)
                                    if (mw // s) * (mh // p) <= ii)
    assert speed.folding_for_ii(m, 10**9)["MVAU_rtl_0"] == {"PE": 1, "SIMD": 1}


def test_dense_layers_pair_mvau_and_thresholding() -> None:
    m = mlp()
    layers = speed.dense_layers(m)
    assert [len(ly) for ly in layers] == [2, 2, 2]
    assert all(a.startswith("MVAU") and b.startswith("Thresholding") for a, b in layers)
    imap = speed.impl_map(layers, (1,))
    assert imap == {"default": "folded", layers[1][0]: "unrolled", layers[1][1]: "unrolled"}


def test_search_unrolls_everything_when_it_fits(cfg: Any) -> None:
    r = speed.search(mlp(), cfg, "xc7z020", ceiling=0.8, progress=False)
    ch = r["chosen"]
    assert ch["impl"] == "unrolled" and ch["fits"]
    # the IODMA: 12 INT8 padded to 16 = 128 bits on Pynq-Z2's 64-bit port, 2 words
    assert (ch["rtl_ii_cycles"], ch["dma_cycles"], ch["ii_cycles"]) == (1, 2, 2)


def test_search_takes_a_hybrid_below_the_best_folded_ii(cfg: Any) -> None:
    """A ceiling under the unrolled chain's LUTs and the fast foldings' DSPs: some layers
    unrolled, the rest folded, at a lower II than any all-folded configuration."""
    m = mlp()
    full = speed.search(m, cfg, "xc7z020", ceiling=0.8, progress=False)
    lut = full["chosen"]["resources"]["LUT"]
    ceiling = 0.6 * lut / 53200  # the whole chain unrolled no longer fits
    r = speed.search(m, cfg, "xc7z020", ceiling=ceiling, progress=False)
    ch = r["chosen"]
    best_folded = min((c["ii_cycles"] for c in r["candidates"]
                       if c["impl"] == "folded" and c["fits"]), default=None)
    assert ch["fits"] and isinstance(ch["impl"], dict), ch["name"]
    assert "unrolled" in ch["impl"].values()
    assert best_folded is None or ch["ii_cycles"] < best_folded
    assert max(ch["utilization"].values()) <= ceiling
    # every hybrid the search evaluated was predicted to fit; the chosen one was measured
    assert r["hybrids"]["tried"] and all(t["predicted_utilization"] <= ceiling
                                         for t in r["hybrids"]["tried"])
    # negative control: the unrolled candidate was tried and refused with its reason
    un = next(c for c in r["candidates"] if c["impl"] == "unrolled")
    assert not un["fits"] and any("LUT" in x for x in un["reasons"])


def test_search_refuses_a_ceiling_nothing_fits(cfg: Any) -> None:
    with pytest.raises(RuntimeError, match="no configuration fits the part within the "
                                           "ceiling: unrolled: over: LUT"):
        speed.search(mlp(), cfg, "xc7z020", ceiling=0.0005, progress=False)
