"""T5's span corruption: a random noise mask, the (inputs, targets) it makes of a token sequence with one
sentinel per noise span, its inverse, and the lengths it gives."""

from __future__ import annotations

from typing import Sequence

import numpy as np

NOISE_DENSITY = 0.15
MEAN_SPAN_LENGTH = 3.0


def random_spans_noise_mask(
    length: int,
    rng: np.random.Generator,
    noise_density: float = NOISE_DENSITY,
    mean_span_length: float = MEAN_SPAN_LENGTH,
) -> np.ndarray:
    """T5's `random_spans_noise_mask`: a boolean mask of `length` with round(length * density) noise tokens
    in about `noise / mean_span_length` spans; spans alternate non-noise, noise, ... (ending on noise)."""
    if length < 2:
        raise ValueError(f"span corruption needs at least 2 tokens, got {length}")
    num_noise = min(max(int(round(length * noise_density)), 1), length - 1)
    num_nonnoise = length - num_noise
    num_spans = max(int(round(min(num_noise, num_nonnoise) / mean_span_length)), 1)

    def segment(num_items: int, num_segments: int) -> np.ndarray:
        # `num_segments` positive lengths summing to `num_items`, uniformly at random.
        cuts = np.zeros(num_items - 1, dtype=bool)
        cuts[: num_segments - 1] = True
        rng.shuffle(cuts)
        starts = np.concatenate([[True], cuts])
        return np.bincount(np.cumsum(starts) - 1)

    lengths = np.stack([segment(num_nonnoise, num_spans), segment(num_noise, num_spans)], axis=1).reshape(-1)
    is_noise = np.repeat(np.tile([False, True], num_spans), lengths)
    return is_noise


def span_corrupt(
    tokens: Sequence[int],
    sentinels: Sequence[int],
    rng: np.random.Generator,
    noise_density: float = NOISE_DENSITY,
    mean_span_length: float = MEAN_SPAN_LENGTH,
) -> tuple[list[int], list[int]]:
    """(inputs, targets) for T5's span corruption of `tokens` (no `</s>` added; callers append it).

    Each noise span is replaced in `inputs` by the next sentinel (`sentinels[0]`, `sentinels[1]`, ...);
    `targets` is each sentinel followed by the tokens it replaced.
    """
    mask = random_spans_noise_mask(len(tokens), rng, noise_density, mean_span_length)
    inputs: list[int] = []
    targets: list[int] = []
    span = -1
    previous = False
    for token, noise in zip(tokens, mask):
        if noise:
            if not previous:
                span += 1
                if span >= len(sentinels):
                    raise ValueError(f"{span + 1} noise spans but only {len(sentinels)} sentinels")
                inputs.append(sentinels[span])
                targets.append(sentinels[span])
            targets.append(int(token))
        else:
            inputs.append(int(token))
        previous = bool(noise)
    return inputs, targets


def reconstruct(inputs: Sequence[int], targets: Sequence[int], sentinels: Sequence[int]) -> list[int]:
    """The original sequence from span-corrupted (inputs, targets): the inverse of `span_corrupt`."""
    sentinel_set = set(sentinels)
    spans: dict[int, list[int]] = {}
    current = None
    for token in targets:
        if token in sentinel_set:
            current = spans.setdefault(token, [])
        elif current is not None:
            current.append(token)
    out: list[int] = []
    for token in inputs:
        out.extend(spans.get(token, [])) if token in sentinel_set else out.append(token)
    return out


def corrupted_lengths(
    raw_length: int, noise_density: float = NOISE_DENSITY, mean_span_length: float = MEAN_SPAN_LENGTH
) -> tuple[int, int]:
    """(inputs, targets) lengths, each with `</s>`, of a span-corrupted chunk of `raw_length` tokens."""
    num_noise = min(max(int(round(raw_length * noise_density)), 1), raw_length - 1)
    num_spans = max(int(round(min(num_noise, raw_length - num_noise) / mean_span_length)), 1)
    return raw_length - num_noise + num_spans + 1, num_noise + num_spans + 1


def raw_length_for(
    max_inputs: int, noise_density: float = NOISE_DENSITY, mean_span_length: float = MEAN_SPAN_LENGTH
) -> int:
    """The longest chunk whose corrupted input (with `</s>`) has at most `max_inputs` tokens."""
    length = max_inputs
    while corrupted_lengths(length + 1, noise_density, mean_span_length)[0] <= max_inputs:
        length += 1
    return length
