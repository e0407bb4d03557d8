"""Objective parsing and backbones: presets, channels, unknown names, weights loading and the offline error."""

import numpy as np
import pytest
import keras

from conftest import textured_image
from ddvideo.dream import Dreamer, DreamSettings
from ddvideo.errors import ModelError, SettingsError
from ddvideo.models import BACKBONES, ModelSettings, load_model
from ddvideo.objective import PRESETS, Term, build_extractor, feature_stride, parse_objective


def test_presets_are_the_documented_ones():
    assert parse_objective("keras") == (Term("mixed4", 1.0), Term("mixed5", 1.5), Term("mixed6", 2.0), Term("mixed7", 2.5))
    assert parse_objective("tutorial") == (Term("mixed3", 1.0), Term("mixed5", 1.0))
    assert [t.weight for t in parse_objective("book")] == [0.2, 3.0, 2.0, 1.5]
    assert set(PRESETS) == {"keras", "tutorial", "book"}


def test_spec_with_channels_and_default_weights():
    assert parse_objective("mixed4:97, mixed5=2.5") == (Term("mixed4", 1.0, 97), Term("mixed5", 2.5))


@pytest.mark.parametrize("spec, message", [
    ("mixed4=abc", "cannot read layer term"),
    ("mixed4:x", "cannot read layer term"),
    ("mixed4:-1", "negative"),
    ("", "empty layer objective"),
    ("mixed4,mixed4", "twice"),
])
def test_bad_specs(spec, message):
    with pytest.raises(SettingsError, match=message):
        parse_objective(spec)


def test_unknown_layer_lists_valid_ones(inception):
    with pytest.raises(SettingsError, match=r"unknown layer 'mixed99'.*mixed0, mixed1.*mixed10"):
        build_extractor(inception, parse_objective("mixed99=1"))


def test_channel_out_of_range(inception):
    with pytest.raises(SettingsError, match=r"channel 288 is out of range for layer 'mixed2', which has 288"):
        build_extractor(inception, parse_objective("mixed2:288"))


def test_default_objective_is_keras_preset(inception):
    assert Dreamer(inception).terms == parse_objective("keras")


@pytest.mark.parametrize("name, layers", [
    ("vgg16", "block3_conv3=1.0"),
    ("resnet50", "conv3_block4_out=1.0"),
    ("vgg19", "block3_conv4=1.0"),
])
def test_other_backbones_dream(name, layers):
    loaded = load_model(ModelSettings(model=name, weights="none", seed=1))
    assert any(n in loaded.block_layers() for n in [layers.split("=")[0]])
    frame = textured_image(96, 112, seed=2)
    result = Dreamer(loaded, DreamSettings(layers=layers, octaves=1, iterations=2, max_loss=None)).dream(frame)
    assert result.frame.shape == frame.shape and result.frame.dtype == np.uint8
    assert np.abs(result.frame.astype(int) - frame.astype(int)).mean() > 0.5


def test_every_backbone_has_a_valid_default_objective():
    # building without weights is quick for all but the largest; check the names exist in each
    for name, backbone in BACKBONES.items():
        model = backbone.build(weights=None, include_top=False)
        names = {layer.name for layer in model.layers}
        for term in parse_objective(backbone.default_layers):
            assert term.layer in names, f"{name}: default layer {term.layer} missing"


def test_weights_file_round_trip(tmp_path, inception):
    path = str(tmp_path / "w.weights.h5")
    inception.model.save_weights(path)
    loaded = load_model(ModelSettings(weights=path))
    image = textured_image(100, 100)
    x = keras.ops.convert_to_tensor(image[None].astype("float32") / 127.5 - 1)
    assert np.allclose(loaded.model(x), inception.model(x), atol=1e-5)


def test_mismatched_weights_file(tmp_path):
    vgg = BACKBONES["vgg16"].build(weights=None, include_top=False)
    path = str(tmp_path / "vgg.weights.h5")
    vgg.save_weights(path)
    with pytest.raises(ModelError, match="cannot load weights"):
        load_model(ModelSettings(model="inception_v3", weights=path))


def test_custom_keras_model(tmp_path, inception):
    sub = keras.Model(inception.model.inputs, inception.model.get_layer("mixed3").output)
    path = str(tmp_path / "sub.keras")
    sub.save(path)
    loaded = load_model(ModelSettings(model=path, weights="none"))
    # its blocks are those named like a known backbone's (mixed0 to mixed3), listed in errors and sheets
    assert loaded.block_layers() == ["mixed0", "mixed1", "mixed2", "mixed3"]
    with pytest.raises(SettingsError, match=r"unknown layer 'mixed9' .*; valid layers include mixed0, mixed1, mixed2, "
                                            r"mixed3 \(run"):
        build_extractor(loaded, parse_objective("mixed9"))
    frame = textured_image(112, 112)
    ours = Dreamer(loaded, DreamSettings(layers="mixed2", octaves=1, iterations=2)).dream(frame).frame
    theirs = Dreamer(inception, DreamSettings(layers="mixed2", octaves=1, iterations=2)).dream(frame).frame
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1


def test_offline_imagenet_download_names_the_fix(monkeypatch, tmp_path):
    # an empty cache, so that the weights must be downloaded: Keras reads KERAS_HOME once, when it is imported, so
    # setting the variable now would leave a cached copy on this machine in use
    from keras.src.backend import config

    monkeypatch.setattr(config, "keras_home", lambda: str(tmp_path))
    # a proxy that refuses connections stands in for a machine without network
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(ModelError, match=r"could not download the ImageNet weights for vgg16 \(URL fetch failure .*"
                                         r"Connection refused\).*--weights PATH"):
        load_model(ModelSettings(model="vgg16", weights="imagenet"))
    assert not list(tmp_path.rglob("*.h5"))  # it looked in the empty cache and fetched nothing


@pytest.mark.parametrize("kwargs, message", [
    ({"model": "alexnet"}, "unknown model 'alexnet'"),
    ({"model": "missing.keras"}, "model file not found"),
    ({"weights": "nowhere.h5"}, "weights file not found"),
])
def test_bad_model_settings(kwargs, message):
    with pytest.raises(SettingsError, match=message):
        ModelSettings(**kwargs)


@pytest.mark.parametrize("spec, stride", [("mixed2=1", 8), ("mixed3=1,mixed5=1", 16), ("mixed0=1,mixed7=1", 16), ("mixed8=1", 32)])
def test_feature_stride_is_the_coarsest_layer_step(inception, spec, stride):
    assert feature_stride(build_extractor(inception, parse_objective(spec))) == stride
