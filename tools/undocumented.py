#!/usr/bin/env python3
"""Lists the public declarations of Swift modules that have no `///` (or `/** */`) doc comment.

    python3 tools/undocumented.py Sources/TraceReader [more module folders or files...]
    python3 tools/undocumented.py --products      every library product's module (root and Adapters/*)
    --summary     one line per module: documented/total (no list)
    --check       exit 1 when any listed module has an undocumented public declaration

What counts as public (what a user of the library product sees):
- a declaration marked `public` or `open` (types, protocols, funcs, inits, vars/lets, subscripts,
  typealiases, associated types, operators' funcs), outside function bodies and inside no non-public type;
- a member without an access modifier of a `public extension`, of a public protocol (requirements), and
  a public enum's `case`s (one `case a, b` line is one declaration).
Not counted: `@_spi` declarations and members of `@_spi` types, `package`/internal/private ones,
`override`s and the witnesses DocC documents from their protocol: members named like a requirement of a
protocol the type (or extension) declares conformance to, where that protocol is in the scanned modules,
and the standard library's `description`, `debugDescription`, `hash(into:)`, `==`, `<`, `init(from:)`,
`encode(to:)`, `errorDescription` and `makeIterator()`. A line scanner, not a parser: it tracks braces outside comments and strings,
which is enough for this project's style (swift-format'ed code, one declaration per line).
"""

import os
import re
import sys

DECL_KEYWORDS = (
    "class", "struct", "enum", "protocol", "actor", "extension", "func", "init", "deinit", "var", "let",
    "subscript", "typealias", "associatedtype", "case", "macro", "operator",
)
MODIFIERS = {
    "public", "open", "package", "internal", "fileprivate", "private", "static", "class", "final", "override",
    "mutating", "nonmutating", "convenience", "required", "lazy", "weak", "unowned", "dynamic", "indirect",
    "nonisolated", "isolated", "optional", "prefix", "postfix", "infix", "consuming", "borrowing",
    "distributed", "async",
}
CONTAINERS = {"class", "struct", "enum", "protocol", "actor", "extension"}
INHERITED_DOCS = re.compile(
    r"^(var (description|debugDescription|errorDescription)\b|func hash\(into|func ==|func <\s*\(|func <\(|"
    r"init\(from decoder|init\(from:|func encode\(to|func makeIterator\(\))"
)


def strip_code(line, state):
    """Returns the line's code with comments and string contents removed; `state` carries block comments
    and multi-line strings across lines."""
    out = []
    i = 0
    n = len(line)
    while i < n:
        if state["block"] > 0:
            if line.startswith("*/", i):
                state["block"] -= 1
                i += 2
            elif line.startswith("/*", i):
                state["block"] += 1
                i += 2
            else:
                i += 1
            continue
        if state["multiline"]:
            if line.startswith('"""', i):
                state["multiline"] = False
                out.append('""')
                i += 3
            else:
                i += 1
            continue
        c = line[i]
        if line.startswith("//", i):
            break
        if line.startswith("/*", i):
            state["block"] += 1
            i += 2
            continue
        if line.startswith('"""', i):
            state["multiline"] = True
            i += 3
            continue
        if c == '"':
            # a one-line string (raw strings and interpolations with quotes are rare here; braces inside
            # an interpolation are skipped with the string)
            i += 1
            depth = 0
            while i < n:
                if line[i] == "\\" and i + 1 < n and line[i + 1] == "(":
                    depth += 1
                    i += 2
                    continue
                if depth > 0 and line[i] == ")":
                    depth -= 1
                elif depth == 0 and line[i] == "\\":
                    i += 2
                    continue
                elif depth == 0 and line[i] == '"':
                    break
                i += 1
            i += 1
            out.append('""')
            continue
        out.append(c)
        i += 1
    return "".join(out)


