"""Backbones: build a Keras model with its weights and map the dream's [-1, 1] pixels to its input."""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import re
import warnings
import weakref
import zipfile
from dataclasses import dataclass, replace
from typing import Callable

import keras
import tensorflow as tf
from keras.src.backend.common import global_state

from .errors import ModelError, SettingsError

# Caffe-style backbones expect BGR pixels in [0, 255] minus the ImageNet mean.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def _unit_to_caffe(x: tf.Tensor) -> tf.Tensor:
    """(..., 3) RGB in [-1, 1] -> BGR in [0, 255] minus the ImageNet mean."""
    bgr = (x[..., ::-1] + 1.0) * 127.5
    return bgr - tf.constant(_CAFFE_MEAN_BGR, dtype=x.dtype)

def _identity(x: tf.Tensor) -> tf.Tensor:
    return x

@dataclass(frozen=True)
class Backbone:
    """A Keras application: how to build it, how to feed it, and which layers are worth dreaming on."""

    name: str
    build: Callable[..., keras.Model]
    to_input: Callable[[tf.Tensor], tf.Tensor]  # dream pixels in [-1, 1] -> model input
    block_pattern: str  # layers listed in errors and suggested for objectives
    default_layers: str  # objective spec used when the user names none

BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        Backbone("inception_v3", keras.applications.InceptionV3, _identity, r"mixed\d+$",
                 "mixed4=1.0,mixed5=1.5,mixed6=2.0,mixed7=2.5"),
        Backbone("vgg16", keras.applications.VGG16, _unit_to_caffe, r"block\d_conv\d$",
                 "block4_conv3=1.0,block5_conv3=1.0"),
        Backbone("vgg19", keras.applications.VGG19, _unit_to_caffe, r"block\d_conv\d$",
                 "block4_conv4=1.0,block5_conv4=1.0"),
        Backbone("resnet50", keras.applications.ResNet50, _unit_to_caffe, r"conv\d_block\d+_out$",
                 "conv3_block4_out=1.0,conv4_block3_out=1.0"),
        Backbone("xception", keras.applications.Xception, _identity, r"block\d+_sepconv\d_act$",
                 "block4_sepconv1_act=1.0,block6_sepconv1_act=1.0"),
        Backbone("mobilenet_v2", keras.applications.MobileNetV2, _identity, r"block_\d+_add$",
                 "block_5_add=1.0,block_9_add=1.0"),
    )
}

CUSTOM = "custom"

@dataclass(frozen=True)
class ModelSettings:
    """Which network to dream with and which weights it carries."""

    model: str = "inception_v3"  # a BACKBONES key or a path to a .keras file
    weights: str = "imagenet"  # "imagenet", "none" (seeded random) or a path to a weights file
    seed: int = 0  # initialises random weights when weights == "none"

    def __post_init__(self) -> None:
        if self.model not in BACKBONES and not self.model.endswith(".keras"):
            raise SettingsError(
                f"unknown model {self.model!r}: use one of {', '.join(BACKBONES)} or a path to a .keras file"
            )
        if self.model.endswith(".keras") and not os.path.isfile(self.model):
            raise SettingsError(f"model file not found: {self.model}; give the path to a saved .keras model")
        if self.weights not in ("imagenet", "none") and not os.path.isfile(self.weights):
            raise SettingsError(
                f"weights file not found: {self.weights}; use --weights imagenet, none, or a path to a weights file"
            )

@dataclass(frozen=True)
class LoadedModel:
    """A built network with what the dream needs to know about it."""

    model: keras.Model
    name: str
    settings: ModelSettings
    to_input: Callable[[tf.Tensor], tf.Tensor]
    block_pattern: str
    default_layers: str

    def dreamable_layers(self) -> list[str]:
        """Every layer with a 4-D (batch, H, W, C) output, in network order."""
        return [layer.name for layer in self.model.layers if len(_output_shape(layer)) == 4]

    def block_layers(self) -> list[str]:
        """The block outputs most worth dreaming on (shown in errors)."""
        names = [n for n in self.dreamable_layers() if re.match(self.block_pattern, n)]
        return names or self.dreamable_layers()

    def channels(self, layer: str) -> int:
        """How many channels `layer` has (ValueError for a layer the model lacks)."""
        return int(self.model.get_layer(layer).output.shape[-1])

def _output_shape(layer: keras.layers.Layer) -> tuple:
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):
        return ()
    return tuple(shape)

