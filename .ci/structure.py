#!/usr/bin/env python3
"""Structure check of one crate: file lengths and import cycles between files.

    python3 .ci/structure.py engine/src [--lines-max 600] [--fn-lines-max N]

Reads every `.rs` file under the crate's source directory and
- fails if a file has more than `--lines-max` lines (default 600);
- with `--fn-lines-max N`, fails if a function body spans more than N lines
  (brace-counted from its `fn` line; off by default);
- builds the graph of references between files: `use crate::a::…` and any
  `crate::a::…` path in code (comments and strings skipped), where `a` is
  the module file `a.rs` or `a/mod.rs`; a name the crate root re-exports
  (`crate::Name` with `pub use a::Name` in lib.rs) counts as a reference to
  `a`. The crate root (lib.rs/main.rs) only routes and is left out. Every
  cycle in that graph (strongly connected component of more than one file,
  or a file referencing itself through a child) is reported, and fails.

Prints the edges with `--edges`. Exit status 0: clean; 1: a violation.
"""

import argparse
import os
import re
import sys

ROOTS = ("lib.rs", "main.rs")


def module_of(src, path):
    """`a/b.rs` or `a/b/mod.rs` -> "a::b" (relative to src)."""
    rel = os.path.relpath(path, src)[: -len(".rs")]
    parts = rel.split(os.sep)
    if parts[-1] == "mod":
        parts = parts[:-1]
    return "::".join(parts)


def strip_comments_and_strings(text):
    """Blanks out comments, string and char literals (keeps line count)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:]):
            hashes = re.match(r"r(#*)\"", text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            end = n if end < 0 else end + 1 + len(hashes)
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(re.sub(r"[^\n]", " ", text[i : j + 1]))
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:]):
            m = re.match(r"'(\\.[^']*|[^\\'])'", text[i:])
            out.append(" " * len(m.group(0)))
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def root_reexports(src):
    """Names the crate root re-exports: name -> module."""
    names = {}
    for root in ROOTS:
        path = os.path.join(src, root)
        if not os.path.exists(path):
            continue
        code = strip_comments_and_strings(open(path, encoding="utf-8").read())
        for m in re.finditer(r"pub\s+use\s+(?:crate::|self::)?([\w:]+?)::(\{[^}]*\}|\w+)\s*;", code):
            module = m.group(1).split("::")[0]
            items = m.group(2).strip("{}")
            for item in items.split(","):
                item = item.strip().split(" as ")[-1].strip()
                if item:
                    names[item] = module
    return names


def references(code, modules, reexports, me):
    """Modules (files) this file's code refers to."""
    found = set()
    # `use crate::{a, b::c}` groups.
    for m in re.finditer(r"\bcrate::\{([^;]*)\}", code):
        for part in re.split(r"[,\s]+", m.group(1)):
            head = part.split("::")[0].strip("{} ")
            found.add(head)
    for m in re.finditer(r"\bcrate::((?:\w+::)*\w+)", code):
        found.add(m.group(1))
    out = set()
    for path in found:
        parts = path.split("::")
        # The longest prefix naming a module file.
        target = None
        for k in range(len(parts), 0, -1):
            cand = "::".join(parts[:k])
            if cand in modules:
                target = cand
                break
        if target is None and parts[0] in reexports:
            target = reexports[parts[0]]
        if target is not None and target != me:
            out.add(target)
    return out


def function_lengths(lines):
    """(name, first line, length) of every `fn` with a body."""
    out = []
    fn_re = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?fn\s+(\w+)")
    i = 0
    while i < len(lines):
        m = fn_re.match(lines[i])
        if not m:
            i += 1
            continue
        depth, started, j = 0, False, i
        while j < len(lines):
            for ch in lines[j]:
                if ch == "{":
                    depth, started = depth + 1, True
                elif ch == "}":
                    depth -= 1
                elif ch == ";" and not started and depth == 0:
                    break
            else:
                if started and depth == 0:
                    break
                j += 1
                continue
            break
        if started:
            out.append((m.group(1), i + 1, j - i + 1))
        i += 1
    return out


def cycles(graph):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, on, stack, comps = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return comps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", help="the crate's source directory, e.g. engine/src")
    ap.add_argument("--lines-max", type=int, default=600)
    ap.add_argument("--fn-lines-max", type=int, default=0, help="0: do not check")
    ap.add_argument("--edges", action="store_true", help="print the reference graph")
    args = ap.parse_args()

    files = {}
    for dirpath, _, names in os.walk(args.src):
        for name in names:
            if name.endswith(".rs"):
                path = os.path.join(dirpath, name)
                files[module_of(args.src, path)] = path
    if not files:
        print(f"no .rs files under {args.src}", file=sys.stderr)
        return 1
    modules = {m for m in files if m not in ("lib", "main")}
    reexports = root_reexports(args.src)

    bad = 0
    graph = {}
    for module, path in sorted(files.items()):
        text = open(path, encoding="utf-8").read()
        lines = text.count("\n") + (0 if text.endswith("\n") else 1)
        if lines > args.lines_max:
            print(f"{path}: {lines} lines (limit {args.lines_max})")
            bad += 1
        code = strip_comments_and_strings(text)
        if args.fn_lines_max:
            for name, line, length in function_lengths(code.split("\n")):
                if length > args.fn_lines_max:
                    print(f"{path}:{line}: fn {name} is {length} lines (limit {args.fn_lines_max})")
                    bad += 1
        if module in ("lib", "main"):
            continue
        graph[module] = references(code, modules, reexports, module)

    # A child module (a::b) is part of its parent's file tree: an edge from
    # a::b to a is a reference to the parent file, which is allowed only
    # one way, so it is kept like any other edge.
    if args.edges:
        for m in sorted(graph):
            print(f"{m} -> {', '.join(sorted(graph[m])) or '-'}")
    for comp in cycles(graph):
        print(f"import cycle among: {', '.join(files[m] for m in comp)}")
        bad += 1
    if bad:
        print(f"{args.src}: {bad} structure violation(s)")
        return 1
    print(f"{args.src}: {len(files)} files, no file over {args.lines_max} lines, no import cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
