"""Schedules: numbers that change over a render, written as Deforum keyframes or as expressions of time and music.

`0:(1.04), 48:(1.0), 2.5s:(1.06)` sets values at frames (or seconds), linear in between and held before the first
keyframe and after the last. A value may be an expression of `t` (the frame index), `sec` (seconds), `max_f` (the
last frame's index) and the music's `rms`, `onset`, `beat`, `bass` and `treble`; a keyframe whose value is an
expression follows it until the next keyframe, as in Deforum. A whole schedule may also be one expression. The
expressions are read by a small whitelisted parser over Python's syntax tree: numbers, arithmetic, comparisons,
`a if c else b` and the functions in FUNCTIONS; nothing else is evaluated.
"""

from __future__ import annotations

import ast
import math
import re
import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np

from .errors import SettingsError

FRAME_VARIABLES = ("t", "sec")
AUDIO_VARIABLES = ("rms", "onset", "beat", "bass", "treble")
CONSTANTS = {"pi": math.pi, "e": math.e}


def _clip(x, low, high):
    return np.clip(x, low, high)


FUNCTIONS: dict[str, tuple[Callable, int]] = {  # name -> (function on arrays, number of arguments)
    **{name: (getattr(np, name), 1) for name in ("sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh",
                                                  "tanh", "exp", "log", "log10", "sqrt", "abs", "floor", "ceil")},
    "asin": (np.arcsin, 1), "acos": (np.arccos, 1), "atan": (np.arctan, 1), "round": (np.round, 1),
    "sign": (np.sign, 1), "atan2": (np.arctan2, 2), "pow": (np.power, 2), "fmod": (np.fmod, 2),
    "min": (np.minimum, 2), "max": (np.maximum, 2), "clip": (_clip, 3), "where": (np.where, 3),
}
_BINARY = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide,
           ast.Pow: np.power, ast.Mod: np.mod, ast.FloorDiv: np.floor_divide}
_COMPARE = {ast.Lt: np.less, ast.LtE: np.less_equal, ast.Gt: np.greater, ast.GtE: np.greater_equal,
            ast.Eq: np.equal, ast.NotEq: np.not_equal}
_NAMES = (*FRAME_VARIABLES, *AUDIO_VARIABLES, *CONSTANTS)
# a keyframe's position: a whole frame number, or seconds with an s; then the colon
_KEY = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(s?)\s*:")


class ScheduleError(SettingsError):
    """A schedule that cannot be read, names an unknown variable, or takes a value out of range."""


def _quoted(text: str) -> str:
    return "'" + text + "'"


@dataclass(frozen=True)
class Expression:
    """One value of a schedule: an expression checked against the whitelist when it is made."""

    text: str
    tree: ast.expr
    names: frozenset[str]

    def evaluate(self, env: Mapping[str, np.ndarray], size: int) -> np.ndarray:
        """(size,) float64: the expression with each variable taken from `env` ((size,) arrays)."""
        with np.errstate(all="ignore"):  # a division by zero gives inf or nan, which the range checks name
            value = _evaluate(self.tree, env)
        return np.broadcast_to(np.asarray(value, np.float64), (size,)).astype(np.float64)


def _evaluate(node: ast.AST, env: Mapping[str, np.ndarray]):
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return CONSTANTS[node.id] if node.id in CONSTANTS else env[node.id]
    if isinstance(node, ast.UnaryOp):
        value = _evaluate(node.operand, env)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_evaluate(node.left, env), _evaluate(node.right, env))
    if isinstance(node, ast.Compare):
        left, result = _evaluate(node.left, env), True
        for op, right_node in zip(node.ops, node.comparators):
            right = _evaluate(right_node, env)
            result = np.logical_and(result, _COMPARE[type(op)](left, right))
            left = right
        return np.asarray(result, np.float64)
    if isinstance(node, ast.IfExp):
        return np.where(np.asarray(_evaluate(node.test, env)) != 0, _evaluate(node.body, env),
                        _evaluate(node.orelse, env))
    if isinstance(node, ast.Call):
        function = FUNCTIONS[node.func.id][0]
        return function(*(_evaluate(arg, env) for arg in node.args))
    raise AssertionError(f"unchecked node {ast.dump(node)}")  # _check lets no other node through


def parse_expression(text: str, *, option: str, offset: int = 0, whole: str | None = None) -> Expression:
    """Check `text` (which starts at character `offset` of the option's value `whole`) and return it parsed."""
    whole = text if whole is None else whole
    stripped = text.strip()
    start = offset + len(text) - len(text.lstrip())

    def fail(at: int, message: str) -> ScheduleError:
        message, _, hint = message.partition("; ")
        where = f"{option}: {message} at character {start + at + 1} of {_quoted(whole)}"
        return ScheduleError(where + (f"; {hint}" if hint else ""))

    if not stripped:
        raise fail(0, "empty value")
    try:
        tree = ast.parse(stripped, mode="eval").body
    except SyntaxError as err:
        at = max(0, min((err.offset or 1) - 1, len(stripped)))
        raise fail(at, "cannot read the expression") from None
    names: set[str] = set()
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    for node in ast.walk(tree):
        problem = _check(node, names, called)
        if problem:
            raise fail(getattr(node, "col_offset", 0), problem)
    return Expression(stripped, tree, frozenset(names))


