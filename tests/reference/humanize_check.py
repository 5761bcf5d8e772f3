#!/usr/bin/python3
"""Independent reader for kmidi humanize's tests: reads a MIDI file with mido
and prints its ticks per quarter, then one JSON line per note-on (velocity > 0)
in the order (channel, pitch, onset tick): channel, pitch, tick, velocity.

Usage: humanize_check.py FILE.mid
"""
import json
import sys

import mido


def main(path):
    mid = mido.MidiFile(path)
    print(json.dumps({"ticks_per_quarter": mid.ticks_per_beat}))
    notes = []
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                notes.append((msg.channel, msg.note, tick, msg.velocity))
    for channel, pitch, tick, velocity in sorted(notes):
        print(json.dumps({"channel": channel, "pitch": pitch, "tick": tick, "velocity": velocity}))


if __name__ == "__main__":
    main(sys.argv[1])
