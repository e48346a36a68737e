"""Opt-in ``torch.compile`` of a network, in place, with a fallback to eager mode.

:func:`compile_network` compiles a module's call the way :meth:`torch.nn.Module.compile` does: the module object,
its attributes and its ``state_dict`` keys stay as they are (no ``_orig_mod.`` prefix of an ``OptimizedModule``),
so checkpoints written with or without compilation load either way, and ``copy.deepcopy`` / pickling give an
uncompiled copy (``nn.Module.__getstate__`` drops the compiled call).

``torch.compile`` compiles lazily, at the first call (and again when a new input shape or mode needs another
graph); that is where a missing C++ compiler or a compiler error shows. The compiled call is therefore wrapped:
when it raises and the eager module does not, the module switches to eager mode for good and logs one warning.
An error that the eager module raises as well is the caller's, and propagates unchanged. (The backward graph is
compiled at the first backward pass, outside the wrapper; a failure there is not caught.)

Shapes: the default ``dynamic=None`` (PyTorch's automatic dynamic shapes) compiles the first call for its shapes
and recompiles once with the sizes that changed (batch size, node count) as symbols. ``dynamic=True`` would make
every size symbolic, feature widths included, and fails to trace the denoisers' input check on PyTorch 2.13.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

from graphdiff.log import get_logger

log = get_logger(__name__)

M = TypeVar("M", bound=nn.Module)


class EagerFallback:
    """The compiled call of a module, switching to the eager call for good at its first failure.

    Installed by :func:`compile_network` as the module's compiled call; ``failed`` tells whether it fell back.
    """

    def __init__(self, compiled: Callable[..., Any], eager: Callable[..., Any], name: str) -> None:
        self.compiled = compiled
        self.eager = eager
        self.name = name
        self.failed = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.failed:
            return self.eager(*args, **kwargs)
        try:
            return self.compiled(*args, **kwargs)
        except Exception as exc:  # any compiler error: the eager call decides
            reason = _one_line(exc)  # (the eager call runs after the handler, which frees the failed frames)
        out = self.eager(*args, **kwargs)  # the caller's own errors raise here, as without compilation
        self.failed = True
        log.warning("torch.compile of %s failed (%s); running it eagerly", self.name, reason)
        return out


def compile_network(module: M, enabled: bool = True, *, dynamic: bool | None = None, **options: Any) -> M:
    """Compile ``module``'s calls with ``torch.compile`` in place, falling back to eager mode on failure.

    Args:
        module: the network; it is returned, with its call compiled (a no-op if it already is).
        enabled: ``False`` returns ``module`` untouched (the opt-in switch).
        dynamic: ``torch.compile``'s ``dynamic`` (see the module docstring for the default).
        **options: other ``torch.compile`` arguments (``mode``, ``backend``, ``fullgraph``, ...).

    Returns:
        ``module`` itself. Where ``torch.compile`` is not available at all, it runs eagerly after one warning.
    """
    if not enabled or compiled_call(module) is not None:
        return module
    name = type(module).__name__
    try:
        compiled = torch.compile(module._call_impl, dynamic=dynamic, **options)
    except Exception as exc:  # e.g. a Python version or platform without dynamo
        log.warning("torch.compile is not available for %s (%s); running it eagerly", name, _one_line(exc))
        return module
    # What nn.Module.compile() sets; nn.Module.__call__ runs it instead of the eager call.
    module._compiled_call_impl = EagerFallback(compiled, module._call_impl, name)
    return module


def compiled_call(module: nn.Module) -> EagerFallback | None:
    """The :class:`EagerFallback` :func:`compile_network` installed on ``module``, or ``None``."""
    call = getattr(module, "_compiled_call_impl", None)
    return call if isinstance(call, EagerFallback) else None


def _one_line(exc: BaseException) -> str:
    """``Type: first line`` of the innermost cause (dynamo wraps a compiler's error in ``BackendCompilerFailed``)."""
    for _ in range(5):
        inner = getattr(exc, "inner_exception", None) or exc.__cause__
        if not isinstance(inner, BaseException):
            break
        exc = inner
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__
