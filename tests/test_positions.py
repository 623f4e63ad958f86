"""`Positions` (lint/analysis/positions.py) gives libcst's `PositionProvider` line and column for every node:
of the repository's own files and of sources written to trip up where statements start (decorators,
`elif`, `a; b`, backslash continuations, CRLF, tabs, a coding cookie, ...)."""

from __future__ import annotations

import random
import sys
from dataclasses import fields
from pathlib import Path

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider

from sfdoctor.lint.analysis.index import ModuleIndex
from sfdoctor.lint.analysis.positions import Positions
from sfdoctor.lint.files.magics import without_magics
from sfdoctor.lint.files.source import utf8_source

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted(path for folder in ("fixtures", "sfdoctor", "tests") for path in (ROOT / folder).rglob("*.py"))

TRICKY = {
    "decorators": (
        "import functools\n"
        "\n"
        "# leading comment\n"
        "\n"
        "@functools.lru_cache  # a comment on the decorator\n"
        "# between decorators\n"
        "\n"
        "@functools.wraps(\n"
        "    print,\n"
        ")\n"
        "@ \\\n"
        "  staticmethod\n"
        "@(\n"
        "    functools.cache\n"
        ")\n"
        "\n"
        "# after the decorators\n"
        "def f(a,\n"
        "      b):\n"
        "    return a\n"
        "\n"
        "\n"
        "@dataclass\n"
        "class A:\n"
        "    @property\n"
        "    # comment\n"
        "    def x(self):\n"
        "        return 1\n"
        "\n"
        "    @x.setter\n"
        "\n"
        "    async def x(self, value): pass\n"
        "async \\\n"
        "  def g():\n"
        "    await h()\n"
    ),
    "elif": (
        "if a:\n"
        "    x = 1\n"
        "# before elif\n"
        "elif b:  # on elif\n"
        "    x = 2\n"
        "    # end of the elif block\n"
        "elif c: x = 3; y = 4\n"
        "else:\n"
        "    if d:\n"
        "        x = 5\n"
        "    elif e:\n"
        "        pass\n"
        "    else:\n"
        "        x = 6\n"
        "z = x\n"
    ),
    "try": (
        "try:\n"
        "    a()\n"
        "except ValueError as error:\n"
        "    b()\n"
        "except (KeyError,\n"
        "        IndexError):\n"
        "\n"
        "    c()\n"
        "except: d()\n"
        "else:\n"
        "    e()\n"
        "  # dedented comment\n"
        "finally:\n"
        "    f()\n"
        "try:\n"
        "    g()\n"
        "finally: h()\n"
        "try:\n"
        "    raise ExceptionGroup('x', [ValueError()])\n"
        "except* ValueError:\n"
        "    i()\n"
        "except* (TypeError, KeyError) as group:\n"
        "    j()\n"
        "else:\n"
        "    k()\n"
        "finally:\n"
        "    m()\n"
    ),
    "match": (
        "match command.split():\n"
        "    # a comment before the first case\n"
        "    case [action]:\n"
        "        go(action)\n"
        "    case [action, obj] if obj:\n"
        "        if obj:\n"
        "            take(obj)\n"
        "\n"
        "    case Point(x=0, y=0) | {'k': 1}: pass\n"
        "    case _:\n"
        "        # nothing\n"
        "        pass\n"
        "after = 1\n"
    ),
    "semicolons": (
        "a = 1; b = 2; c = 3\n"
        "if x: a; b\n"
        "if x: a; b;\n"
        "while x: pass\n"
        "for i in y: print(i); continue\n"
        "class B: pass\n"
        "def h(): return 1\n"
        "x = 1;\n"
        "del a, b; global q; assert x, 'm'\n"
        "import os; from os import path as p\n"
    ),
    "continuations": (
        "x = 1 + \\\n"
        "    2\n"
        "if a and \\\n"
        "   b:\n"
        "    with open(x) as f, \\\n"
        "         open(y) as g:\n"
        "        pass\n"
        "assert x, \\\n"
        "    'message'\n"
        "y = 1 \\\n"
        "\n"
        "z = (1,\n"
        "     2)\n"
        "(w) = 3\n"
        "(\n"
        "    v\n"
        ") = 4\n"
        "with (\n"
        "    open(x) as f,\n"
        "    open(y) as g,\n"
        "):\n"
        "    pass\n"
    ),
    "strings": (
        '"""Module docstring\n'
        "over lines.\n"
        '"""\n'
        "s = '''one\n"
        "two'''; t = 1\n"
        "u = (\n"
        "    'implicit'\n"
        "    # comment inside the parentheses\n"
        "    'concatenation'\n"
        ")\n"
        "v = f'{s!r:>{t}} {\"nested\"}'\n"
        "w = '\\d'  # an invalid escape: ast warns\n"
        "def f():\n"
        '    """Docstring."""\n'
        "    return f'''multi\n"
        "{s}\n"
        "line'''\n"
    ),
    "nested": (
        "class Outer:\n"
        "    class Inner:\n"
        "        class Innermost:\n"
        "            def m(self):\n"
        "                for i in range(3):\n"
        "                    while i:\n"
        "                        async def inner():\n"
        "                            async for j in k:\n"
        "                                async with lock:\n"
        "                                    yield j\n"
        "                        i -= 1\n"
        "                    else:\n"
        "                        pass\n"
        "                else:\n"
        "                    pass\n"
        "            # end of Innermost\n"
        "        x = 1\n"
        "        # deeper comment at the end\n"
        "            # deeper still\n"
        "    # back at Outer's level\n"
        "\n"
        "# at the top\n"
        "y = lambda q: (q := 1)\n"
    ),
    "comments_at_ends": (
        "#!/usr/bin/env python\n"
        "# header comment\n"
        "\n"
        "import os\n"
        "def f():\n"
        "    if os:\n"
        "        return 1\n"
        "        # end of the if block\n"
        "    # end of the function\n"
        "# end of the file\n"
        "\n"
    ),
    "no_newline_at_end": "def f():\n    return 1  # comment",
    "no_newline_after_comment": "x = 1\n# last",
    "empty": "",
    "newline_only": "\n",
    "comment_only": "# nothing else\n",
    "blank_lines_only": "   \n\n\t\n",
    "tabs": "class A:\n\tdef f(self):\n\t\tif self:\n\t\t\treturn 1\n\t\treturn 2\n\n\tx = 3\n",
    "odd_indents": "if a:\n  if b:\n        c = 1\n  d = 2\nif e:\n     f = 3\n",
    "form_feed": "x = 1\n\x0c\ndef f():\n    \x0c\n    return 1\n\x0cy = 2\n",
    "typed": (
        "def f(a: int = 1, *args: str, b: 'B' = None, **kw) -> list[int]:\n"
        "    x: int = 1\n"
        "    return [x]\n"
    ),
    "type_params": "type X = list[int]\ndef f[T](x: T) -> T:\n    return x\nclass C[T]:\n    pass\n",
}

