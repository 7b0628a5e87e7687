"""Point annotation of a folder of infrared frames: ``semprior annotate``.

:mod:`.session` holds the labels and saves them after every change, :mod:`.contrast` the display transforms,
:mod:`.suggest` the model-assisted suggestions and uncertainty order, :mod:`.app` the Panel page.
"""

from .session import AnnotationSession, Progress
from .suggest import Suggestions, suggest

__all__ = ["AnnotationSession", "Progress", "Suggestions", "suggest"]
