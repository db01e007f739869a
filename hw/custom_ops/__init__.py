"""Our RTL variants of FINN's HLS-only stream ops, plus the CodebookLookup op.

=========================  ==========================  =================================
class                      FINN parent                 core (hw/rtl/)
=========================  ==========================  =================================
DuplicateStreams_rtl       DuplicateStreams            dup_streams_axi.sv
StreamingConcat_rtl        StreamingConcat             concat_axi.sv
StreamingSplit_rtl         StreamingSplit              split_axi.sv
ElementwiseAdd_rtl         FINN's ElementwiseAdd_rtl   eltwise_add_axi.sv (int/int only)
LabelSelect_rtl            LabelSelect (K = 1)         label_select_axi.sv
CodebookLookup_rtl         CodebookLookup (ours)       codebook_lookup_axi.sv
=========================  ==========================  =================================

Importing this package calls :func:`register` (idempotent): the ``*_rtl`` classes go
into FINN's rtl registry (``finn.custom_op.fpgadataflow.rtl.custom_op``, the dict
SpecializeLayers consults and QONNX's getCustomOp resolves domain
``finn.custom_op.fpgadataflow.rtl`` through), and ``CodebookLookup`` into
``finn.custom_op.fpgadataflow.custom_op`` (domain ``finn.custom_op.fpgadataflow``).
SpecializeLayers then maps DuplicateStreams, StreamingConcat, StreamingSplit,
LabelSelect and CodebookLookup to these when preferred_impl_style is "rtl" or unset.
ElementwiseAdd needs :class:`SpecializeIntegerElementwiseAdd` before SpecializeLayers
(see hw/custom_ops/elementwise_add.py).
"""

from __future__ import annotations

import hw  # noqa: F401  (FINN's offline bootstrap must run before finn.custom_op)
from hw.custom_ops.codebook_lookup import (
    CodebookLookup,
    CodebookLookup_rtl,
    make_codebook_lookup_node,
    smallest_int_type,
)
from hw.custom_ops.duplicate_streams import DuplicateStreams_rtl
from hw.custom_ops.elementwise_add import ElementwiseAdd_rtl, SpecializeIntegerElementwiseAdd
from hw.custom_ops.label_select import LabelSelect_rtl
from hw.custom_ops.streaming_concat import StreamingConcat_rtl
from hw.custom_ops.streaming_split import StreamingSplit_rtl
from hw.custom_ops.unrolled_mlp import UnrolledMLP, UnrolledMLP_rtl

RTL_OPS = [DuplicateStreams_rtl, StreamingConcat_rtl, StreamingSplit_rtl, ElementwiseAdd_rtl,
           LabelSelect_rtl, CodebookLookup_rtl, UnrolledMLP_rtl]
HW_OPS = [CodebookLookup, UnrolledMLP]

__all__ = ["CodebookLookup", "CodebookLookup_rtl", "DuplicateStreams_rtl", "ElementwiseAdd_rtl",
           "LabelSelect_rtl", "SpecializeIntegerElementwiseAdd", "StreamingConcat_rtl",
           "StreamingSplit_rtl", "UnrolledMLP", "UnrolledMLP_rtl", "make_codebook_lookup_node",
           "register", "smallest_int_type"]


def register() -> None:
    """Insert our classes into FINN's registries (idempotent; safe to call again).

    QONNX's getCustomOp caches a resolved op type per domain, so the cache entries for
    our names are replaced as well (otherwise a lookup made before registration, e.g.
    of FINN's ElementwiseAdd_rtl, would keep the old class).
    """
    import finn.custom_op.fpgadataflow as hw_domain
    import finn.custom_op.fpgadataflow.rtl as rtl_domain
    from qonnx.custom_op import registry

    for domain, module, classes in (("finn.custom_op.fpgadataflow.rtl", rtl_domain, RTL_OPS),
                                    ("finn.custom_op.fpgadataflow", hw_domain, HW_OPS)):
        for cls in classes:
            module.custom_op[cls.__name__] = cls
            registry.add_op_to_domain(domain, cls)


register()
