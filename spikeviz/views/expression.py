"""A safe filter expression over the columns of a table: ``snr > 5 and label == "good"``.

``DataFrame.query``/``eval`` can reach attributes and call functions (``@``-locals,
``__import__``, ``.method()``), so a user's text is never given to it. Instead the text is
parsed with :mod:`ast` and only this grammar is accepted:

- names of columns (a name with blanks or symbols in backticks: ```KS label` == "good"``),
- numbers, strings, ``True``/``False``/``None``,
- comparisons ``== != < <= > >=`` (chains too: ``1 < snr < 5``), ``in`` / ``not in`` a list
  or tuple of constants (``label in ["good", "mua"]``),
- ``and`` / ``or`` / ``not`` (also ``&`` ``|`` ``~``) and parentheses,
- arithmetic ``+ - * / // % **`` and unary ``-``/``+`` on numbers and columns.

Everything else (calls, attributes, subscripts, lambdas, comprehensions, f-strings, walrus,
...) is refused with an :class:`ExpressionError` naming what is not allowed. Evaluation is
vectorised (pandas/numpy elementwise operations); a comparison with a missing value (NaN) is
False. The result is a boolean row mask.

No Panel here: the evaluator is plain Python, testable on its own.
"""

from __future__ import annotations

import ast
import io
import operator
import re
import tokenize

import numpy as np
import pandas as pd

from ..errors import InputError

#: Longest accepted expression (characters) and largest syntax tree (nodes).
MAX_LENGTH = 2000
MAX_NODES = 400

_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
            ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}
_ARITH = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
          ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
          ast.Pow: operator.pow}
_BOOL_BINOPS = {ast.BitAnd: "and", ast.BitOr: "or"}

_NODE_NAMES = {
    ast.Call: "function calls", ast.Attribute: "attribute access (a.b)",
    ast.Subscript: "subscripts (a[...])", ast.Lambda: "lambda", ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions", ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions", ast.JoinedStr: "f-strings",
    ast.NamedExpr: "assignments (:=)", ast.IfExp: "conditional expressions (a if b else c)",
    ast.Dict: "dicts", ast.Set: "sets", ast.Starred: "starred expressions",
    ast.Name: "a name", ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield",
    ast.Slice: "slices",
}

_BACKTICK = re.compile(r"`([^`]*)`")


