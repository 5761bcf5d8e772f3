#!/usr/bin/env python3
"""scripts/check_layers.py fails on a wrong-way include, a folder cycle, a
folder without a level and a README that disagrees, naming the file and line;
and the real tree passes. Each case runs the script on a copy of the source
folders with one change. Standard library only (run by ctest -R layers)."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

SOURCE_DIR = os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 1 else \
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(SOURCE_DIR, "scripts", "check_layers.py")
sys.path.insert(0, os.path.dirname(SCRIPT))
import check_layers  # noqa: E402


def run(root, *options):
    done = subprocess.run([sys.executable, SCRIPT, "--root", root, *options], capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr


class CheckLayersTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="kmidi-layers-")
        for path in check_layers.source_files(SOURCE_DIR):
            os.makedirs(os.path.join(self.root, os.path.dirname(path)), exist_ok=True)
            shutil.copyfile(os.path.join(SOURCE_DIR, path), os.path.join(self.root, path))
        shutil.copyfile(os.path.join(SOURCE_DIR, "README.md"), os.path.join(self.root, "README.md"))

    def tearDown(self):
        if any(error for _, error in self._outcome.result.errors + self._outcome.result.failures):
            print(f"kept {self.root}", file=sys.stderr)
        else:
            shutil.rmtree(self.root)

    def insert_after_first_include(self, path, line):
        """Adds `line` after the first #include of `path`; returns its line number."""
        with open(os.path.join(self.root, path)) as f:
            lines = f.readlines()
        at = next(i for i, text in enumerate(lines) if text.startswith("#include")) + 1
        lines.insert(at, line + "\n")
        with open(os.path.join(self.root, path), "w") as f:
            f.writelines(lines)
        return at + 1

    def test_the_tree_and_its_readme_pass(self):
        code, output = run(SOURCE_DIR, "--check-readme")
        self.assertEqual(code, 0, output)
        code, output = run(self.root, "--check-readme")
        self.assertEqual(code, 0, output)

    def test_an_include_of_a_higher_level_fails_naming_file_and_line(self):
        line = self.insert_after_first_include("core/Files.cpp", '#include "train/Trainer.h"')
        code, output = run(self.root)
        self.assertEqual(code, 1, output)
        self.assertIn(f'core/Files.cpp:{line}: #include "train/Trainer.h": core/ (level 0) includes train/ (level 4)',
                      output)
        self.assertEqual(output.count(": #include "), 1, output)

    def test_the_most_specific_folder_decides(self):
        # train/ is below train/tasks/: the trainer may not name a family.
        line = self.insert_after_first_include("train/Trainer.cpp", '#include "train/tasks/GrooveTask.h"')
        code, output = run(self.root)
        self.assertEqual(code, 1, output)
        self.assertIn(f'train/Trainer.cpp:{line}: #include "train/tasks/GrooveTask.h": train/ (level 4) '
                      f'includes train/tasks/ (level 5)', output)

    def test_a_cycle_between_folders_of_one_level_fails(self):
        line = self.insert_after_first_include("train/Distributed.cpp", '#include "train/detail/ProcessGroupContext.h"')
        code, output = run(self.root)
        self.assertEqual(code, 1, output)
        self.assertIn("folders train, train/detail include each other", output)
        self.assertIn(f'train/Distributed.cpp:{line}: #include "train/detail/ProcessGroupContext.h"', output)

    def test_a_folder_without_a_level_fails(self):
        os.makedirs(os.path.join(self.root, "plugins"))
        with open(os.path.join(self.root, "plugins", "Plugin.cpp"), "w") as f:
            f.write('#include "core/Errors.h"\n')
        code, output = run(self.root)
        self.assertEqual(code, 1, output)
        self.assertIn("plugins/Plugin.cpp: its folder has no level", output)

    def test_a_readme_without_a_subcommand_fails(self):
        readme = os.path.join(self.root, "README.md")
        with open(readme) as f:
            text = f.read()
        start, end = check_layers.readme_section(text)
        self.assertIn(" humanize ", text[start:end])
        with open(readme, "w") as f:
            f.write(text[:start] + text[start:end].replace(" humanize ", " ") + text[end:])
        self.assertEqual(run(self.root)[0], 0)
        code, output = run(self.root, "--check-readme")
        self.assertEqual(code, 1, output)
        self.assertIn("architecture block differs", output)

    def test_a_new_subcommand_reaches_the_readme_block(self):
        with open(os.path.join(self.root, "cli", "PlotCommand.cpp"), "w") as f:
            f.write("void register_plot_curves(CLI::App& app) {}\n")
        self.assertIn(" plot-curves", check_layers.readme_block(self.root))
        self.assertEqual(run(self.root, "--check-readme")[0], 1)


if __name__ == "__main__":
    unittest.main()
