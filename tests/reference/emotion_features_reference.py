#!/usr/bin/python3
"""Independent mido reference for part of kmidi's emotion feature vector
(datasets/features/EmotionFeatures.h): the entries that depend on the tempo
map, time signatures and note timing in seconds.

  emotion_features_reference.py FILE
prints {"index": value, ...} as JSON for indices 62, 64, 66-68, 76, 77, 81-84,
98-107 and 115. Notes and the tempo map come from midi_features_reference.py
(the reader's documented rules, written again with mido).
"""
import json
import math
import os
import sys

import mido

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from midi_features_reference import read_notes, seconds_at, tempo_map  # noqa: E402


def pstd(values):
    if len(values) < 2:
        return 0.0
    m = sum(values) / len(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / len(values))


def median(values):
    v = sorted(values)
    if not v:
        return 0.0
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else 0.5 * (v[mid - 1] + v[mid])


def clip01(x):
    return min(max(x, 0.0), 1.0)


def main(path):
    midi = mido.MidiFile(path)
    timed, tpq = tempo_map(midi)
    notes = [n for n in read_notes(midi, timed, tpq) if n["channel"] != 9]
    duration = midi.length
    f = {}
    f[62] = clip01(len(notes) / duration / 20.0)
    onsets = sorted({n["start"] for n in notes})
    f[64] = clip01(len(onsets) / duration / 10.0)
    ioi = [b - a for a, b in zip(onsets, onsets[1:])]
    f[66] = clip01(sum(ioi) / len(ioi)) if ioi else 0.0
    f[67] = clip01(pstd(ioi))
    f[68] = clip01(median(ioi))
    durations = [n["end"] - n["start"] for n in notes]
    f[76] = clip01(sum(durations) / len(durations) / 2.0)
    f[77] = clip01(pstd(durations) / 2.0)
    velocities = [n["velocity"] for n in notes]
    f[81] = sum(velocities) / len(velocities) / 127.0
    f[82] = clip01(pstd(velocities) / 64.0)
    f[83] = min(velocities) / 127.0
    f[84] = max(velocities) / 127.0

    bpms, weighted, total = [], 0.0, 0.0
    for i, (_, tempo, start) in enumerate(timed):
        end = timed[i + 1][2] if i + 1 < len(timed) else duration
        span = max(0.0, end - start)
        if span <= 0 and i + 1 < len(timed):
            continue
        bpm = 60e6 / tempo
        weighted += bpm * span
        total += span
        bpms.append(bpm)
    f[98] = clip01((weighted / total if total > 0 else bpms[0]) / 200.0)
    f[99] = clip01(pstd(bpms) / 50.0)
    f[100] = clip01(min(bpms) / 200.0)
    f[101] = clip01(max(bpms) / 200.0)
    f[102] = clip01((len(timed) - 1) / (duration / 60.0) / 10.0)

    signatures = []
    for track in midi.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "time_signature":
                signatures.append((tick, msg.numerator, msg.denominator))
    signatures.sort(key=lambda s: s[0])
    weights = {}
    if not signatures:
        weights[(4, 4)] = max(duration, 1.0)
    for i, (tick, num, den) in enumerate(signatures):
        start = seconds_at(tick, timed, tpq)
        end = seconds_at(signatures[i + 1][0], timed, tpq) if i + 1 < len(signatures) else duration
        weights[(num, den)] = weights.get((num, den), 0.0) + max(end - start, 1e-9)
    dominant = max(sorted(weights), key=lambda k: weights[k])
    slots = {(2, 4): 0, (3, 4): 1, (4, 4): 2, (6, 8): 3}
    for s in range(5):
        f[103 + s] = 1.0 if slots.get(dominant, 4) == s else 0.0
    f[115] = clip01(duration / 600.0)
    print(json.dumps({str(k): v for k, v in f.items()}))


if __name__ == "__main__":
    main(sys.argv[1])
