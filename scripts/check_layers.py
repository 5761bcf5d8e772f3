#!/usr/bin/env python3
"""Checks that every #include between kmidi's source folders points one way.

LAYERS below is the one table of folders, their levels and their CMake
targets. A file of a folder may include a file of its own level or a lower
one; an include of a higher level fails, and so do includes that make a cycle
between folders of the same level. A file belongs to the most specific folder
of the table that holds it (train/tasks/X.cpp is train/tasks, not train).
tests/, scripts/ and cmake/ are not checked: tests see every level.

README.md's architecture block (from "## Architecture" to the line
"Dependencies point one way: ...") is printed by --readme from the same table,
with the CLI's subcommands read from the register_<name>() functions of
cli/*.cpp; --check-readme fails when README.md differs.

Usage: check_layers.py [--root DIR] [--readme | --check-readme]
Exit status: 0 when clean, 1 on a wrong-way include, a cycle, a folder
without a level or a README that differs. Standard library only.
"""

import argparse
import os
import re
import sys

# (level, folder, CMake target(s), what it holds). Lower levels know nothing
# of higher ones. A folder's description lines end up in README.md.
LAYERS = [
    (0, "core", "kmidi_core",
     ["config (typed YAML, file:line:key errors), files (atomic writes), logging, errors -> exit codes,",
      "CRC-32C, Slurm hostlists"]),
    (1, "onnx", "kmidi_onnx", ["torch-free ONNX graph builder, checker, metadata, checked writer"]),
    (1, "datasets", "kmidi_datasets, kmidi_<folder>",
     ["midi reader/writer, REMI tokenizer (tokenizer.json: the only source of token ids),",
      "HDF5 token shards, corpus prepare/validate, audio + mel, MIDI/emotion features,",
      "drum grids, Dataset implementations, fetch (data set catalogue, downloads)",
      "(knows nothing of training)"]),
    (1, "train/io", "kmidi_train_io", ["TensorBoard event files"]),
    (1, "train/runtime", "kmidi_train_runtime", ["process settings (threads, malloc), stop signals"]),
    (2, "onnx/torch", "kmidi_onnx_torch", ["LibTorch tensors -> the ONNX builder's tensors"]),
    (3, "models", "kmidi_models", ["LibTorch modules (generator, spectocloud, emotion, groove) + their ONNX emission"]),
    (3, "losses", "kmidi_losses", ["task-aware losses (classification/regression/point sets), chunked Chamfer"]),
    (3, "onnx/check", "kmidi_onnx_check",
     ["onnxruntime runner, parity, incremental-graph and tokenizer-metadata checks"]),
    (4, "train", "kmidi_train, kmidi_train_base, kmidi_launch",
     ["generic trainer: Task interface, AdamW, schedules, sampler, checkpoints, metrics,",
      "EMA, early stopping, data parallel (c10d Gloo/NCCL, gradient buckets)"]),
    (4, "train/detail", "kmidi_train", ["the trainer's private parts (process groups, collectives, watchdog)"]),
    (5, "train/tasks", "kmidi_tasks", ["one Task per model family, registered by name (`task:` in a job config)"]),
    (6, "export", "kmidi_exporter, kmidi_registry",
     ["export pipeline (`kmidi export`, nightly export), onnxruntime parity, registry.json"]),
    (6, "cli", "kmidi_cli, kmidi_cli_data, build/kmidi", ["build/kmidi:{commands}"]),
]

# Folders at the top of the tree that hold no product code, or code that may
# include anything.
UNCHECKED = {"tests", "scripts", "cmake", "build", "node_modules", "runs", "data", "docs", "configs", "cluster"}
SOURCE_SUFFIXES = (".h", ".cpp", ".cc", ".in")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
REGISTER = re.compile(r"^void register_(\w+)\(CLI::App&", re.MULTILINE)
README_END = "Dependencies point one way:"


def folder_of(path):
    """The most specific folder of LAYERS holding `path` (a /-separated path), or None."""
    best = None
    for _, folder, _, _ in LAYERS:
        if (path + "/").startswith(folder + "/") and (best is None or len(folder) > len(best)):
            best = folder
    return best


def level_of(folder):
    return next(level for level, name, _, _ in LAYERS if name == folder)


