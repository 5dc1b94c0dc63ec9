"""Safe boolean expressions for cycle convergence (``converge_when("error < 0.01")``).

Only literals, names, comparisons, boolean and arithmetic operators, subscripts
and a few pure functions are allowed; the expression is checked when the cycle is
declared and evaluated without builtins.
"""

from __future__ import annotations

import ast
from types import CodeType
from typing import Any

from kailash_nb.sdk_exceptions import CycleConfigurationError

__all__ = ["SAFE_FUNCTIONS", "compile_condition", "evaluate_condition"]

SAFE_FUNCTIONS: dict[str, Any] = {
    "abs": abs,
    "min": min,
    "max": max,
    "sum": sum,
    "len": len,
    "all": all,
    "any": any,
    "round": round,
}
_ALLOWED_NODES = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.BinOp,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.FloorDiv,
    ast.Mod,
    ast.Compare,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.Is,
    ast.IsNot,
    ast.IfExp,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.Subscript,
    ast.Slice,
    ast.Tuple,
    ast.List,
    ast.Call,
)
_MAX_LENGTH = 500


def compile_condition(expression: str, where: str) -> CodeType:
    """Check ``expression`` and compile it; ``where`` names the cycle in errors.

    Raises:
        CycleConfigurationError: syntax error, or a construct outside the safe subset.
    """
    if not isinstance(expression, str) or not expression.strip():
        raise CycleConfigurationError(f"{where}: converge_when needs a non-empty expression")
    if len(expression) > _MAX_LENGTH:
        raise CycleConfigurationError(
            f"{where}: converge_when expression is longer than {_MAX_LENGTH} characters"
        )
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise CycleConfigurationError(
            f"{where}: converge_when {expression!r} is not a valid expression: {exc.msg}"
        ) from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise CycleConfigurationError(
                f"{where}: converge_when {expression!r} uses {type(node).__name__}, which is "
                "not allowed; use comparisons, and/or/not, arithmetic, subscripts and "
                f"{sorted(SAFE_FUNCTIONS)}"
            )
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            raise CycleConfigurationError(
                f"{where}: converge_when {expression!r} refers to {node.id!r}; names starting "
                "with '_' are not allowed"
            )
        if isinstance(node, ast.Call) and not (
            isinstance(node.func, ast.Name) and node.func.id in SAFE_FUNCTIONS and not node.keywords
        ):
            raise CycleConfigurationError(
                f"{where}: converge_when {expression!r} calls something other than "
                f"{sorted(SAFE_FUNCTIONS)}"
            )
    return compile(tree, f"<converge_when {where}>", "eval")


def evaluate_condition(code: CodeType, names: dict[str, Any]) -> bool:
    """Evaluate a compiled condition with ``names`` and the safe functions in scope."""
    scope = dict(SAFE_FUNCTIONS)
    scope.update(names)
    return bool(eval(code, {"__builtins__": {}}, scope))  # noqa: S307 - checked AST only