def load_model(settings: ModelSettings) -> LoadedModel:
    """Build the backbone named by `settings` with its weights (no top), ready for feature extraction."""
    if settings.model.endswith(".keras"):
        return _load_custom(settings)
    backbone = BACKBONES[settings.model]
    with _names_from_zero():
        if settings.weights == "none":
            keras.utils.set_random_seed(settings.seed)
            model = backbone.build(weights=None, include_top=False)
        elif settings.weights == "imagenet":
            model = _download_imagenet(backbone)
        else:
            model = backbone.build(weights=None, include_top=False)
            try:
                _load_weights(model, settings.weights)
            except Exception as exc:  # Keras raises many types for a mismatched file
                raise ModelError(
                    f"cannot load weights {settings.weights} into {backbone.name}: {_first_line(exc)}; "
                    f"give a weights file saved from keras.applications {backbone.name} (include_top=False)"
                ) from None
    model.trainable = False
    return LoadedModel(model, backbone.name, settings, backbone.to_input, backbone.block_pattern, backbone.default_layers)

@contextlib.contextmanager
def _names_from_zero():
    """Layers built inside are named as in a fresh process (conv2d, conv2d_1, ...), whatever it built before.

    TensorFlow's graph optimiser puts the summands of a gradient in the order of their op names, which carry the
    layer names: a second load of the same seeded network, its names counted on from the first (conv2d_94...),
    summed its gradients in another order and, in bfloat16, dreamed other frames. Names handed out afterwards
    count on from both, so no later layer takes one of these.
    """
    earlier = global_state.get_global_attribute("object_name_uids")
    fresh = collections.defaultdict(int)
    global_state.set_global_attribute("object_name_uids", fresh)
    try:
        yield
    finally:
        for prefix, count in (earlier or {}).items():
            fresh[prefix] = max(fresh[prefix], count)

