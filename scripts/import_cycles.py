#!/usr/bin/env python3
"""List Rust modules that import each other (issue #16: "no module imports another that
imports it back").

Usage: scripts/import_cycles.py [-v] [--no-root] <src dir> [<src dir> ...]   (default: core/src)

The module tree is built the way rustc builds it: from the crate roots of the directory
(lib.rs, main.rs, bin/*.rs; in a directory with neither lib.rs nor main.rs, such as tests/,
every top-level .rs file) through the `mod x;` declarations (with `#[path = ".."]`) and inline
`mod x { .. }` blocks. Test-only code (`#[cfg(test)]` items, incl. `mod tests;` files) is left
out. Comments and string literals are ignored.

An edge A -> B is any path in A's code that names module B or an item of B:
  - every leaf of every `use` tree, `pub use` re-exports included: `use a::b`, `use a::{b, c}`,
    `use crate::{x::{Y, Z}, w}`, `use super::super::x`, `use self::x as y`, `pub(crate) use ..`;
  - paths written inline in code: `crate::x::f()`, `super::T`, `self::x::T`, `child::f()`,
    and paths through a module name brought in by a `use` (`use super::db; db::f()`),
    so writing a path out in full does not hide an import.
A path resolves to the deepest module it names; an item re-exported by a parent counts as the
parent's (children should import siblings, not the parent's re-exports). The crate root is a
module like any other: a child that takes `crate::X` (defined or re-exported by lib.rs/main.rs)
while the root imports that child is a pair. --no-root ignores edges to the crate root (the
first checker's reading).

Exit status 1 when anything is found. Output: one line `a <-> b` per pair of modules that import each other, then one line
`cycle: a -> b -> c -> a` per longer cycle not made of such pairs. Nothing printed: acyclic.
With -v, each edge of a reported pair is followed by the lines that make it.
"""
import os
import re
import sys
from collections import defaultdict, deque

IDENT = r'[A-Za-z_][A-Za-z0-9_]*'