# the Python whose ast parses them
NEWER_SYNTAX = {"try": (3, 11), "type_params": (3, 12)}

TRICKY_BYTES = {
    "crlf": (
        b"import os\r\n\r\n# c\r\n@d\r\ndef f():\r\n    if os:\r\n        return 1\r\n"
        b"    s = '''a\r\nb'''\r\n    return 2\r\n"
    ),
    "cr_only": b"x = 1\ry = '''a\rb'''\rdef f():\r    return 1\r",
    "mixed_newlines": b"x = 1\r\ny = 2\rdef f():\n    return 3\r\n",
    "latin1_cookie": (  # café, été: bytes that are not UTF-8
        b"# -*- coding: latin-1 -*-\ns = 'caf\xe9'\n\ndef f():\n    return '\xe9t\xe9'\nx = 1\n"
    ),
    "bom": b"\xef\xbb\xbf# c\nx = 1\ndef f():\n    return x\n",
}


def expected_and_positions(module: cst.Module, source: bytes | str | None) -> tuple[dict, Positions]:
    expected = dict(MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider))
    positions = Positions(module, frozenset(map(id, ModuleIndex(module).block)), source)
    return expected, positions


def mismatches(expected: dict, positions: Positions, nodes: list[cst.CSTNode]) -> list[str]:
    return [
        f"{type(node).__name__}: {positions[node]} != {expected[node]}"
        for node in nodes
        if positions[node] != expected[node]
    ][:5]


def deepest_statements_first(module: cst.Module, blocks: frozenset[int]) -> list[cst.CSTNode]:
    """Every node, those held by the most deeply nested block statements first: a statement's code is then
    generated on its own, where the statements around it have generated nothing yet."""
    depth_of: dict[cst.CSTNode, int] = {}
    pending: list[tuple[cst.CSTNode, int]] = [(module, 0)]
    while pending:
        node, depth = pending.pop()
        depth += id(node) in blocks
        depth_of[node] = depth
        for name in (f.name for f in fields(node)):
            value = getattr(node, name)
            for child in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(child, cst.CSTNode):
                    pending.append((child, depth))
    return sorted(depth_of, key=depth_of.__getitem__, reverse=True)