def _check(node: ast.AST, names: set[str], called: set[int]) -> str | None:
    """Why `node` is not allowed in a schedule's expression, or None; collects the variables named."""
    if isinstance(node, ast.Constant):
        ok = isinstance(node.value, (int, float)) and not isinstance(node.value, bool)
        return None if ok else f"{node.value!r} is not a number"
    if isinstance(node, ast.Name):
        if node.id not in _NAMES and node.id not in FUNCTIONS:
            return f"unknown name {_quoted(node.id)}; expressions can use {', '.join(_NAMES)} and {', '.join(FUNCTIONS)}()"
        if node.id in FUNCTIONS:
            return None if id(node) in called else f"{node.id} is a function: write {node.id}(...)"
        names.add(node.id)
        return None
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            return "not a function a schedule can call; the functions are " + ", ".join(FUNCTIONS)
        arity = FUNCTIONS[node.func.id][1]
        if node.keywords or len(node.args) != arity or any(isinstance(a, ast.Starred) for a in node.args):
            return f"{node.func.id}() takes {arity} value{'s' if arity > 1 else ''}"
        return None
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY:
            return "operator not allowed; use + - * / % // and ** for powers"
        return None
    if isinstance(node, ast.UnaryOp):
        return None if isinstance(node.op, (ast.USub, ast.UAdd)) else "operator not allowed (use + or - before a value)"
    if isinstance(node, ast.Compare):
        return None if all(type(op) in _COMPARE for op in node.ops) else "comparison not allowed (use < <= > >= == !=)"
    if isinstance(node, (ast.IfExp, ast.Load) + tuple(_BINARY) + tuple(_COMPARE) + (ast.USub, ast.UAdd)):
        return None
    return f"{type(node).__name__.lower()} not allowed; a schedule holds numbers, variables, arithmetic and functions"


@dataclass(frozen=True)
class Keyframe:
    at: float  # frame number, or seconds when `seconds`
    seconds: bool
    value: Expression

    def frame(self, fps: float) -> float:
        return self.at * fps if self.seconds else self.at