def source_files(root):
    """Every source file under `root` outside UNCHECKED, as /-separated relative paths."""
    found = []
    for top in sorted(os.listdir(root)):
        top_path = os.path.join(root, top)
        if top.startswith(".") or top in UNCHECKED or not os.path.isdir(top_path):
            continue
        if os.path.exists(os.path.join(top_path, "CMakeCache.txt")):
            continue  # a build folder
        for dirpath, dirnames, filenames in os.walk(top_path):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.endswith(SOURCE_SUFFIXES):
                    found.append(os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/"))
    return found


def read_includes(root, path):
    """(line number, included path) of each quoted include of a file of the tree."""
    result = []
    with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            match = INCLUDE.match(line)
            if match and os.path.isfile(os.path.join(root, match.group(1))):
                result.append((number, match.group(1)))
    return result


def find_cycles(edges):
    """Strongly connected components of more than one folder (Tarjan)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return components


def check(root):
    """The problems of the tree at `root`, one line each."""
    problems = []
    same_level = {}  # (from folder, to folder) -> first "file:line: include"
    for path in source_files(root):
        folder = folder_of(path)
        if folder is None:
            problems.append(f"{path}: its folder has no level in scripts/check_layers.py's LAYERS")
            continue
        for number, included in read_includes(root, path):
            target = folder_of(included)
            where = f'{path}:{number}: #include "{included}"'
            if target is None:
                problems.append(f"{where}: {included.split('/')[0]}/ has no level in scripts/check_layers.py's LAYERS")
            elif level_of(target) > level_of(folder):
                problems.append(f"{where}: {folder}/ (level {level_of(folder)}) includes {target}/ "
                                f"(level {level_of(target)}), a higher level")
            elif target != folder and level_of(target) == level_of(folder):
                same_level.setdefault((folder, target), where)
    edges = {}
    for source, target in same_level:
        edges.setdefault(source, set()).add(target)
    for component in find_cycles(edges):
        links = [same_level[pair] for pair in sorted(same_level) if pair[0] in component and pair[1] in component]
        problems.append("folders " + ", ".join(sorted(component)) + " include each other:\n  " + "\n  ".join(links))
    return problems


def cli_commands(root):
    """The CLI's subcommands, from the register_<name>() functions of cli/*.cpp."""
    names = set()
    cli = os.path.join(root, "cli")
    for name in sorted(os.listdir(cli)):
        if name.endswith(".cpp"):
            with open(os.path.join(cli, name), encoding="utf-8") as f:
                names.update(m.replace("_", "-") for m in REGISTER.findall(f.read()))
    return sorted(names)


def readme_block(root):
    """README.md's architecture block: the table, then the one-way line."""
    width = max(len(folder) for _, folder, _, _ in LAYERS) + 2
    lines = ["```"]
    for level, folder, targets, what in sorted(LAYERS, key=lambda row: row[0]):
        head = f"{folder + '/':<{width}}{level}  "
        indent = " " * len(head)
        body = []
        for text in what:
            if "{commands}" not in text:
                body.append(text)
                continue
            line = text.format(commands="")
            for command in cli_commands(root):  # wrapped at 110 columns
                if len(head) + len(line) + 1 + len(command) > 110:
                    body.append(line)
                    line = " " * len(text.format(commands=""))
                line += ("" if line.endswith(" ") else " ") + command
            body.append(line)
        body.append(f"[{targets}]")
        lines.extend((head if i == 0 else indent) + text for i, text in enumerate(body))
    lines.append("configs/   job and prepare configs;  cluster/  torchrun, Slurm, Kubernetes;  scripts/  setup, "
                 "benchmarks, check_layers.py")
    lines.append("```")
    lines.append("")
    levels = sorted({level for level, _, _, _ in LAYERS})
    groups = [", ".join(folder for lvl, folder, _, _ in LAYERS if lvl == level) for level in levels]
    lines.append(f"{README_END} {' <- '.join(groups)}.")
    lines.append("A folder includes only its own level (the number after it) and lower ones, without cycles "
                 "(scripts/check_layers.py, ctest -R layers).")
    return "\n".join(lines) + "\n"


def readme_section(text):
    """(start, end) of the architecture block in README.md's text, or None."""
    start = text.find("## Architecture\n\n```\n")
    if start < 0:
        return None
    start = text.index("```", start)
    end_line = text.find("\n" + README_END, start)
    if end_line < 0:
        return None
    end = text.find("\n", end_line + 1)
    end = text.find("\n", end + 1) + 1  # the one-way line takes two lines
    return start, end


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        help="the source tree to check (default: this script's checkout)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--readme", action="store_true", help="print README.md's architecture block")
    mode.add_argument("--check-readme", action="store_true", help="also fail when README.md's block differs")
    args = parser.parse_args()
    if args.readme:
        sys.stdout.write(readme_block(args.root))
        return 0
    problems = check(args.root)
    if args.check_readme:
        readme = os.path.join(args.root, "README.md")
        with open(readme, encoding="utf-8") as f:
            text = f.read()
        section = readme_section(text)
        expected = readme_block(args.root)
        if section is None:
            problems.append(f"{readme}: no architecture block (## Architecture, then ``` ... {README_END})")
        elif text[section[0]:section[1]] != expected:
            problems.append(f"{readme}: the architecture block differs from scripts/check_layers.py --readme:\n"
                            + expected)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"check_layers: {len(problems)} problem(s) in {args.root}", file=sys.stderr)
        return 1
    print(f"check_layers: every include of {args.root} points one way")
    return 0


if __name__ == "__main__":
    sys.exit(main())
