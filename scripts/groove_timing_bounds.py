#!/usr/bin/python3
"""How much of the Groove MIDI Dataset's timing error a pattern can explain.

A reference analysis (not part of kmidi's product path) behind the groove
task's quality record in BENCHMARKS.md. Reads every 4/4 performance of
info.csv with mido, snaps each mapped drum onset to the nearest 16th note
(the loudest hit of a class per step wins, as kmidi's DrumGrid does), and
reports the test split's timing MAE in ms for:
  - the zero-offset baseline (the quantized part itself),
  - lookup predictors fitted on the train split: the median offset per drum
    class, per (class, step in bar), and per (class, step in beat, classes
    struck on the same, previous and next step),
  - an oracle that knows each test performance's own median offset (not
    available to a humanizer, which sees only the quantized pattern).
Also the velocity baseline (train mean per class) and a per (class, step in
bar) median velocity.

Usage: scripts/groove_timing_bounds.py [path/to/groove-midi/groove]
"""
import collections
import csv
import os
import sys

import mido
import numpy as np

CLASSES = [
    {35, 36},
    {27, 28, 31, 32, 33, 34, 37, 38, 39, 40, 56, 65, 66, 75, 85},
    {22, 42, 44, 54, 68, 69, 70, 71, 73, 78, 80},
    {26, 46, 67, 72, 74, 79, 81},
    {29, 41, 43, 45, 61, 64, 84},
    {47, 48, 60, 63, 77, 86, 87},
    {30, 50, 62, 76, 83},
    {49, 52, 55, 57, 58},
    {51, 53, 59, 82},
]
CLASS_OF = {p: c for c, pitches in enumerate(CLASSES) for p in pitches}
SPLITS = {"train": 0, "validation": 1, "test": 2}


def read_hits(root):
    rows = [r for r in csv.DictReader(open(os.path.join(root, "info.csv"))) if r["time_signature"] == "4-4"]
    out = []  # split, file, step, class, offset (steps), velocity, ms per step
    for index, row in enumerate(rows):
        mid = mido.MidiFile(os.path.join(root, row["midi_filename"]))
        tpq = mid.ticks_per_beat
        tick, tempo, best = 0, None, {}
        for msg in mido.merge_tracks(mid.tracks):
            tick += msg.time
            if msg.type == "set_tempo" and tempo is None:
                tempo = msg.tempo
            if msg.type != "note_on" or msg.velocity == 0 or msg.channel != 9 or msg.note not in CLASS_OF:
                continue
            position = tick * 4.0 / tpq
            step = int(np.floor(position + 0.5))
            key = (step, CLASS_OF[msg.note])
            if key not in best or msg.velocity > best[key][1]:
                best[key] = (position - step, msg.velocity)
        step_ms = (tempo or 500000) / 1000.0 / 4.0  # the GMD files keep one tempo
        for (step, cls), (offset, velocity) in best.items():
            out.append((SPLITS[row["split"]], index, step, cls, offset, velocity, step_ms))
    return np.array(out, dtype=np.float64)


def main(root):
    a = read_hits(root)
    split, file, step, cls, offset, velocity, step_ms = (a[:, i] for i in range(7))
    step, cls, file = step.astype(int), cls.astype(int), file.astype(int)
    train, test = split == 0, split == 2
    struck = collections.defaultdict(int)
    for f, s, c in zip(file, step, cls):
        struck[(f, s)] |= 1 << c

    def timing_mae(predicted):
        return float(np.abs((offset[test] - predicted) * step_ms[test]).mean())

    def lookup(keys):
        groups = collections.defaultdict(list)
        for k, o in zip(keys[train], offset[train]):
            groups[k].append(o)
        medians = {k: np.median(v) for k, v in groups.items() if len(v) >= 5}
        fallback = np.median(offset[train])
        return timing_mae(np.array([medians.get(k, fallback) for k in keys[test]]))

    print(f"test hits {int(test.sum())}, train hits {int(train.sum())}")
    print(f"zero offset (baseline)                 {timing_mae(np.zeros(int(test.sum()))):.3f} ms")
    print(f"median per class                       {lookup(np.array([str(c) for c in cls])):.3f} ms")
    print(f"median per class, step in bar          {lookup(np.array([f'{c},{s % 16}' for c, s in zip(cls, step)])):.3f} ms")
    context = np.array([f"{c},{s % 4},{struck[(f, s)]},{struck.get((f, s - 1), 0)},{struck.get((f, s + 1), 0)}"
                        for f, s, c in zip(file, step, cls)])
    print(f"median per class and pattern context   {lookup(context):.3f} ms")
    per_file = {f: np.median(offset[test & (file == f)]) for f in np.unique(file[test])}
    print(f"oracle: each performance's own median  {timing_mae(np.array([per_file[f] for f in file[test]])):.3f} ms")
    means = np.array([velocity[train & (cls == c)].mean() for c in range(9)])
    print(f"velocity: train mean per class (baseline) {np.abs(velocity[test] - means[cls[test]]).mean():.3f}")
    groups = collections.defaultdict(list)
    for c, s, v in zip(cls[train], step[train], velocity[train]):
        groups[(c, s % 16)].append(v)
    med = {k: np.median(v) for k, v in groups.items()}
    predicted = np.array([med.get((c, s % 16), means[c]) for c, s in zip(cls[test], step[test])])
    print(f"velocity: median per class, step in bar  {np.abs(velocity[test] - predicted).mean():.3f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../shared/data/groove-midi/groove"))