def check_every_node(
    source: bytes | str, order: str = "deepest", pass_source: bool = True, module: cst.Module | None = None
) -> Positions:
    module = cst.parse_module(source) if module is None else module
    expected, positions = expected_and_positions(module, source if pass_source else None)
    # every node libcst generates code for, whitespace and punctuation too, in post-order
    nodes = list(expected)
    assert nodes
    if order == "deepest":
        deepest = deepest_statements_first(module, frozenset(map(id, ModuleIndex(module).block)))
        assert set(deepest) >= set(nodes)  # with a few that generate no code (`case _:`'s unused whitespace)
        nodes = [node for node in deepest if node in expected]
    elif order == "shuffled":
        random.Random(len(nodes)).shuffle(nodes)
    assert mismatches(expected, positions, nodes) == []
    assert set(positions._provider._computed) == set(expected)
    return positions


def from_source(positions: Positions) -> bool:
    """Whether the statements' start lines came from the source, not the whole-module pass."""
    return positions._starts is None


@pytest.mark.parametrize("path", FILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_node_of_the_repository_files(path: Path) -> None:
    data = without_magics(utf8_source(path.read_bytes()))  # as the checker reads it
    try:
        module = cst.parse_module(data)
    except cst.ParserSyntaxError:
        pytest.skip("libcst does not parse it (a fixture of a broken file)")
    assert from_source(check_every_node(data, module=module))


@pytest.mark.parametrize("order", ["deepest", "forward", "shuffled"])
@pytest.mark.parametrize("name", sorted(TRICKY) + sorted(TRICKY_BYTES))
def test_every_node_of_tricky_sources(name: str, order: str) -> None:
    source = TRICKY[name] if name in TRICKY else TRICKY_BYTES[name]
    positions = check_every_node(source, order)
    # on an older Python ast does not parse it, and the whole-module pass steps in
    if sys.version_info >= NEWER_SYNTAX.get(name, (3, 10)):
        assert from_source(positions)


@pytest.mark.parametrize("name", ["decorators", "elif", "crlf", "latin1_cookie"])
def test_source_as_text_or_left_out(name: str) -> None:
    source = TRICKY[name] if name in TRICKY else TRICKY_BYTES[name]
    module = cst.parse_module(source)
    assert from_source(check_every_node(module.code))  # the source as text
    assert from_source(check_every_node(source, pass_source=False))  # module.code stands in


def test_reported_nodes_alone() -> None:
    """A fresh `Positions` for each node: the statement that holds it is found and generated on its own."""
    module = cst.parse_module(TRICKY["nested"] + TRICKY["decorators"] + TRICKY["elif"] + TRICKY["match"])
    expected = dict(MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider))
    blocks = frozenset(map(id, ModuleIndex(module).block))
    for node in list(expected)[::7]:
        positions = Positions(module, blocks, module.code)
        assert positions[node] == expected[node], type(node).__name__
        assert from_source(positions)


def test_a_line_that_libcst_drops_falls_back_to_its_own_lines() -> None:
    """libcst's parser drops a line holding only a backslash continuation, so its lines below it are not
    the source's: the whole-module pass gives libcst's."""
    source = "x = 1\n\\\ny = 2\nif x:\n    z = 3\n    \\\n    w = 4\n"
    assert cst.parse_module(source).code != source
    assert not from_source(check_every_node(source, "forward"))  # the module last: it never needs the source


@pytest.mark.parametrize(
    "source",
    [
        "x = 1\n",  # fewer statements than libcst's
        "x = 1\ny = 2\nz = 3\nw = 4\n",  # more
        "x = (\n",  # not Python
        "def x():\n    pass\ny = 2\nz = 3\n",  # another kind of statement
    ],
)
def test_a_source_that_does_not_match_falls_back(source: str) -> None:
    module = cst.parse_module("x = 1\ny = 2\nif y:\n    z = 3\n")
    expected, positions = expected_and_positions(module, source)
    assert mismatches(expected, positions, list(expected)) == []  # the module last: it never needs the source
    assert not from_source(positions)


def test_a_statement_whose_lines_ast_does_not_match_falls_back() -> None:
    """The same statements, but one of them spans other lines in the source given than in libcst's code:
    the generated statement does not end where ast says, and the whole-module pass takes over."""
    module = cst.parse_module("x = 1\nif x:\n    y = 2\nz = 3\n")
    expected, positions = expected_and_positions(module, "x = 1\nif x:\n\n    y = 2\nz = 3\n")
    if_statement = module.body[1]
    assert positions[if_statement] == expected[if_statement]
    assert not from_source(positions)
    assert mismatches(expected, positions, list(expected)) == []


def test_a_node_of_another_module_is_a_key_error() -> None:
    module = cst.parse_module("x = 1\n")
    _, positions = expected_and_positions(module, "x = 1\n")
    with pytest.raises(KeyError):
        positions[cst.parse_module("y = 2\n").body[0]]
    with pytest.raises(KeyError):
        positions[cst.Name("z")]
