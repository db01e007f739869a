"""Training tasks by name (``train.task`` in a design YAML, else the registry default).

* ``reconstruction`` (:mod:`train.tasks.reconstruction`): EQ-Net stage 1, the deployed
  encoder with a training-only float decoder;
* ``regression`` (:mod:`train.tasks.regression`): every output against
  ``target:<output>``, codebook heads fitted by k-means afterwards;
* ``classification`` (:mod:`train.tasks.classification`): cross-entropy of each output's
  logits against class indices ``target:<output>``.
"""

from train.tasks import classification, eqnet, reconstruction, regression  # noqa: F401 (register)
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
