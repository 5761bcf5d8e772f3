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
  - the same lookups keyed by the performance's drummer too (info.csv's
    `drummer`, which kmidi's humanizer takes as its player input),
  - an oracle that knows each test performance's own median offset (not
    available to a humanizer, which sees only the quantized pattern).
Also the velocity baseline (train mean per class) and per (class, step in
bar) median velocities, with and without the drummer.

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
    out = []  # split, file, step, class, offset (steps), velocity, ms per step, drummer number
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
            out.append((SPLITS[row["split"]], index, step, cls, offset, velocity, step_ms,
                        int(row["drummer"][len("drummer"):])))
    return np.array(out, dtype=np.float64)


def main(root):
    a = read_hits(root)
    split, file, step, cls, offset, velocity, step_ms, drummer = (a[:, i] for i in range(8))
    step, cls, file, drummer = step.astype(int), cls.astype(int), file.astype(int), drummer.astype(int)
    train, test = split == 0, split == 2
    struck = collections.defaultdict(int)
    for f, s, c in zip(file, step, cls):
        struck[(f, s)] |= 1 << c

    def timing_mae(predicted):
        return float(np.abs((offset[test] - predicted) * step_ms[test]).mean())

    def lookup(keys, values=offset, fallback_keys=None):
        """Median of `values` per key on the train split, for each test hit;
        keys with fewer than 5 train hits fall back to fallback_keys' median."""
        def medians(ks):
            groups = collections.defaultdict(list)
            for k, v in zip(ks[train], values[train]):
                groups[k].append(v)
            return {k: np.median(v) for k, v in groups.items() if len(v) >= 5}
        table = medians(keys)
        backup = medians(fallback_keys) if fallback_keys is not None else {}
        overall = np.median(values[train])
        fb = fallback_keys[test] if fallback_keys is not None else keys[test]
        return np.array([table.get(k, backup.get(f, overall)) for k, f in zip(keys[test], fb)])

    def keyed(*columns):
        return np.array([",".join(map(str, t)) for t in zip(*columns)])

    print(f"test hits {int(test.sum())}, train hits {int(train.sum())}")
    print(f"zero offset (baseline)                 {timing_mae(np.zeros(int(test.sum()))):.3f} ms")
    context = np.array([f"{struck[(f, s)]},{struck.get((f, s - 1), 0)},{struck.get((f, s + 1), 0)}"
                        for f, s in zip(file, step)])
    print(f"median per class                       {timing_mae(lookup(keyed(cls))):.3f} ms")
    print(f"median per class, step in bar          {timing_mae(lookup(keyed(cls, step % 16))):.3f} ms")
    print(f"median per class and pattern context   {timing_mae(lookup(keyed(cls, step % 4, context))):.3f} ms")
    print(f"median per drummer and class           {timing_mae(lookup(keyed(drummer, cls), fallback_keys=keyed(cls))):.3f} ms")
    print(f"median per drummer, class and context  "
          f"{timing_mae(lookup(keyed(drummer, cls, step % 4, context), fallback_keys=keyed(drummer, cls))):.3f} ms")
    per_file = {f: np.median(offset[test & (file == f)]) for f in np.unique(file[test])}
    print(f"oracle: each performance's own median  {timing_mae(np.array([per_file[f] for f in file[test]])):.3f} ms")
    means = np.array([velocity[train & (cls == c)].mean() for c in range(9)])
    print(f"velocity: train mean per class (baseline) {np.abs(velocity[test] - means[cls[test]]).mean():.3f}")
    def velocity_mae(predicted):
        return np.abs(velocity[test] - predicted).mean()
    print(f"velocity: median per class, step in bar  "
          f"{velocity_mae(lookup(keyed(cls, step % 16), velocity, keyed(cls))):.3f}")
    print(f"velocity: median per drummer, class, step in bar  "
          f"{velocity_mae(lookup(keyed(drummer, cls, step % 16), velocity, keyed(cls, step % 16))):.3f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../shared/data/groove-midi/groove"))
