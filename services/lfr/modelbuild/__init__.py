"""Model building: converters, the default build, quantisation, template calibration and measurements.

Why apart from :mod:`lfr.vision`: these run once, at image build time or on a developer's machine, and pull
in converters and evaluation code the services never need; the runtime only reads the cards and ONNX files
they write. This package may import the vision runtime and :mod:`lfr.evaluation`; neither imports it.

* :func:`build_models` converts the default models (SFace and dlib ResNet v1 embedders, YuNet and MTCNN
  detectors) from their registry packages into ``<models_dir>/<name>/`` with a card each.
"""

from lfr.modelbuild.build import build_models

__all__ = ["build_models"]