def parse_decl(code):
    """(attributes, modifiers, keyword, rest) of a declaration line, or None."""
    s = code.strip()
    attrs = []
    while s.startswith("@"):
        m = re.match(r"@[\w.]+(\([^()]*(\([^()]*\)[^()]*)*\))?\s*", s)
        if not m:
            break
        attrs.append(m.group(0).strip())
        s = s[m.end():]
    mods = []
    while True:
        m = re.match(r"(\w+)(\([^)]*\))?\s+", s)
        if not m or m.group(1) not in MODIFIERS:
            break
        # `class func`/`class var` is a modifier; `class Name` is a declaration
        if m.group(1) == "class" and not re.match(r"class\s+(func|var|let|subscript)\b", s):
            break
        mods.append(m.group(1) + (m.group(2) or ""))
        s = s[m.end():]
    m = re.match(r"(\w+)\b", s)
    if not m or m.group(1) not in DECL_KEYWORDS:
        return None
    kw = m.group(1)
    return attrs, mods, kw, s


# Requirement names of the protocols seen in the scanned modules (a first pass fills it): a conforming
# type's member of the same name is a witness, and DocC shows the requirement's documentation for it.
PROTOCOLS = {}


def member_name(kw, rest):
    m = re.match(r"func\s+([^\s(<]+)", rest) if kw == "func" else re.match(r"(?:var|let|typealias|associatedtype)\s+(\w+)", rest)
    return m.group(1) if m else kw


def conformances(kw, rest):
    """The protocols a type or extension declares conformance to; for an extension, also the extended
    name (an extension of a protocol holds its default implementations, witnesses too)."""
    names = set()
    e = re.match(r"extension\s+([\w.]+)", rest)
    if e:
        names.add(e.group(1).split(".")[-1])
    m = re.match(r"(?:class|struct|enum|actor|extension)\s+[\w.]+(?:<[^>]*>)?\s*:\s*([^{]*)", rest)
    if not m:
        return names
    for part in m.group(1).split(" where ")[0].split(","):
        n = re.match(r"\s*([\w.]+)", part)
        if n:
            names.add(n.group(1).split(".")[-1])
    return names


def scan_file(path, results):
    state = {"block": 0, "multiline": False}
    # scope stack: (kind, members_default_public, members_can_be_public, witness names, protocol name)
    #   kind: "container" or "body"
    stack = []
    pending_doc = False
    pending_attr_lines = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    pending_container = None  # a declaration whose `{` may come on a later line
    for lineno, raw in enumerate(lines, 1):
        stripped = raw.strip()
        in_comment_before = state["block"] > 0 or state["multiline"]
        if not in_comment_before and (stripped.startswith("///") or stripped.startswith("/**")):
            pending_doc = True
            strip_code(raw, state)
            continue
        code = strip_code(raw, state)
        cs = code.strip()
        if in_comment_before and not cs:
            continue
        if not cs:
            if stripped == "":
                pending_doc = False if not stripped.startswith("//") else pending_doc
            continue
        if cs.startswith("#"):
            # #if/#else/#endif between a doc comment and its declaration keep the doc
            counted_braces(cs, stack, None)
            continue
        in_body = any(scope[0] == "body" for scope in stack)
        parent = stack[-1] if stack else None
        decl = None if in_body else parse_decl(cs)
        if decl is None and not in_body and re.fullmatch(r"(@[\w.]+(\([^)]*\))?\s*)+", cs):
            # an attribute on its own line: it, and the doc comment above, belong to the declaration below
            pending_attr_lines.append(cs)
            counted_braces(cs, stack, None)
            continue
        opened = None
        if decl is not None:
            attrs, mods, kw, rest = decl
            access = next((m for m in mods if re.match(r"(public|open|package|internal|fileprivate|private)\b", m)), None)
            access_word = access.split("(")[0] if access else None
            spi = any(a.startswith("@_spi") for a in attrs) or any("@_spi" in a for a in pending_attr_lines)
            if parent is None:
                visible = access_word in ("public", "open")
            else:
                _, default_public, can_be_public, witnesses, protocol = parent
                if protocol is not None:
                    PROTOCOLS.setdefault(protocol, set()).add(member_name(kw, rest))
                if not can_be_public:
                    visible = False
                elif access_word is None:
                    visible = default_public(kw) if callable(default_public) else default_public
                else:
                    visible = access_word in ("public", "open")
            visible = visible and not spi
            counted = visible and kw not in ("extension", "deinit") and "override" not in mods
            if counted and INHERITED_DOCS.match(rest):
                counted = False
            if counted and parent is not None and member_name(kw, rest) in parent[3]:
                counted = False
            if counted:
                results.append((path, lineno, cs, pending_doc))
            if kw in CONTAINERS:
                if kw == "extension":
                    members_default = access_word in ("public", "open")
                    can = access_word in (None, "public", "open") and not spi
                elif kw == "protocol":
                    members_default = visible
                    can = visible
                elif kw == "enum":
                    members_default = (lambda k, v=visible: v and k == "case")
                    can = visible
                else:
                    members_default = False
                    can = visible
                witness_names = set()
                for proto in conformances(kw, rest):
                    witness_names |= PROTOCOLS.get(proto, set())
                name = re.match(r"protocol\s+(\w+)", rest) if kw == "protocol" else None
                opened = ("container", members_default, can, witness_names, name.group(1) if name else None)
            else:
                opened = ("body", False, False, set(), None)
        pending_doc = False
        pending_attr_lines = []
        if opened is None and pending_container is not None and "{" in cs:
            opened, pending_container = pending_container, None
        elif decl is not None:
            # a type whose `{` comes on a later line (a long conformance list)
            pending_container = opened if (opened and opened[0] == "container" and "{" not in cs) else None
        counted_braces(cs, stack, opened)


