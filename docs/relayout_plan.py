"""Planned re-layout (issue 20, item 3): move pcm's top-level modules into layer packages.

Run from the repository root: python docs/relayout_plan.py
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

MOVES = {
    "presets": "params.presets",
    "config": "params.config",
    "run_parameters": "params.run_parameters",
    "rundir": "run.rundir",
    "phase": "run.phase",
    "steps": "run.steps",
    "pipeline": "run.pipeline",
    "book": "book.pages",
    "launch": "book.launch",
    "exercises": "book.exercises",
    "sweep": "experiments.sweep",
    "experiments": "experiments.chapter",
    "dry_run": "run.dry_run",
    "real_data": "book.real_data",
}
EXTRA = {"worlds": "experiments.worlds"}  # helpers' new top-level modules, if present

PACKAGES = {
    "params": "Run parameters: the schema and presets, their resolution, one configuration "
              "per step.",
    "run": "A run: its directory and artefacts, training phases, the steps, the pipeline "
           "that executes the notebooks and its dry run.",
    "book": "The book: generated pages and tables, the real-data chapter, the launch "
            "buttons and Sphinx extension, student copies of the notebooks.",
    "experiments": "Beyond one run: parameter sweeps, the experiments chapter, many worlds.",
}


def main() -> None:
    root = Path.cwd()
    pcm = root / "pcm"
    moves = dict(MOVES)
    for old, new in EXTRA.items():
        if (pcm / f"{old}.py").exists():
            moves[old] = new
    # 1. move the files (a module named like its new package goes through a temporary name)
    for old in moves:
        src = pcm / f"{old}.py"
        if not src.exists():
            raise SystemExit(f"missing {src}")
    staged = {}
    for old in moves:
        tmp = pcm / f"_relayout_{old}.py"
        subprocess.run(["git", "mv", str(pcm / f"{old}.py"), str(tmp)], check=True)
        staged[old] = tmp
    for pkg, doc in PACKAGES.items():
        (pcm / pkg).mkdir(exist_ok=True)
        init = pcm / pkg / "__init__.py"
        if not init.exists():
            init.write_text(f'"""{doc}"""\n')
            subprocess.run(["git", "add", str(init)], check=True)
    for old, new in moves.items():
        dest = pcm / (new.replace(".", "/") + ".py")
        subprocess.run(["git", "mv", str(staged[old]), str(dest)], check=True)
        # one level deeper: paths relative to the module's file gain a parent
        text = dest.read_text()
        dest.write_text(text.replace("Path(__file__).resolve().parent",
                                     "Path(__file__).resolve().parent.parent"))

    # 2. rewrite references in every tracked text file
    names = "|".join(sorted(moves, key=len, reverse=True))
    dotted = re.compile(rf"\bpcm\.({names})\b")
    slashed = re.compile(rf"\bpcm/({names})\.py\b")
    files = subprocess.run(["git", "ls-files"], capture_output=True, text=True,
                           check=True).stdout.split()
    files += subprocess.run(["git", "ls-files", "--others", "--exclude-standard"],
                            capture_output=True, text=True, check=True).stdout.split()
    changed = []
    for name in files:
        path = root / name
        if not path.is_file() or path.suffix in {".nc", ".png", ".npz", ".keras"}:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        new_text = dotted.sub(lambda m: "pcm." + moves[m.group(1)], text)
        new_text = slashed.sub(lambda m: "pcm/" + moves[m.group(1)].replace(".", "/") + ".py",
                               new_text)
        # from pcm import X (X moved)
        def from_pcm(m: re.Match) -> str:
            items = [s.strip() for s in m.group(2).split(",")]
            keep, lines = [], []
            for item in items:
                base = item.split(" as ")[0].strip()
                if base in moves:
                    pkg, mod = moves[base].rsplit(".", 1)
                    alias = item.split(" as ")[1] if " as " in item else base
                    tail = f" as {alias}" if alias != mod else ""
                    lines.append(f"{m.group(1)}from pcm.{pkg} import {mod}{tail}")
                else:
                    keep.append(item)
            if keep:
                lines.insert(0, f"{m.group(1)}from pcm import {', '.join(keep)}")
            return "\n".join(lines)

        new_text = re.sub(r"^([ \t]*)from pcm import ([\w ,]+)$", from_pcm, new_text,
                          flags=re.M)
        if new_text != text:
            path.write_text(new_text)
            changed.append(name)
    print(f"moved {len(moves)} modules; rewrote {len(changed)} files")
    for name in changed:
        print("  ", name)


if __name__ == "__main__":
    main()
