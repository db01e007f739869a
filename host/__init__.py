"""PYNQ host runtime: one driver for the board and for the RTL simulation (issue 5).

Board side (numpy, plus pynq on a board; numpy 1.x and 2.x):

``host.package``   open ``bitstreams/<design>-<board>/``: the hashed I/O contract, every
                   artifact's sha256, no unlisted files, the expected board
``host.onnx_facts`` the I/O contract re-derived from the package's ONNX models (a small
                   protobuf reader: the board has no ``onnx``)
``host.codec``     one named stream: its ``contract.iospec.TensorSpec`` (float <-> code
                   rules), FINN's folding and byte packing
``host.driver``    :class:`host.driver.Accelerator`: ``execute``, ``execute_codes`` on named
                   streams, batching, the IODMA buffer/register sequence of FINN's PYNQ
                   driver
``host.backends.pynq_backend``  the board: ``pynq.Overlay``, ``pynq.allocate``, IODMA MMIO
``host.integer`` / ``host.backends.integer``  the package's integer graph (MVAU,
                   Thresholding, unrolled MLPs, split/concat/fork, residual adds, codebook
                   lookups, argmax) executed in numpy, bit-exact with the RTL: the hardware
                   model in the link loop and the fair CPU baseline (``backend="integer"``)

Development side (torch, FINN, Verilator; never imported on the board):

``host.backends.rtlsim``     the same buffers and registers, served by the Verilator
                             simulation of the package's RTL (hw.rtlsim)
``host.backends.reference``  the Brevitas network (``export.reference``) or QONNX
                             execution, any number of streams
``host.verify`` / ``host.bench``  ``python -m host verify|bench PACKAGE``

This package imports nothing at module level, so ``import host`` is safe everywhere.
"""
