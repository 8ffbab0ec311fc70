#!/usr/bin/env python3
"""The layers of the tree (README, "Layout"), checked on every #include "layer/...":

  core <- convert <- uptrain <- compare <- cli      eval <- compare
                                                    (eval is a leaf over core)

A file may include its own layer and the layers below it; kernels/ only itself. Prints every
include that crosses a layer upward and exits 1 when there is one.

usage: check_includes.py SOURCE_DIR
"""
import os
import re
import sys

ALLOWED = {
    "core": {"core"},
    "kernels": {"kernels"},
    "convert": {"core", "convert"},
    "uptrain": {"core", "convert", "uptrain"},
    "eval": {"core", "eval"},
    "compare": {"core", "convert", "uptrain", "eval", "compare"},
    "cli": {"core", "convert", "uptrain", "eval", "compare", "cli", "kernels"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/')


def main(root):
    crossings = []
    for layer, allowed in ALLOWED.items():
        for dirpath, _, files in os.walk(os.path.join(root, layer)):
            for name in sorted(files):
                if not name.endswith((".h", ".cpp", ".cu", ".cuh")):
                    continue
                path = os.path.join(dirpath, name)
                with open(path, encoding="utf-8") as f:
                    for number, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if m and m.group(1) in ALLOWED and m.group(1) not in allowed:
                            crossings.append(f"{os.path.relpath(path, root)}:{number}: {layer}/ includes {m.group(1)}/")
    for c in crossings:
        print(c)
    print(f"layering: {len(crossings)} include(s) crossing a layer upward")
    return 1 if crossings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
