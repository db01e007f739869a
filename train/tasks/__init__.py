"""Training tasks by name (``train.task`` in a design YAML, else the registry default).

* ``reconstruction`` (:mod:`train.tasks.reconstruction`): EQ-Net stage 1, the deployed
  encoder with a training-only float decoder;
* ``regression`` (:mod:`train.tasks.regression`): every output against
  ``target:<output>``, codebook heads fitted by k-means afterwards;
* ``classification`` (:mod:`train.tasks.classification`): cross-entropy of each output's
  logits against class indices ``target:<output>``;
* ``eqnet_stage1``, ``eqnet_stage2``, ``eqnet_joint``, ``from_run`` (:mod:`train.tasks.eqnet`);
* ``bae_autoencoder`` (:mod:`train.tasks.bae`): the Tanh bit-wise autoencoder's receiver
  and transmitter end to end through the channel.
"""

from train.tasks import (  # noqa: F401 (register)
    bae,
    classification,
    eqnet,
    reconstruction,
    regression,
)
from train.tasks.base import (
    TASKS,
    VAL_SAMPLES,
    Task,
    TaskResult,
    TaskRun,
    UnknownRecipeError,
    UnknownTaskError,
    get_task,
    register,
)

__all__ = ["TASKS", "VAL_SAMPLES", "Task", "TaskResult", "TaskRun", "UnknownRecipeError",
           "UnknownTaskError",
           "get_task", "register"]