class Schedule:
    """A parsed schedule of one option: `values` gives its value at every frame of a render."""

    def __init__(self, text: str | float, *, option: str):
        self.option = option
        self.text = text if isinstance(text, str) else repr(float(text))
        self.keyframes: tuple[Keyframe, ...] = ()
        self.expression: Expression | None = None
        if _KEY.match(self.text):
            self.keyframes = _parse_keyframes(self.text, option=option)
        else:
            self.expression = parse_expression(self.text, option=option)

    @property
    def names(self) -> frozenset[str]:
        """The variables the schedule uses."""
        parts = [k.value for k in self.keyframes] or [self.expression]
        return frozenset().union(*(p.names for p in parts))

    @property
    def audio_names(self) -> list[str]:
        return [name for name in AUDIO_VARIABLES if name in self.names]

    @property
    def constant(self) -> float | None:
        """The one value of a schedule that does not change, or None."""
        if self.expression is not None and not self.names:
            return float(self.expression.evaluate({}, 1)[0])
        return None

    def values(self, *, frames: int, fps: float, audio: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """(frames,) float64: the value at each frame of a render of `frames` frames at `fps`.

        `audio` holds the music's (frames,) feature arrays; a schedule that uses one without it is refused.
        """
        missing = [name for name in self.audio_names if audio is None or name not in audio]
        if missing:
            raise ScheduleError(f"{self.option} uses {', '.join(missing)}, which follow{'s' if len(missing) == 1 else ''} "
                                f"the music: give --audio FILE (or a video with sound)")
        t = np.arange(frames, dtype=np.float64)
        env = _environment(t, frames=frames, fps=fps, audio=audio or {})
        if self.expression is not None:
            return self.expression.evaluate(env, frames)
        keys = sorted(self.keyframes, key=lambda k: k.frame(fps))
        for a, b in zip(keys[:-1], keys[1:]):
            if a.frame(fps) == b.frame(fps):
                raise ScheduleError(f"{self.option}: two keyframes at frame {a.frame(fps):g} in {_quoted(self.text)}; "
                                    f"give each time once")
        return _keyframe_values(tuple(keys), t, env, frames=frames, fps=fps, audio=audio or {})


def _environment(t: np.ndarray, *, frames: int, fps: float, audio: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each variable at the frame positions `t` (the music at the nearest frame of the render)."""
    env = {"t": t, "sec": t / fps}
    nearest = np.clip(np.rint(t), 0, max(frames - 1, 0)).astype(int)
    env.update({name: np.asarray(values, np.float64)[nearest] for name, values in audio.items()})
    return env


def _keyframe_values(keyframes: tuple[Keyframe, ...], t: np.ndarray, env: dict, *, frames: int, fps: float,
                     audio: Mapping[str, np.ndarray]) -> np.ndarray:
    """Deforum's rule: numbers are joined by straight lines; an expression holds from its keyframe to the next;
    before the first keyframe its value holds, and after the last a number holds."""
    positions = np.array([k.frame(fps) for k in keyframes])
    # each keyframe's value at its own position (a line toward an expression ends at the expression's value there)
    at_key = [float(k.value.evaluate(_environment(np.array([p]), frames=frames, fps=fps, audio=audio), 1)[0])
              for k, p in zip(keyframes, positions)]
    out = np.empty(frames, np.float64)
    index = np.searchsorted(positions, t, side="right") - 1  # the keyframe at or before each frame
    out[index < 0] = at_key[0]
    for k, key in enumerate(keyframes):
        mine = index == k
        if not mine.any():
            continue
        if key.value.names:
            out[mine] = key.value.evaluate(env, frames)[mine]
        elif k + 1 < len(keyframes):
            share = (t[mine] - positions[k]) / (positions[k + 1] - positions[k])
            with np.errstate(invalid="ignore"):  # toward a key that is not finite: nan, which the range checks name
                out[mine] = at_key[k] + share * (at_key[k + 1] - at_key[k])
        else:
            out[mine] = at_key[k]
    return out


def _parse_keyframes(text: str, *, option: str) -> tuple[Keyframe, ...]:
    """`0:(1.04), 48:(1.0), 2.5s:(1.06)` -> keyframes in time order (a bare value without brackets works too)."""

    def fail(at: int, message: str) -> ScheduleError:
        return ScheduleError(f"{option}: {message} at character {at + 1} of {_quoted(text)}; "
                             f"write keyframes as FRAME:(VALUE) or SECONDSs:(VALUE), e.g. 0:(1.04), 48:(1.0)")

    keys: list[Keyframe] = []
    pos = 0
    while True:
        match = _KEY.match(text, pos)
        if not match:
            raise fail(len(text) - len(text[pos:].lstrip()), "expected a keyframe")
        number, seconds = match[1], bool(match[2])
        if not seconds and float(number) != int(float(number)):
            raise fail(match.start(1), f"frame {number} is not a whole number (write {number}s for seconds)")
        pos = match.end()
        pos += len(text[pos:]) - len(text[pos:].lstrip())
        if text.startswith("(", pos):
            close = _closing(text, pos)
            if close is None:
                raise fail(pos, "unclosed '('")
            value = parse_expression(text[pos + 1:close], option=option, offset=pos + 1, whole=text)
            pos = close + 1
        else:
            end = _next_comma(text, pos)
            value = parse_expression(text[pos:end], option=option, offset=pos, whole=text)
            pos = end
        keys.append(Keyframe(float(number), seconds, value))
        pos += len(text[pos:]) - len(text[pos:].lstrip())
        if pos >= len(text):
            break
        if text[pos] != ",":
            raise fail(pos, "expected ',' between keyframes")
        pos += 1
        if not text[pos:].strip():
            break  # a trailing comma
    seen = set()
    for key in keys:  # the same time twice; frames and seconds are compared once the frame rate is known
        if (key.seconds, key.at) in seen:
            raise ScheduleError(f"{option}: two keyframes at {key.at:g}{'s' if key.seconds else ''} in {_quoted(text)}; "
                                f"give each time once")
        seen.add((key.seconds, key.at))
    return tuple(keys)


def _closing(text: str, start: int) -> int | None:
    depth = 0
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    return None


def _next_comma(text: str, start: int) -> int:
    depth = 0
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if text[i] == "," and depth == 0:
            return i
    return len(text)


# -- values of one option over a render -------------------------------------------------------------
def scheduled(value: float | str, *, option: str) -> float | str:
    """A setting's value as a settings object keeps it: a number when it is one, else the schedule's text, checked."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    schedule = Schedule(str(value), option=option)
    constant = schedule.constant
    return schedule.text.strip() if constant is None else constant


def frame_values(value: float | str, *, option: str, frames: int, fps: float,
                 audio: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """(frames,) float64 values of a setting that may be a schedule."""
    if isinstance(value, (int, float)):
        return np.full(frames, float(value))
    return Schedule(value, option=option).values(frames=frames, fps=fps, audio=audio)


def uses_audio(*values: float | str | None) -> bool:
    """Whether any of these settings is a schedule that follows the music."""
    return any(isinstance(v, str) and Schedule(v, option="").audio_names for v in values)


def check_range(values: np.ndarray, *, option: str, fps: float, ok: Callable[[np.ndarray], np.ndarray],
                need: str) -> None:
    """Raise ScheduleError naming the first frame (and its time) whose value is not finite or fails `ok`."""
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(values) & ok(values))
    if bad.any():
        frame = int(np.argmax(bad))
        value = values[frame]
        if np.all(values == value):  # a constant: no frame to name
            raise ScheduleError(f"{option} must be {need}, got {value:g}")
        shown = ("not a finite number (a division by zero, or the log or root of a negative?)" if not np.isfinite(value)
                 else f"{value:.6g}")
        raise ScheduleError(f"{option} is {shown} at frame {frame} ({frame / fps:.2f} s); it must be {need}")


# -- the dream over a render -------------------------------------------------------------------------
@dataclass(frozen=True)
class DreamSchedule:
    """How hard the dream works and on which layers, frame by frame: a strength schedule and a schedule for the
    weight of any term of the objective (`mixed3=0:(1), 96:(0); mixed5=0:(0), 96:(1)` morphs from one layer's
    look to the other's; `;` separates the terms, so the keyframes keep their commas)."""

    strength: float | str | None = None  # None: the dream settings' strength at every frame
    layer_weights: str | None = None  # 'LAYER=SCHEDULE; LAYER:CHANNEL=SCHEDULE ...'

    def __post_init__(self) -> None:
        if self.strength is not None:
            object.__setattr__(self, "strength", scheduled(self.strength, option="--strength"))
        if self.layer_weights is not None:
            text = "; ".join(f"{key}={value}" for key, value in self.weight_entries())
            object.__setattr__(self, "layer_weights", text or None)

    def weight_entries(self) -> list[tuple[str, str]]:
        """(term key, schedule text) of each entry of layer_weights, checked."""
        entries: list[tuple[str, str]] = []
        for part in filter(None, (p.strip() for p in (self.layer_weights or "").split(";"))):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or not key or not value.strip():
                raise ScheduleError(f"--layer-weights: cannot read {_quoted(part)}; write LAYER=SCHEDULE, several "
                                    f"separated by ';', e.g. 'mixed3=0:(1), 96:(0); mixed5=0:(0), 96:(1)'")
            if key in dict(entries):
                raise ScheduleError(f"--layer-weights names {key} twice; give each layer once")
            Schedule(value.strip(), option=f"--layer-weights {key}")
            entries.append((key, value.strip()))
        return entries

    @property
    def texts(self) -> list[float | str]:
        return [v for v in (self.strength, *(value for _, value in self.weight_entries())) if v is not None]

    def strengths(self, base: float, *, frames: int, fps: float,
                  audio: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """(frames,) the dream's strength at each frame (`base`, the dream settings', without a schedule)."""
        values = frame_values(base if self.strength is None else self.strength, option="--strength", frames=frames,
                              fps=fps, audio=audio)
        check_range(values, option="--strength", fps=fps, ok=lambda v: v > 0, need="a positive number")
        return values

    def check_weight_keys(self, terms: Sequence) -> list[tuple[str, str]]:
        """weight_entries, each naming a term of the objective `terms` (objective.Term) or refused."""
        entries, keys = self.weight_entries(), [term.key for term in terms]
        for key, _ in entries:
            if key not in keys:
                raise ScheduleError(f"--layer-weights names {key}, which is not in the objective ({', '.join(keys)}); "
                                    f"add it to --layers")
        return entries

    def weights(self, terms: Sequence, *, frames: int, fps: float,
                audio: Mapping[str, np.ndarray] | None = None) -> np.ndarray | None:
        """(frames, terms) weight of each term of the objective at each frame; None without layer_weights.
        `terms` are the objective's (objective.Term: key and weight)."""
        entries = self.check_weight_keys(terms)
        if not entries:
            return None
        keys = [term.key for term in terms]
        out = np.tile(np.array([term.weight for term in terms], np.float64), (frames, 1))
        for key, value in entries:
            option = f"--layer-weights {key}"
            out[:, keys.index(key)] = values = frame_values(value, option=option, frames=frames, fps=fps, audio=audio)
            check_range(values, option=option, fps=fps, ok=lambda v: v == v, need="a number")
        return out


@contextlib.contextmanager
def kept_weights(dreamer) -> Iterator[None]:
    """Put the dreamer's objective weights back as they were after a render that reweights it frame by frame (a
    batch worker dreams its next job with the same dreamer)."""
    original = dreamer.term_weights.numpy().copy()
    try:
        yield
    finally:
        dreamer.term_weights.assign(original)
