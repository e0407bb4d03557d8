"""Networks and compiled dreams kept between the renders of one process, so that a batch worker's next job with
the same model starts at once: a small LRU of loaded models and of dreamers (each holding its folded copy)."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import replace

from . import models
from .dream import Dreamer, DreamSettings, default_jit_compile
from .models import LoadedModel, ModelSettings

# InceptionV3 in float32 is about 0.1 GB of weights, and each dreamer's folded copy about as much again
MAX_MODELS = 2
MAX_DREAMERS = 4

_models: OrderedDict[ModelSettings, LoadedModel] = OrderedDict()  # least recently used first
_dreamers: OrderedDict[int, tuple[bool, Dreamer]] = OrderedDict()  # (jit, dreamer), least recently used first
_keys = itertools.count()
_loads = 0  # networks this process has loaded


def models_loaded() -> int:
    """How many networks this process has loaded so far (a batch job's result says whether it needed one)."""
    return _loads


def model_key(settings: ModelSettings) -> ModelSettings:
    """`settings` as far as they decide the network: the seed matters only to random weights."""
    return settings if settings.weights == "none" else replace(settings, seed=0)


def shared_model(settings: ModelSettings) -> LoadedModel:
    """The network `settings` name, loaded once per process while it stays among the MAX_MODELS last used."""
    key = model_key(settings)
    loaded = _models.get(key)
    if loaded is None:
        global _loads
        loaded = _models[key] = models.load_model(settings)
        _loads += 1
        while len(_models) > MAX_MODELS:
            _, evicted = _models.popitem(last=False)
            for k in [k for k, (_, d) in _dreamers.items() if d.loaded.model is evicted.model]:
                del _dreamers[k]  # its folded copies go with it (models keeps them by weak reference)
    _models.move_to_end(key)
    return loaded if loaded.settings == settings else replace(loaded, settings=settings)


def shared_dreamer(model: ModelSettings, dream: DreamSettings, *, jit_compile: bool | None = None) -> Dreamer:
    """A Dreamer for these settings that reuses a kept one (network, folded copy, compiled octave graphs) where it
    can: same network, objective, precision and graph settings; iterations, step and max loss may differ."""
    loaded = shared_model(model)
    jit = default_jit_compile() if jit_compile is None else jit_compile
    for key, (kept_jit, kept) in reversed(_dreamers.items()):
        view = kept.sharing(loaded, dream) if kept_jit == jit else None
        if view is not None:
            _dreamers.move_to_end(key)
            return view
    dreamer = Dreamer(loaded, dream, jit_compile=jit)
    _dreamers[next(_keys)] = (jit, dreamer)
    while len(_dreamers) > MAX_DREAMERS:
        _dreamers.popitem(last=False)
    return dreamer


def clear() -> None:
    """Forget every kept network and dreamer (their memory is freed once nothing else holds them)."""
    _models.clear()
    _dreamers.clear()
