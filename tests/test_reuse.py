"""Networks and compiled dreams kept across the jobs of one worker: loaded and folded once, bounded in number."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import SMALL_LAYERS, textured_image
from ddvideo import models, reuse
from ddvideo.batch import load_manifest
from ddvideo.batch.units import Unit, run_unit
from ddvideo.dream import Dreamer, DreamSettings
from ddvideo.media import read_image, write_image
from ddvideo.models import ModelSettings

RANDOM = ModelSettings(weights="none", seed=0)
SETTINGS = DreamSettings(layers=SMALL_LAYERS, octaves=1, iterations=1)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """An empty cache, and how many networks are built and folded copies made from here on."""
    counts = {"loads": 0, "folds": 0}

    def counting(name: str, function):
        def wrapper(*args, **kwargs):
            counts[name] += 1
            return function(*args, **kwargs)
        return wrapper

    reuse.clear()
    monkeypatch.setattr(models, "load_model", counting("loads", models.load_model))
    monkeypatch.setattr(models, "_rebuild", counting("folds", models._rebuild))
    yield counts
    reuse.clear()


def test_two_jobs_of_one_worker_load_and_fold_the_network_once(tmp_path: Path, counted: dict[str, int]) -> None:
    for name, (height, width) in {"a.png": (120, 140), "b.png": (150, 130)}.items():  # two frame sizes
        write_image(str(tmp_path / name), textured_image(height, width, seed=len(name)))
    (tmp_path / "jobs.toml").write_text(f"""
[defaults]
mode = "image"
weights = "none"
layers = "{SMALL_LAYERS}"
octaves = 1
iterations = 2

[[job]]
input = "a.png"
output = "a.out.png"

[[job]]
input = "b.png"
output = "b.out.png"
iterations = 3  # a value the compiled dream takes as an input: no new dreamer
""")
    jobs = load_manifest(tmp_path / "jobs.toml").jobs
    counted.update(loads=0, folds=0)  # checking the manifest may build a network of its own, to list its layers
    first, second = (run_unit(Unit(job)) for job in jobs)
    assert first.ok and second.ok, (first.error, second.error)
    assert (first.loads, second.loads) == (1, 0)
    assert counted == {"loads": 1, "folds": 1}
    assert read_image(str(tmp_path / "b.out.png")).shape == (150, 130, 3)
    (kept,) = [dreamer for _, dreamer in reuse._dreamers.values()]
    assert kept.trace_count == 2  # the octave graph of each frame size; the network once
    assert kept._network_gradients.experimental_get_tracing_count() == 1


def test_a_shared_dreamer_dreams_as_a_new_one_would(counted: dict[str, int]) -> None:
    first = reuse.shared_dreamer(RANDOM, SETTINGS)
    image = textured_image(112, 128, seed=1)
    first.dream(image)
    other = replace(SETTINGS, iterations=3, step=12.0)
    shared = reuse.shared_dreamer(replace(RANDOM), other)
    assert shared is not first and shared.settings == replace(other, precision=first.settings.precision).resolved()
    assert shared._graph is first._graph  # one compiled dream
    fresh = Dreamer(reuse.shared_model(RANDOM), other)
    assert np.array_equal(shared.dream(image, seed=2).frame, fresh.dream(image, seed=2).frame)
    assert first.trace_count == 1 and counted["loads"] == 1


def test_what_changes_the_graph_gets_its_own_dreamer_on_the_same_network(counted: dict[str, int]) -> None:
    base = reuse.shared_dreamer(RANDOM, SETTINGS)
    assert reuse.shared_dreamer(RANDOM, replace(SETTINGS, layers="mixed2=1.0")) is not base  # another objective
    assert reuse.shared_dreamer(RANDOM, replace(SETTINGS, precision="float16")) is not base
    assert reuse.shared_dreamer(RANDOM, SETTINGS, jit_compile=True) is not base
    # objectives on mixed blocks fold alike and share one copy; float16 has its own; the jit dreamer shares too
    assert counted == {"loads": 1, "folds": 2}


def test_the_seed_names_another_network_only_for_random_weights() -> None:
    real = ModelSettings(weights="imagenet", seed=4)
    assert reuse.model_key(real) == reuse.model_key(replace(real, seed=0))
    assert reuse.model_key(RANDOM) != reuse.model_key(replace(RANDOM, seed=1))


def test_kept_networks_are_bounded(monkeypatch: pytest.MonkeyPatch, counted: dict[str, int]) -> None:
    monkeypatch.setattr(reuse, "MAX_MODELS", 1)
    small = ModelSettings(model="mobilenet_v2", weights="none")
    settings = DreamSettings(layers="block_5_add", octaves=1, iterations=1)
    reuse.shared_dreamer(small, settings)
    reuse.shared_dreamer(replace(small, seed=1), settings)  # other random weights: the first network goes
    assert [key.seed for key in reuse._models] == [1]
    assert [dreamer.loaded.settings.seed for _, dreamer in reuse._dreamers.values()] == [1]  # and its dreamer
    reuse.shared_dreamer(small, settings)
    assert counted["loads"] == 3
