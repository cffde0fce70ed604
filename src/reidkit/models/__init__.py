"""ReID models: MGN and its baselines on ResNet-50 or MobileNetV2 backbones, built by ``build_model``, and the
model file that carries one between training, inference and the person-search store (``model_file``).

Nothing is imported here until it is asked for (PEP 562): a reader of ``models.zoo`` (which shipped model a store
names, and where its file is) loads no torch, so ``reidkit search`` with a cached OpenVINO model starts without it.
"""

from reidkit.lazy_exports import lazy_getattr

# Each exported name and the module that defines it.
_EXPORTS = {
    "BACKBONES": "backbones",
    "Backbone": "backbones",
    "build_backbone": "backbones",
    "BNNeck": "bnneck",
    "MODELS": "build",
    "build_model": "build",
    "IDE": "ide",
    "MGN": "mgn",
    "ModelCard": "model_file",
    "build_from_checkpoint": "model_file",
    "load_checkpoint": "model_file",
    "load_model": "model_file",
    "model_id": "model_file",
    "save_checkpoint": "model_file",
    "save_weights_only": "model_file",
    "PCB": "pcb",
    "TriNet": "trinet",
    "ModelSpec": "types",
    "ReidModel": "types",
    "ReidOutputs": "types",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
