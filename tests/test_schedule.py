"""Schedules: Deforum's keyframes in frames and seconds, holds, expressions, the music's variables, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ddvideo.objective import parse_objective
from ddvideo.schedule import DreamSchedule, Schedule, ScheduleError, check_range, scheduled


def values(text: str, frames: int = 10, fps: float = 4.0, **audio) -> np.ndarray:
    return Schedule(text, option="--zoom").values(frames=frames, fps=fps, audio=audio or None)


def test_keyframes_are_joined_by_straight_lines_and_held_at_both_ends():
    v = values("2:(1.0), 6:(3.0)")
    assert v == pytest.approx([1, 1, 1, 1.5, 2, 2.5, 3, 3, 3, 3])


def test_seconds_and_frames_mix():
    v = values("0.5s:(0), 4:(1), 1.5s:(3)", frames=8, fps=4.0)  # 0.5 s is frame 2, 1.5 s frame 6
    assert v == pytest.approx([0, 0, 0, 0.5, 1, 2, 3, 3])


def test_deforum_syntax_as_it_is():
    v = values("0: (1.0025+0.002*sin(1.25*3.14*t/30)), 5: (1.0)", frames=7)
    t = np.arange(5)
    assert v[:5] == pytest.approx(1.0025 + 0.002 * np.sin(1.25 * 3.14 * t / 30))  # an expression holds to the next
    assert v[5:] == pytest.approx([1.0, 1.0])


def test_a_line_toward_an_expression_ends_at_its_value_there():
    v = values("0:(0), 4:(t), 6:(1)", frames=8)
    assert v == pytest.approx([0, 1, 2, 3, 4, 5, 1, 1])


def test_one_expression_of_time_for_the_whole_render():
    v = values("1.02+0.01*sin(2*pi*sec/4)", frames=9, fps=2.0)
    assert v == pytest.approx(1.02 + 0.01 * np.sin(2 * math.pi * np.arange(9) / 2.0 / 4))


def test_operators_comparisons_and_functions():
    v = values("where(t > 2, max(t, 4), -1) + (1 if t == 0 else 0) + 7 % 4 + 2**3 // 3", frames=6)
    assert v == pytest.approx(np.array([-1, -1, -1, 4, 4, 5]) + [1, 0, 0, 0, 0, 0] + 3 + 2)


def test_music_variables_are_read_per_frame():
    beat = np.array([1.0, 0.5, 0.0, 1.0])
    assert values("1+0.1*beat", frames=4, beat=beat) == pytest.approx(1 + 0.1 * beat)


def test_a_constant_stays_a_number():
    assert scheduled("1.040", option="--zoom") == 1.04 and scheduled(2, option="--zoom") == 2.0
    assert scheduled(" 0:(1), 9:(2) ", option="--zoom") == "0:(1), 9:(2)"
    assert Schedule("1.04", option="--zoom").constant == 1.04 and Schedule("t", option="--zoom").constant is None


@pytest.mark.parametrize(("text", "message"), [
    ("0:(1.04), 48(1.0)", r"--zoom: expected a keyframe at character 11 of '0:\(1.04\), 48\(1.0\)'"),
    ("0:(1.04) 48:(1.0)", r"expected ',' between keyframes at character 10"),
    ("0:(1.04", r"unclosed '\(' at character 3"),
    ("0:(1.04), 4:()", r"empty value at character 14"),
    ("2.5:(1)", r"frame 2.5 is not a whole number \(write 2.5s for seconds\) at character 1"),
    ("0:(1), 0:(2)", r"two keyframes at 0"),
    ("1+speed", r"unknown name 'speed' at character 3 of '1\+speed'; expressions can use t, sec"),
    ("0:(1), 10:(1+zoom)", r"unknown name 'zoom' at character 14"),
    ("__import__('os')", r"not a function a schedule can call"),
    ("t.real", r"attribute not allowed"),
    ("'a'", r"'a' is not a number"),
    ("sin + 1", r"sin is a function: write sin\(...\)"),
    ("max(t)", r"max\(\) takes 2 values"),
    ("2^3", r"operator not allowed at character 1 of '2\^3'; use \+ - \* / % // and \*\* for powers"),
    ("[1, 2]", r"list not allowed"),
    ("lambda: 1", r"lambda not allowed"),
])
def test_bad_schedules_name_the_option_and_the_position(text, message):
    with pytest.raises(ScheduleError, match=message):
        Schedule(text, option="--zoom")


def test_music_variables_without_music_are_refused():
    with pytest.raises(ScheduleError, match=r"--zoom uses rms, beat, which follow the music: give --audio FILE"):
        values("1+beat*rms")


def test_out_of_range_names_the_frame_and_the_time():
    zoom = values("0:(1), 4:(0)", frames=10, fps=4.0)
    with pytest.raises(ScheduleError, match=r"--zoom is 0 at frame 4 \(1.00 s\); it must be positive"):
        check_range(zoom, option="--zoom", fps=4.0, ok=lambda v: v > 0, need="positive")
    with pytest.raises(ScheduleError, match=r"--zoom is not a finite number \(a division by zero, or the log or root "
                                            r"of a negative\?\) at frame 0"):
        check_range(values("1/t"), option="--zoom", fps=4.0, ok=lambda v: v > 0, need="positive")
    with pytest.raises(ScheduleError, match=r"--zoom is not a finite number .* at frame 0"):
        check_range(values("log(t-5)"), option="--zoom", fps=4.0, ok=lambda v: v > 0, need="positive")
    with pytest.raises(ScheduleError, match=r"--zoom must be positive, got -2"):
        check_range(values("-2"), option="--zoom", fps=4.0, ok=lambda v: v > 0, need="positive")


def test_layer_weights_morph_one_term_into_another():
    schedule = DreamSchedule(layer_weights="mixed3=0:(1), 4:(0) ;mixed5:7=0:(0), 4:(2)")
    assert schedule.layer_weights == "mixed3=0:(1), 4:(0); mixed5:7=0:(0), 4:(2)"
    terms = parse_objective("mixed3=1,mixed4=0.5,mixed5:7=1")
    weights = schedule.weights(terms, frames=5, fps=4.0)
    assert weights == pytest.approx(np.array([[1, 0.5, 0], [0.75, 0.5, 0.5], [0.5, 0.5, 1], [0.25, 0.5, 1.5],
                                              [0, 0.5, 2]]))
    assert DreamSchedule().weights(terms, frames=5, fps=4.0) is None
    with pytest.raises(ScheduleError, match=r"names mixed6, which is not in the objective \(mixed3, mixed4, mixed5:7\)"):
        DreamSchedule(layer_weights="mixed6=1").weights(terms, frames=5, fps=4.0)
    with pytest.raises(ScheduleError, match=r"--layer-weights: cannot read 'mixed3'; write LAYER=SCHEDULE"):
        DreamSchedule(layer_weights="mixed3")
    with pytest.raises(ScheduleError, match=r"--layer-weights mixed3: expected ',' between keyframes at character 7"):
        DreamSchedule(layer_weights="mixed3=0:(1) 4:(0)")


def test_strength_schedule_and_its_range():
    schedule = DreamSchedule(strength="0:(1), 4:(3)")
    assert schedule.strengths(1.0, frames=5, fps=4.0) == pytest.approx([1, 1.5, 2, 2.5, 3])
    assert DreamSchedule().strengths(0.7, frames=3, fps=4.0) == pytest.approx([0.7] * 3)
    with pytest.raises(ScheduleError, match=r"--strength is 0 at frame 2 \(0.50 s\); it must be a positive number"):
        DreamSchedule(strength="1-t/2").strengths(1.0, frames=5, fps=4.0)
