"""Module line counts and function sizes (lines, parameters) over xai_fer/ and plugins/, for a renovation's
closing note: ``python scripts/code_sizes.py OUT.json`` writes them all and prints what exceeds the house
limits (modules over 400 lines, functions over 60 lines or 8 parameters)."""

import ast
import json
import pathlib
import sys


def sizes(roots=("xai_fer", "plugins")) -> dict:
    found = {"modules": {}, "functions": {}}
    for root in roots:
        for path in sorted(pathlib.Path(root).rglob("*.py")):
            source = path.read_text()
            found["modules"][str(path)] = len(source.splitlines())
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    args = node.args
                    count = len(args.posonlyargs) + len(args.args) + len(args.kwonlyargs)
                    found["functions"][f"{path}:{node.name}:{node.lineno}"] = (node.end_lineno - node.lineno + 1,
                                                                               count)
    return found


def main() -> None:
    found = sizes()
    pathlib.Path(sys.argv[1]).write_text(json.dumps(found, indent=0))
    modules, functions = found["modules"], found["functions"]
    print("modules", len(modules), "lines", sum(modules.values()),
          "over 400:", {name: lines for name, lines in modules.items() if lines > 400})
    print("functions", len(functions), "over 60 lines:",
          sorted(((size[0], name) for name, size in functions.items() if size[0] > 60), reverse=True))
    print("over 8 parameters:", sorted(((size[1], name) for name, size in functions.items() if size[1] > 8),
                                       reverse=True))


if __name__ == "__main__":
    main()
