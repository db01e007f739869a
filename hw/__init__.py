"""QONNX -> FINN -> RTL flow through FINN's own builder, offline, verified at every stage.

Importing ``hw`` runs the offline FINN bootstrap (hw.finn_offline) once, so that every
module below may import ``finn.builder`` and ``finn.custom_op``. FINN's scratch folder
is ``$FINN_BUILD_DIR`` or ``build/finn_tmp`` in the repository.
"""

import os
from pathlib import Path

from hw.finn_offline import bootstrap

bootstrap(os.environ.get("FINN_BUILD_DIR",
                         str(Path(__file__).resolve().parent.parent / "build" / "finn_tmp")))
