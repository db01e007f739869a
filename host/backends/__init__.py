"""Backends of :class:`host.driver.Accelerator`: ``pynq`` (board), ``rtlsim``, ``reference``.

Only ``pynq_backend`` is board-side; nothing here is imported until a backend is chosen.
"""