def _load_weights(model: keras.Model, path: str) -> None:
    """model.load_weights, whose warnings (one per part of the model it found no weights for) are passed on only if
    the load succeeds: a file that fails to load is reported by the error alone."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.load_weights(path)
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def _download_imagenet(backbone: Backbone) -> keras.Model:
    try:
        return backbone.build(weights="imagenet", include_top=False)
    except Exception as exc:  # urllib, OSError, ValueError... all mean "could not fetch"
        raise ModelError(
            f"could not download the ImageNet weights for {backbone.name} ({_first_line(exc)}); "
            f"offline, pass --weights PATH to a copy of that file from a machine with network (or --weights none for random weights)"
        ) from None

def _load_custom(settings: ModelSettings) -> LoadedModel:
    if not zipfile.is_zipfile(settings.model):
        raise ModelError(f"cannot load model {settings.model}: it is not a saved Keras model (a .keras file is a zip "
                         "archive); save one with model.save('x.keras')")
    try:
        model = keras.saving.load_model(settings.model, compile=False, safe_mode=True)
    except Exception as exc:
        raise ModelError(f"cannot load model {settings.model}: {_first_line(exc)}; save it with model.save('x.keras')") from None
    if settings.weights not in ("imagenet", "none"):
        try:
            _load_weights(model, settings.weights)
        except Exception as exc:
            raise ModelError(f"cannot load weights {settings.weights} into {settings.model}: {_first_line(exc)}") from None
    model.trainable = False
    names = [layer.name for layer in model.layers if len(_output_shape(layer)) == 4]
    default = f"{names[-1]}=1.0" if names else ""
    return LoadedModel(model, settings.model, settings, _identity, saved_block_pattern(names), default)


def saved_block_pattern(names: list[str]) -> str:
    """The block layers of a saved model with these layers: those named like a known backbone's blocks (a saved
    InceptionV3 cut at mixed5 has mixed0 to mixed5), else every one."""
    known = [b.block_pattern for b in BACKBONES.values() if any(re.match(b.block_pattern, n) for n in names)]
    return "|".join(f"(?:{pattern})" for pattern in known) or r".*"


PRECISIONS = ("auto", "float32", "bfloat16", "float16")  # auto: bfloat16 where the hardware runs it fast


def auto_precision(*, cpu_flags: frozenset[str], gpu_capabilities: list[tuple[int, int] | None]) -> str:
    """What `auto` means on a machine: with GPUs (the dream runs on them), bfloat16 if every one has compute
    capability 8.0 or more (Ampere on, whose tensor cores take bfloat16); without, bfloat16 if the CPU has AMX
    or AVX512-BF16 instructions (oneDNN's bfloat16 kernels; 1.5-2.4x float32 measured); float32 elsewhere."""
    if gpu_capabilities:
        return "bfloat16" if all(c is not None and c >= (8, 0) for c in gpu_capabilities) else "float32"
    return "bfloat16" if cpu_flags & {"amx_bf16", "avx512_bf16"} else "float32"


@functools.cache
def resolve_precision(precision: str) -> str:
    """`precision` as the network's dtype: `auto` becomes this machine's fastest (auto_precision), others stay."""
    if precision != "auto":
        return precision
    gpus = tf.config.list_physical_devices("GPU")
    capabilities = [tf.config.experimental.get_device_details(gpu).get("compute_capability") for gpu in gpus]
    return auto_precision(cpu_flags=_cpu_flags(), gpu_capabilities=capabilities)


def _cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux lists them; none elsewhere (auto then means float32 on a CPU)."""
    try:
        with open("/proc/cpuinfo") as f:
            line = next((ln for ln in f if ln.startswith("flags")), "")
    except OSError:
        return frozenset()
    return frozenset(line.partition(":")[2].split())

# original model -> {(dtype, kept layers): its dreaming copy}; weak, so dropping a model frees its copies
_COPIES: "weakref.WeakKeyDictionary[keras.Model, dict[tuple, keras.Model]]" = weakref.WeakKeyDictionary()


class _Folded(keras.layers.Layer):
    """Stands in for a batch normalisation whose scale and shift now live in the convolution before it."""

    def call(self, x, training=None, mask=None):
        return x

    def compute_output_shape(self, input_shape):
        return input_shape


def dreaming_copy(loaded: LoadedModel, dtype: str = "float32", *, keep: frozenset[str] = frozenset()) -> LoadedModel:
    """`loaded` as the dream runs it: each inference batch norm folded into the convolution that feeds it, and
    every layer computing in `dtype` (built once per dtype and the part of `keep` that changes what is folded).

    Folding computes the same function with two fewer elementwise passes per convolution, forward and backward.
    A convolution named in `keep` is left unfolded, so an objective on it still sees its own output. Layer names
    are kept, so objectives apply; inputs stay float32 and the first layer casts them, so gradients flow back to
    a float32 image. A model that Keras cannot rebuild layer by layer is used as it is in float32.
    """
    if dtype not in PRECISIONS:
        raise SettingsError(f"--precision must be one of {', '.join(PRECISIONS)}, got {dtype!r}")
    dtype = resolve_precision(dtype)
    copies = _COPIES.setdefault(loaded.model, {})
    # objectives on other layers (InceptionV3's mixed blocks, say) fold the same: they share one copy
    key = (dtype, keep & _fold_members(loaded.model))
    if key not in copies:
        try:
            copies[key] = _rebuild(loaded.model, dtype, key[1])
        except Exception as exc:  # subclassed models and custom layers keras cannot rebuild from their config
            if dtype != "float32":
                raise ModelError(f"cannot run {loaded.name} in {dtype} ({_first_line(exc)}); use --precision float32") from None
            copies[key] = loaded.model
    return replace(loaded, model=copies[key])


def _foldable(model: keras.Model, keep: frozenset[str]) -> dict[str, keras.layers.BatchNormalization]:
    """Convolution name -> the inference batch norm that alone reads its output."""
    pairs = {}
    for layer in model.layers:
        if type(layer) is not keras.layers.BatchNormalization or layer.axis not in (-1, 3) or layer.name in keep:
            continue
        conv = layer.input._keras_history.operation
        if type(conv) is keras.layers.Conv2D and conv.name not in keep and len(conv._outbound_nodes) == 1:
            pairs[conv.name] = layer
    return pairs


def _fold_members(model: keras.Model) -> frozenset[str]:
    """Names of the convolutions and batch norms that fold together when nothing is kept (none for a model whose
    graph cannot be read: it is not rebuilt either)."""
    try:
        pairs = _foldable(model, frozenset())
    except Exception:  # subclassed models and custom layers
        return frozenset()
    return frozenset(name for conv, norm in pairs.items() for name in (conv, norm.name))


def _rebuild(model: keras.Model, dtype: str, keep: frozenset[str]) -> keras.Model:
    folds = _foldable(model, keep)
    folded_norms = {norm.name for norm in folds.values()}

    def clone(layer):
        if layer.name in folded_norms:
            return _Folded(name=layer.name, dtype=dtype)
        extra = {"use_bias": True} if layer.name in folds else {}
        return type(layer).from_config({**layer.get_config(), "dtype": dtype, **extra})

    copy = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if not layer.weights or layer.name in folded_norms:
            continue
        weights = layer.get_weights()
        if layer.name in folds:
            weights = _fold(weights, folds[layer.name])
        copy.get_layer(layer.name).set_weights(weights)  # cast to dtype on assignment
    copy.trainable = False
    return copy


def _fold(conv_weights: list, norm: keras.layers.BatchNormalization) -> list:
    """Kernel and bias of conv -> norm as one convolution: w * s and (b - mean) * s + beta, s = gamma / sqrt(var + eps)."""
    kernel = conv_weights[0].astype("float64")
    bias = conv_weights[1].astype("float64") if len(conv_weights) > 1 else 0.0
    scale = 1.0 / (norm.moving_variance.numpy().astype("float64") + norm.epsilon) ** 0.5
    if norm.scale:
        scale = scale * norm.gamma.numpy()
    shift = norm.beta.numpy() if norm.center else 0.0
    mean = norm.moving_mean.numpy().astype("float64")
    return [(kernel * scale).astype("float32"), ((bias - mean) * scale + shift).astype("float32")]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