def strip(src):
    """Blanks out comments, string and char literals (keeping newlines and offsets)."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith('//', i):
            j = src.find('\n', i)
            j = n if j < 0 else j
            out.append(' ' * (j - i))
            i = j
        elif src.startswith('/*', i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith('/*', j):
                    depth, j = depth + 1, j + 2
                elif src.startswith('*/', j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r'[^\n]', ' ', src[i:j]))
            i = j
        elif (m := re.match(r'b?r(#*)"', src[i:i + 300])) and (i == 0 or not re.match(r'\w', src[i - 1])):
            end = '"' + m.group(1)
            j = src.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r'[^\n]', ' ', src[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == '\\' else 1
            j += 1
            out.append(re.sub(r'[^\n]', ' ', src[i:j]))
            i = j
        elif c == "'":
            # A char literal ('a', '\n', '\u{..}'), else a lifetime or label.
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\x[0-9a-fA-F]{2}|\\.|[^\\'])'", src[i:i + 12])
            if m:
                out.append(' ' * m.end())
                i += m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return ''.join(out)


def skip_item(src, i):
    """The offset just past the item starting at `i` (ends at `;` or its matching `}`)."""
    depth = 0
    n = len(src)
    while i < n:
        c = src[i]
        if c in '([':
            depth += 1
        elif c in ')]':
            depth -= 1
        elif c == ';' and depth == 0:
            return i + 1
        elif c == '{' and depth == 0:
            return match_brace(src, i) + 1
        i += 1
    return n


def match_close(src, i, open_, close):
    """The offset of the bracket `close` matching the `open_` at `i` (the last offset if none)."""
    depth = 0
    for j in range(i, len(src)):
        if src[j] == open_:
            depth += 1
        elif src[j] == close:
            depth -= 1
            if depth == 0:
                return j
    return len(src) - 1


def match_brace(src, i):
    """The offset of the `}` matching the `{` at `i`."""
    return match_close(src, i, '{', '}')


def drop_tests(src):
    """Blanks out `#[cfg(test)]` items; returns (text, names of test-only `mod x;` files)."""
    test_mods = set()
    if re.search(r'#!\[cfg\(test\)\]', src):
        return '', test_mods
    while True:
        m = re.search(r'#\[cfg\(test\)\]', src)
        if not m:
            return src, test_mods
        start = m.start()
        i = m.end()
        # Further attributes on the same item.
        while (a := re.match(r'\s*#\[', src[i:])):
            i = skip_attr(src, i + a.end() - 2)
        end = skip_item(src, i)
        mm = re.match(r'\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(' + IDENT + r')\s*;', src[i:end])
        if mm:
            test_mods.add(mm.group(1))
        src = src[:start] + re.sub(r'[^\n]', ' ', src[start:end]) + src[end:]


def skip_attr(src, i):
    """The offset just past the attribute `#[..]` starting at `i`."""
    return match_close(src, i, '[', ']') + 1


class Module:
    """One module: its path from the crate root, its file, its own code (inline children blanked)."""

    def __init__(self, crate, path, file, code, line0):
        self.crate, self.path, self.file, self.code = crate, path, file, code
        # Lines before the module's code in its file (inline `mod x { .. }` blocks).
        self.line0 = line0
        self.children = {}

    def name(self):
        return '::'.join(self.path) or '(root)'


def load(crate, path, file, text, child_dir, modules, line0=0):
    """Parses `text` (the code of module `path`) and its children, recursively."""
    code, test_mods = drop_tests(strip(text))
    mod = Module(crate, path, os.path.normpath(file), None, line0)
    modules[(crate, path)] = mod
    decl = re.compile(r'((?:#\[[^\]]*\]\s*)*)(?:pub(?:\([^)]*\))?\s+)?mod\s+(' + IDENT + r')\s*([;{])')
    own = []
    pos = 0
    for m in decl.finditer(code):
        if m.start() < pos:
            continue
        name = m.group(2)
        # `#[path = ".."]` was blanked with the strings: read it from the original text.
        pm = re.search(r'#\[path\s*=\s*"([^"]*)"\]', text[m.start():m.start(2)])
        if m.group(3) == '{':
            close = match_brace(code, m.end() - 1)
            # Blanked, not cut, so that line numbers stay those of the file.
            own.append(code[pos:m.start()])
            own.append(re.sub(r'[^\n]', ' ', code[m.start():close + 1]))
            inner_dir = os.path.join(child_dir, name)
            load(crate, path + (name,), file, text[m.end():close], inner_dir, modules,
                 line0 + text.count('\n', 0, m.end()))
            # The inline module's code was cut from `text` at the same offsets as from `code`.
            mod.children[name] = path + (name,)
            pos = close + 1
            continue
        if name in test_mods:
            continue
        if pm:
            f = os.path.normpath(os.path.join(child_dir, pm.group(1)))
        elif os.path.exists(os.path.join(child_dir, name + '.rs')):
            f = os.path.join(child_dir, name + '.rs')
        else:
            f = os.path.join(child_dir, name, 'mod.rs')
        if not os.path.exists(f):
            continue
        base = os.path.basename(f)
        sub = os.path.dirname(f) if base == 'mod.rs' else os.path.join(os.path.dirname(f), base[:-3])
        load(crate, path + (name,), f, open(f).read(), sub, modules)
        mod.children[name] = path + (name,)
    own.append(code[pos:])
    mod.code = ''.join(own)
    return mod


def crate_roots(d):
    """The crate root files of directory `d`."""
    roots = [os.path.join(d, f) for f in ('lib.rs', 'main.rs') if os.path.exists(os.path.join(d, f))]
    if not roots:
        roots = sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith('.rs'))
        roots += sorted(os.path.join(d, f, 'main.rs') for f in os.listdir(d)
                        if os.path.exists(os.path.join(d, f, 'main.rs')))
    b = os.path.join(d, 'bin')
    if os.path.isdir(b):
        roots += sorted(os.path.join(b, f) for f in os.listdir(b) if f.endswith('.rs'))
    return roots


def use_leaves(tree):
    """Expands a `use` tree (`a::{b, c::{d as e, *}}`) into (path, alias) leaves."""
    tree = re.sub(r'\s+', '', tree)
    out = []

    def walk(prefix, s):
        # Split `s` at top-level commas.
        parts, depth, cur = [], 0, ''
        for c in s:
            if c == ',' and depth == 0:
                parts.append(cur)
                cur = ''
                continue
            depth += c == '{'
            depth -= c == '}'
            cur += c
        parts.append(cur)
        for p in parts:
            if not p:
                continue
            if '{' in p:
                head, rest = p.split('{', 1)
                walk(prefix + [x for x in head.split('::') if x], rest[:rest.rindex('}')])
            else:
                alias = None
                if '@' in p:
                    p, alias = p.split('@', 1)
                segs = prefix + [x for x in p.split('::') if x]
                if segs and segs[-1] == 'self':
                    segs = segs[:-1]
                out.append((segs, alias))

    walk([], tree)
    return out


def split_use_as(tree):
    """Marks each ` as ` alias with `@`, before `use_leaves` drops the whitespace."""
    return re.sub(r'\s+as\s+', '@', tree)


class Crate:
    """The module tree of one crate and the import edges between its modules."""

    def __init__(self, name, root):
        self.name = name
        self.modules = {}
        load(name, (), root, open(root).read(), os.path.dirname(root), self.modules)

    def child(self, path, name):
        m = self.modules.get((self.name, path))
        return m.children.get(name) if m else None

    def resolve(self, cur, segs, scope):
        """The deepest module named by path `segs` written in module `cur`, or None."""
        if not segs:
            return None
        first, rest = segs[0], segs[1:]
        if first in ('crate', '$crate'):
            base = ()
        elif first == 'super':
            base = cur
            while segs and segs[0] == 'super':
                base = base[:-1]
                segs = segs[1:]
            rest = segs
        elif first == 'self':
            base = cur
        elif self.child(cur, first) is not None:
            base, rest = cur, segs
        elif first in scope:
            base = scope[first]
        else:
            return None
        m = base
        for x in rest:
            c = self.child(m, x)
            if c is None:
                break
            m = c
        return m

    def edges(self):
        """{(a, b): [line, ..]}: module a names module b (or an item of b)."""
        found = defaultdict(list)
        use_re = re.compile(r'\b(?:pub(?:\([^)]*\))?\s+)?use\s+([^;]*);')
        path_re = re.compile(r'(?<![\w:$])(\$?' + IDENT + r')((?:\s*::\s*' + IDENT + r')+)')
        for (_, cur), mod in sorted(self.modules.items()):
            code = mod.code
            scope = {}
            uses = []
            for m in use_re.finditer(code):
                line = code.count('\n', 0, m.start()) + 1
                for segs, alias in use_leaves(split_use_as(m.group(1))):
                    uses.append((segs, alias, line))
            # Module names brought into scope by `use` (`use super::db;`), for inline paths.
            for segs, alias, _ in uses:
                t = self.resolve(cur, segs, {})
                if t is not None and segs and segs[-1] not in ('*',) and t[-1:] == (segs[-1],):
                    scope[alias or segs[-1]] = t
            for segs, _, line in uses:
                self.add(found, cur, self.resolve(cur, segs, scope), mod, line, 'use')
            rest = use_re.sub(lambda m: re.sub(r'[^\n]', ' ', m.group(0)), code)
            for m in path_re.finditer(rest):
                segs = [m.group(1)] + [s.strip() for s in m.group(2).split('::') if s.strip()]
                line = rest.count('\n', 0, m.start()) + 1
                self.add(found, cur, self.resolve(cur, segs, scope), mod, line, 'path')
        return found

    def add(self, found, cur, t, mod, line, kind):
        if t is None or t == cur:
            return
        why = '%s:%d (%s)' % (mod.file, mod.line0 + line, kind)
        if why not in found[(cur, t)]:
            found[(cur, t)].append(why)


def sccs(nodes, succ):
    """Tarjan's strongly connected components."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in succ[v]:
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
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def long_cycles(comp, succ):
    """For each module of component `comp`, a shortest cycle of 3 or more modules through it
    (each cycle once, starting at its least module)."""
    inside = set(comp)
    found = []
    for v in sorted(comp):
        best = None
        for w in sorted(succ[v]):
            if w not in inside:
                continue
            # Shortest path w -> .. -> v that does not take the edge w -> v.
            prev = {w: None}
            q = deque([w])
            while q:
                x = q.popleft()
                if x == v:
                    break
                for y in sorted(succ[x]):
                    if y in inside and y not in prev and not (x == w and y == v):
                        prev[y] = x
                        q.append(y)
            if v in prev:
                path = [v]
                while path[-1] != w:
                    path.append(prev[path[-1]])
                cyc = [v] + path[::-1]  # v -> w -> .. -> v
                if len(set(cyc)) >= 3 and (best is None or len(cyc) < len(best)):
                    best = cyc
        if best:
            ring = best[:-1]
            i = ring.index(min(ring))
            ring = ring[i:] + ring[:i]
            if ring + ring[:1] not in found:
                found.append(ring + ring[:1])
    return found