def counted_braces(code, stack, opened):
    """Pushes `opened` (or a body scope) for the first `{` and body scopes for the rest; pops on `}`."""
    first = True
    for c in code:
        if c == "{":
            stack.append(opened if (first and opened is not None) else ("body", False, False, set(), None))
            first = False
        elif c == "}":
            if stack:
                stack.pop()


def products(root):
    """Every library product's module folder: root Package.swift and Adapters/*/Package.swift."""
    found = []
    for pkg_dir in [root] + sorted(
        os.path.join(root, "Adapters", d) for d in os.listdir(os.path.join(root, "Adapters"))
    ):
        manifest = os.path.join(pkg_dir, "Package.swift")
        if not os.path.exists(manifest):
            continue
        text = open(manifest, encoding="utf-8").read()
        for m in re.finditer(r'\.library\(\s*name:\s*"[^"]+"[^)]*?targets:\s*\[([^\]]*)\]', text):
            for t in re.findall(r'"([^"]+)"', m.group(1)):
                d = os.path.join(pkg_dir, "Sources", t)
                if os.path.isdir(d) and d not in found:
                    found.append(d)
    return found


def swift_files(d):
    if os.path.isfile(d):
        return [d]
    found = []
    for base, subdirs, files in os.walk(d):
        subdirs.sort()
        found += [os.path.join(base, name) for name in sorted(files) if name.endswith(".swift")]
    return found


def main(argv):
    summary = "--summary" in argv
    check = "--check" in argv
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    dirs = [a for a in argv if not a.startswith("--")]
    if "--products" in argv:
        dirs += [os.path.relpath(d, os.getcwd()) for d in products(root)]
    if not dirs:
        print(__doc__, file=sys.stderr)
        return 2
    missing_total = 0
    # first pass: the protocols' requirements (a conformance may come before its protocol in file order)
    for d in dirs:
        for f in swift_files(d):
            scan_file(f, [])
    for d in dirs:
        results = []
        for f in swift_files(d):
            scan_file(f, results)
        undocumented = [r for r in results if not r[3]]
        missing_total += len(undocumented)
        if summary:
            print(f"{os.path.basename(os.path.normpath(d))}: {len(results) - len(undocumented)}/{len(results)} documented")
        else:
            for path, lineno, code, _ in undocumented:
                print(f"{path}:{lineno}: {code}")
    if check and missing_total:
        print(f"asynctrace: {missing_total} public declarations without a doc comment (tools/undocumented.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
