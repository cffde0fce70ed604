"""``Registry``: one way to pick a thing by name, and every stage's registry behind ``reidkit list``."""

from __future__ import annotations

import pytest

from reidkit.data.loading import DATASETS, load_dataset
from reidkit.errors import ConfigError, ModelError, StoreError
from reidkit.inference.backends import EMBEDDING_BACKENDS
from reidkit.models import BACKBONES, MODELS, build_backbone, build_model
from reidkit.registry import Registry
from reidkit.store.vector_index import VECTOR_INDEXES, IndexLocation, load_vector_index
from reidkit.video.detectors import DETECTORS, build_detector


def test_registry_keeps_order_and_names_choices_in_its_stage_error() -> None:
    registry: Registry[int] = Registry("gadget", ModelError)
    registry.add("b", 2, "second letter")
    assert registry.add("a", 1, "first letter") == 1

    assert registry.names() == ("b", "a") and list(registry) == ["b", "a"] and len(registry) == 2
    assert registry.get("a") == 1 and "b" in registry and "c" not in registry
    assert [entry.summary for entry in registry.entries()] == ["second letter", "first letter"]
    with pytest.raises(ModelError, match=r"^unknown gadget 'c'; choose one of b, a$"):
        registry.get("c")
    with pytest.raises(ValueError, match="registered twice"):
        registry.add("b", 3, "again")


def test_each_stage_registers_what_it_builds() -> None:
    assert MODELS.names() == ("mgn", "ide", "trinet", "pcb", "bnneck")
    assert BACKBONES.names() == ("resnet50", "mobilenetv2")
    assert set(DATASETS.names()) == {"market1501", "cuhk03", "cuhk03_shared", "dukemtmc", "msmt17", "folder", "csv"}
    assert set(DETECTORS.names()) == {"openvino", "openvino-hires", "hog", "torchvision"}
    assert EMBEDDING_BACKENDS.names() == ("torch", "openvino", "onnxruntime")
    assert VECTOR_INDEXES.names() == ("faiss", "milvus")
    for registry in (MODELS, BACKBONES, DATASETS, DETECTORS, EMBEDDING_BACKENDS, VECTOR_INDEXES):
        assert all(entry.summary for entry in registry.entries()), registry.kind


def test_unknown_names_fail_with_the_stage_error(tmp_path) -> None:
    with pytest.raises(ModelError, match="unknown model 'resnet'; choose one of mgn, ide"):
        build_model("resnet", num_classes=2)
    with pytest.raises(ModelError, match="unknown backbone 'vgg'"):
        build_backbone("vgg")
    with pytest.raises(ConfigError, match="unknown dataset 'market'; choose one of market1501"):
        load_dataset("market", tmp_path)
    with pytest.raises(ConfigError, match="unknown detector 'yolo'; choose one of openvino, openvino-hires, hog, torchvision"):
        build_detector("yolo")
    with pytest.raises(StoreError, match="unknown vector index 'annoy'; choose one of faiss, milvus"):
        load_vector_index(IndexLocation("annoy", tmp_path), "crops", 8)


def test_registered_builders_build() -> None:
    assert type(build_detector("hog")).__name__ == "HogDetector"
    assert isinstance(build_model("ide", num_classes=3, backbone="mobilenetv2"), MODELS.get("ide"))  # type: ignore[arg-type]