def name(p):
    return '::'.join(p) or '(root)'


def main(argv):
    verbose = '-v' in argv
    with_root = '--no-root' not in argv
    dirs = [a for a in argv if not a.startswith('-')] or ['core/src']
    any_found = False
    for d in dirs:
        roots = crate_roots(d)
        seen = set()
        for root in roots:
            crate = Crate(os.path.relpath(root, d), root)
            found = crate.edges()
            if not with_root:
                found = {k: v for k, v in found.items() if k[1] != ()}
            succ = defaultdict(set)
            for a, b in found:
                succ[a].add(b)
            # A module file shared by several crates (tests/common) is reported once.
            prefix = '' if len(roots) == 1 else os.path.relpath(root, d) + ': '
            lines = []
            for a, b in sorted(found):
                if (b, a) in found and a < b:
                    key = ((crate.modules[(crate.name, a)].file, a), (crate.modules[(crate.name, b)].file, b))
                    if key in seen:
                        continue
                    seen.add(key)
                    lines.append('%s%s <-> %s' % (prefix, name(a), name(b)))
                    if verbose:
                        for e in ((a, b), (b, a)):
                            for why in found[e]:
                                lines.append('    %s -> %s: %s' % (name(e[0]), name(e[1]), why))
            for comp in sccs(set(succ) | {b for s in succ.values() for b in s}, succ):
                if len(comp) < 3:
                    continue
                for cyc in long_cycles(comp, succ):
                    key = tuple((crate.modules[(crate.name, m)].file, m) for m in cyc)
                    if key in seen:
                        continue
                    seen.add(key)
                    lines.append('%scycle: %s' % (prefix, ' -> '.join(name(m) for m in cyc)))
                    if verbose:
                        for e in zip(cyc, cyc[1:]):
                            for why in found[e]:
                                lines.append('    %s -> %s: %s' % (name(e[0]), name(e[1]), why))
            for line in lines:
                print(line)
            any_found = any_found or bool(lines)
    return 1 if any_found else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
