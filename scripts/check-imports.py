#!/usr/bin/env python3
"""Fails if modules of a crate import each other in a loop (docs/ARCHITECTURE.md:
dependencies between modules point one way). Reads every `crate::a::b` and `super::x`
path outside comments and unit-test modules; a module's own children and parents do not
count. Prints each loop with its edges."""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CRATES = ["dataplane", "ha-sync", "control", "bench"]


def modules(src):
    mods = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)[:-3]
            if rel.startswith("bin/") or rel in ("lib", "main"):
                continue
            parts = rel.split("/")
            if parts[-1] == "mod":
                parts = parts[:-1]
            text = open(os.path.join(dirpath, f), encoding="utf-8").read()
            text = re.sub(r"//[^\n]*", "", text)
            text = re.split(r"#\[cfg\(test\)\]\s*mod tests", text)[0]
            mods["::".join(parts)] = text
    return mods


def edges_of(mods):
    names = sorted(mods, key=len, reverse=True)
    edges = {m: set() for m in mods}
    for m, text in mods.items():
        parent = m.split("::")[:-1]
        paths = re.findall(r"crate::([a-z_0-9:]+)", text)
        paths += ["::".join(parent + [p]) for p in re.findall(r"\bsuper::([a-z_0-9]+)", text)]
        for path in paths:
            for n in names:
                if path == n or path.startswith(n + "::"):
                    related = m.startswith(n + "::") or n.startswith(m + "::")
                    if n != m and not related:
                        edges[m].add(n)
                    break
    return edges


def loops(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    found = 0
    for crate in CRATES:
        edges = edges_of(modules(os.path.join(ROOT, crate, "src")))
        for component in loops(edges):
            found += 1
            print(f"{crate}: import loop among {', '.join(component)}")
            for m in component:
                print(f"    {m} -> {', '.join(sorted(e for e in edges[m] if e in component))}")
    if found:
        sys.exit(1)
    print("imports: no loop between modules")


if __name__ == "__main__":
    sys.setrecursionlimit(10000)
    main()
