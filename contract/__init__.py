"""The shared floor every stage may import (board-safe: standard library and numpy only):
the sealed package contract (``seal``) and the I/O spec of a network (``iospec``)."""
