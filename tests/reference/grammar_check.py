#!/usr/bin/env python3
"""Applies the grammar in a tokenizer.json to token sequences, knowing nothing
of kmidi but that JSON (its "grammar" object and its "about" rules): the
independent peer of datasets/tokenizer/Grammar.cpp in the tests.

usage: grammar_check.py TOKENIZER_JSON SEQUENCES_JSONL
Each input line is a JSON list of token ids. Each output line is a JSON object:
  accepted:  every token was allowed where it stands
  complete:  accepted and the last state allows nothing more (the piece ended with EOS)
  rejected_at: index of the first token not allowed (-1 when accepted)
  allowed_counts: for each position, how many ids the grammar allowed there
                  (up to the rejected token), to compare masks with kmidi's
"""
import json
import sys


class Grammar:
    def __init__(self, tokenizer):
        g = tokenizer["grammar"]
        assert g["format"] == "kmidi.grammar" and g["version"] == 1, g["format"]
        self.vocab_size = tokenizer["vocab_size"]
        self.states = {s["name"]: s["allow"] for s in g["states"]}
        self.start = g["start"]
        bar = g["bar_steps"]
        self.initial_bar_steps = bar["initial"]
        self.ts_first = bar["time_signature_ids"][0] if "time_signature_ids" in bar else 0
        self.ts_steps = bar.get("steps", [])

    def open_range(self, rule, last_position, bar_steps):
        first, last = rule["ids"]
        if rule.get("effect") == "position":
            return first + last_position + 1, min(last, first + bar_steps - 1)
        return first, last

    def check(self, ids):
        state, last_position, bar_steps = self.start, -1, self.initial_bar_steps
        counts = []
        for i, token in enumerate(ids):
            rules = self.states[state]
            counts.append(sum(max(0, hi - lo + 1) for lo, hi in
                              (self.open_range(r, last_position, bar_steps) for r in rules)))
            taken = None
            for rule in rules:
                lo, hi = self.open_range(rule, last_position, bar_steps)
                if lo <= token <= hi:
                    taken = rule
                    break
            if taken is None:
                return {"accepted": False, "complete": False, "rejected_at": i, "allowed_counts": counts}
            effect = taken.get("effect")
            if effect == "bar":
                last_position = -1
            elif effect == "time_signature":
                bar_steps = self.ts_steps[token - self.ts_first]
            elif effect == "position":
                last_position = token - taken["ids"][0]
            state = taken["next"]
        return {"accepted": True, "complete": not self.states[state], "rejected_at": -1, "allowed_counts": counts}


def main():
    with open(sys.argv[1]) as f:
        grammar = Grammar(json.load(f))
    with open(sys.argv[2]) as f:
        for line in f:
            if line.strip():
                print(json.dumps(grammar.check(json.loads(line))))


if __name__ == "__main__":
    main()