def _words(source: str) -> str:
    """``&`` / ``|`` as ``and`` / ``or`` (as in pandas: comparisons bind tighter), outside
    strings."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return source  # ast.parse reports the syntax error
    out = []
    for token in tokens:
        if token.type == tokenize.OP and token.string in ("&", "|"):
            token = token._replace(type=tokenize.NAME,
                                   string=" and " if token.string == "&" else " or ")
        out.append(token)
    return tokenize.untokenize(out)


class ExpressionError(InputError):
    """The filter expression is not valid; the message says what and where."""

    def __init__(self, message: str):
        super().__init__(message, field="filter expression")


def _describe(node: ast.AST) -> str:
    for kind, name in _NODE_NAMES.items():
        if isinstance(node, kind):
            return name
    return type(node).__name__


def _refuse(node: ast.AST, what: str | None = None) -> ExpressionError:
    col = getattr(node, "col_offset", None)
    where = f" (at character {col + 1})" if col is not None else ""
    return ExpressionError(f"{what or _describe(node)} not allowed{where}; use column names, "
                           "numbers, strings, comparisons, and/or/not, arithmetic and "
                           "`in [...]` lists")


class Expression:
    """A parsed, checked filter expression; ``Expression(text, columns)``.

    ``columns``: the names that may be used. Raises :class:`ExpressionError` for anything
    outside the grammar in the module docstring. ``mask(frame)`` evaluates it.
    """

    def __init__(self, text: str, columns):
        if not isinstance(text, str):
            raise ExpressionError(f"expected text, got {type(text).__name__}")
        if len(text) > MAX_LENGTH:
            raise ExpressionError(f"longer than {MAX_LENGTH} characters")
        self.text = text
        self.columns = [str(c) for c in columns]
        self._aliases: dict[str, str] = {}
        source = _BACKTICK.sub(self._alias, text).strip()
        if "`" in source:
            raise ExpressionError("unmatched backtick (`)")
        if not source:
            raise ExpressionError("empty expression")
        try:
            tree = ast.parse(_words(source.replace("\n", " ")), mode="eval")
        except SyntaxError as error:
            at = f" at character {error.offset}" if error.offset else ""
            raise ExpressionError(f"not a valid expression ({error.msg}{at})") from None
        if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
            raise ExpressionError(f"too complex (more than {MAX_NODES} parts)")
        self._tree = tree.body
        self.names = sorted(self._check(self._tree))

    def _alias(self, match: re.Match) -> str:
        alias = f"__column_{len(self._aliases)}"
        self._aliases[alias] = match.group(1)
        return f" {alias} "

    # -- checking (before any evaluation) ---------------------------------------------------
    def _check(self, node: ast.AST) -> set[str]:
        if isinstance(node, ast.BoolOp):
            return set().union(*(self._check(v) for v in node.values))
        if isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, ast.Not | ast.Invert | ast.USub | ast.UAdd):
                raise _refuse(node, type(node.op).__name__)
            return self._check(node.operand)
        if isinstance(node, ast.BinOp):
            if type(node.op) not in _ARITH and type(node.op) not in _BOOL_BINOPS:
                raise _refuse(node, f"operator {type(node.op).__name__}")
            return self._check(node.left) | self._check(node.right)
        if isinstance(node, ast.Compare):
            names = self._check(node.left)
            for op, right in zip(node.ops, node.comparators, strict=True):
                if isinstance(op, ast.In | ast.NotIn):
                    if not isinstance(right, ast.List | ast.Tuple):
                        raise _refuse(right, "`in` with anything but a [list] of constants")
                    for item in right.elts:
                        self._constant(item)
                elif type(op) in _COMPARE:
                    names |= self._check(right)
                else:
                    raise _refuse(node, f"comparison {type(op).__name__}")
            return names
        if isinstance(node, ast.Name):
            return {self._column(node)}
        if isinstance(node, ast.Constant):
            self._constant(node)
            return set()
        if isinstance(node, ast.List | ast.Tuple):
            raise _refuse(node, "a list outside `in [...]`")
        raise _refuse(node)

    def _column(self, node: ast.Name) -> str:
        name = self._aliases.get(node.id, node.id)
        if name in self.columns:
            return name
        if node.id.startswith("__"):
            raise _refuse(node, f"the name {name!r}")
        if name in ("True", "False", "None"):
            return name
        shown = ", ".join(self.columns[:40]) + (" ..." if len(self.columns) > 40 else "")
        raise ExpressionError(f"unknown column {name!r}; columns: {shown}")

    def _constant(self, node: ast.AST):
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            value = self._constant(node.operand)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise _refuse(node, "a sign before a non-number")
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.Name) and node.id in ("True", "False", "None") and \
                node.id not in self.columns:
            return {"True": True, "False": False, "None": None}[node.id]
        if not isinstance(node, ast.Constant):
            raise _refuse(node, f"{_describe(node)} inside a list (only constants)")
        if not isinstance(node.value, int | float | str | bool) and node.value is not None:
            raise _refuse(node, f"the constant {node.value!r}")
        return node.value

    # -- evaluation ---------------------------------------------------------------------------
    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        """Boolean array, one value per row of ``frame``: True where the expression holds."""
        n = len(frame)
        missing = [c for c in self.names if c not in frame.columns and
                   c not in ("True", "False", "None")]
        if missing:
            raise ExpressionError(f"unknown column {missing[0]!r}")
        try:
            with np.errstate(all="ignore"):
                value = self._eval(self._tree, frame)
        except ExpressionError:
            raise
        except (TypeError, ValueError, ArithmeticError) as error:
            raise ExpressionError(f"cannot evaluate: {error}") from None
        if isinstance(value, pd.Series):
            if not (pd.api.types.is_bool_dtype(value) or value.isna().all()):
                raise ExpressionError("the expression must be a condition, e.g. snr > 5 "
                                      "(it gives values, not True/False)")
            return value.fillna(False).to_numpy(dtype=bool)
        if isinstance(value, bool | np.bool_):
            return np.full(n, bool(value))
        raise ExpressionError("the expression must be a condition, e.g. snr > 5")

    def _eval(self, node: ast.AST, frame: pd.DataFrame):
        if isinstance(node, ast.Name):
            if node.id in ("True", "False", "None") and node.id not in frame.columns:
                return self._constant(node)
            return frame[self._aliases.get(node.id, node.id)]
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.BoolOp):
            values = [self._truth(self._eval(v, frame)) for v in node.values]
            combine = operator.and_ if isinstance(node.op, ast.And) else operator.or_
            out = values[0]
            for value in values[1:]:
                out = combine(out, value)
            return out
        if isinstance(node, ast.UnaryOp):
            operand = self._eval(node.operand, frame)
            if isinstance(node.op, ast.Not | ast.Invert):
                truth = self._truth(operand)
                return ~truth if isinstance(truth, pd.Series) else not truth
            self._number(operand, node)
            return -operand if isinstance(node.op, ast.USub) else +operand
        if isinstance(node, ast.BinOp):
            left, right = self._eval(node.left, frame), self._eval(node.right, frame)
            if type(node.op) in _BOOL_BINOPS:
                combine = operator.and_ if isinstance(node.op, ast.BitAnd) else operator.or_
                return combine(self._truth(left), self._truth(right))
            self._number(left, node)
            self._number(right, node)
            left, right = self._float_scalar(left), self._float_scalar(right)
            return _ARITH[type(node.op)](left, right)
        if isinstance(node, ast.Compare):
            out = None
            left = self._eval(node.left, frame)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                if isinstance(op, ast.In | ast.NotIn):
                    items = [self._constant(e) for e in right_node.elts]
                    right = None
                    result = self._isin(left, items)
                    if isinstance(op, ast.NotIn):
                        result = ~result if isinstance(result, pd.Series) else not result
                else:
                    right = self._eval(right_node, frame)
                    result = self._compare(op, left, right)
                out = result if out is None else out & result
                left = right
            return out
        raise _refuse(node)  # unreachable: _check refused it

    @staticmethod
    def _float_scalar(value):
        """Scalar arithmetic in float64 (``9 ** 9 ** 9`` is inf, not a huge int)."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return np.float64(value)
        return value

    @staticmethod
    def _number(value, node) -> None:
        if isinstance(value, pd.Series):
            if pd.api.types.is_numeric_dtype(value) and not pd.api.types.is_bool_dtype(value):
                return
            raise _refuse(node, f"arithmetic on the text column {value.name!r}")
        if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
            raise _refuse(node, f"arithmetic on {value!r}")

    @staticmethod
    def _truth(value):
        if isinstance(value, pd.Series):
            if pd.api.types.is_bool_dtype(value):
                return value.astype(bool)
            raise ExpressionError(f"column {value.name!r} is not True/False; compare it "
                                  f"(e.g. {value.name} > 0)")
        if isinstance(value, bool | np.bool_):
            return bool(value)
        raise ExpressionError(f"{value!r} is not True/False")

    @staticmethod
    def _isin(left, items):
        if isinstance(left, pd.Series):
            return left.isin(items).astype(bool)
        return left in items

    @staticmethod
    def _compare(op, left, right):
        fn = _COMPARE[type(op)]
        if not isinstance(left, pd.Series) and not isinstance(right, pd.Series):
            return bool(fn(left, right))
        series = left if isinstance(left, pd.Series) else right
        other = right if series is left else left
        numeric = pd.api.types.is_numeric_dtype(series) and \
            not pd.api.types.is_bool_dtype(series)
        number = isinstance(other, int | float) and not isinstance(other, bool)
        text_vs_number = isinstance(other, str) and numeric
        number_vs_text = number and not numeric and not pd.api.types.is_bool_dtype(series)
        if text_vs_number or number_vs_text:
            if type(op) is ast.Eq:
                return pd.Series(False, index=series.index)
            if type(op) is ast.NotEq:
                return pd.Series(True, index=series.index)
            kind = "a number" if numeric else "text"
            raise ExpressionError(f"cannot order column {series.name!r} ({kind}) against "
                                  f"{other!r}")
        try:
            result = fn(left, right)
        except TypeError:
            raise ExpressionError(f"cannot compare column {series.name!r} with {other!r}") \
                from None
        return result.fillna(False).astype(bool) if result.dtype == object else result


def parse(text: str, columns) -> Expression:
    """``Expression(text, columns)``: parsed and checked, not yet evaluated."""
    return Expression(text, columns)


def filter_mask(frame: pd.DataFrame, text: str | None) -> np.ndarray:
    """Row mask of ``frame`` for ``text`` (all True for an empty/blank text)."""
    if text is None or not text.strip():
        return np.ones(len(frame), dtype=bool)
    return Expression(text, frame.columns).mask(frame)
