"""The study's nets. Importing the package registers the study's losses and metrics: a saved
frozen C_RESNET carries its compiled head, whose config names them, so loading a run needs them."""

from posenet.study import losses, metrics  # noqa: F401  (registration side effect)
