"""Result and failure callbacks: which functions a task may name, and calling them.

A callback is a dotted path (``myapp.notify:send``) stored with the task, so whoever can
write a task (the API, the CLI, a tasks file, a row in the database) chooses what the
scheduler calls. The **callback policy** limits that choice to the project's own code:

* a callback's module must be a file inside the project directory (the directory the
  scheduler runs from), not inside an installed location (the standard library,
  ``site-packages``, the virtual environment), nor a built-in or frozen module;
* or its module must be listed, by name or by a package prefix, in
  ``SCHEDULER_CALLBACK_MODULES`` (``myapp,notifications``), for callbacks that live in an
  installed package;
* the attribute path may not walk through another module (``mymodule:os.system``), and a
  function it ends on must itself be defined in an allowed module;
* no part of the path may be a name such as ``__main__`` (importing ``bench.__main__``
  would run that program in the scheduler);
* a callback a remote caller sets (the HTTP API) must also come from a listed module
  (:meth:`CallbackPolicy.check_remote`): importing any module runs its top-level code;
* the scheduler's own callbacks in :data:`BUILT_IN_CALLBACKS` (what the agent tools set on
  the tasks they make) are always allowed, wherever the package is installed.

The policy is checked when a task is added (:meth:`CallbackPolicy.resolve`, which imports
the module), when a tasks file is validated (:meth:`CallbackPolicy.check_statically`, which
finds the module and the name in its source without running any of its code), and again
each time a run calls the callback, so a row written by someone else gets no further.

Sync callbacks run on a daemon thread of their own, so one that blocks never stalls the
event loop, and the run's timeout (and ``stop()``) can give up waiting for it.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib
import inspect
import sys
import sysconfig
import threading
from collections.abc import Callable, Iterable
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Any

from scheduler.exceptions import CallbackError

__all__ = ["BUILT_IN_CALLBACKS", "CallbackPolicy", "call_callback", "split_path"]

#: Callbacks of this package that any task may name: (module, function).
BUILT_IN_CALLBACKS = frozenset({("scheduler.agent_tools", "report_failure")})


def split_path(path: str) -> tuple[str, str]:
    """``("package.module", "function")`` from ``package.module:function`` or
    ``package.module.function``."""
    if ":" in path:
        module_name, attribute = path.split(":", 1)
    else:
        module_name, _, attribute = path.rpartition(".")
    return module_name, attribute


def _dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _installed_roots() -> list[Path]:
    """Where installed code lives: the standard library, site-packages, the prefixes."""
    roots: set[str] = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for scheme_path in ("stdlib", "platstdlib", "purelib", "platlib"):
        value = sysconfig.get_paths().get(scheme_path)
        if value:
            roots.add(value)
    try:
        import site

        roots.update(site.getsitepackages())
        roots.add(site.getusersitepackages())
    except (AttributeError, ImportError):  # pragma: no cover - embedded interpreters
        pass
    return [Path(root).resolve() for root in roots if root]


def _find_spec(name: str, path: Iterable[str] | None) -> ModuleSpec | None:
    """Ask the import system's finders where ``name`` is, without importing anything."""
    module = sys.modules.get(name)
    if module is not None:
        spec = getattr(module, "__spec__", None)
        return spec if isinstance(spec, ModuleSpec) else None
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        try:
            spec = find(name, list(path) if path is not None else None)
        except (ImportError, ValueError, TypeError):
            continue
        if spec is not None:
            return spec  # type: ignore[no-any-return]
    return None


def locate(module_name: str) -> ModuleSpec | None:
    """The spec of ``module_name`` found without importing it or its parent packages
    (``importlib.util.find_spec`` imports the parents, running their code)."""
    parts = module_name.split(".")
    search: Iterable[str] | None = None
    spec: ModuleSpec | None = None
    for index in range(len(parts)):
        spec = _find_spec(".".join(parts[: index + 1]), search)
        if spec is None:
            return None
        search = spec.submodule_search_locations
        if index < len(parts) - 1 and search is None:
            return None  # a module, not a package: it has no submodules
    return spec


class CallbackPolicy:
    """Which modules callbacks may come from (see the module docstring).

    Args:
        allowed_modules: Module names or package prefixes allowed wherever they are
            installed (``SCHEDULER_CALLBACK_MODULES``).
        project_dir: The project's directory (default: the current directory, read when a
            callback is checked).
    """

    def __init__(
        self, allowed_modules: Iterable[str] = (), *, project_dir: Path | None = None
    ) -> None:
        self.allowed_modules = tuple(m.strip() for m in allowed_modules if m.strip())
        self._project_dir = project_dir
        self._cache: dict[str, Callable[..., Any]] = {}
        self._roots: list[Path] | None = None

    @property
    def project_dir(self) -> Path:
        return (self._project_dir or Path.cwd()).resolve()

    def _listed(self, module_name: str) -> bool:
        return any(
            module_name == prefix or module_name.startswith(prefix + ".")
            for prefix in self.allowed_modules
        )

    def _refusal(self, module_name: str, spec: ModuleSpec) -> str | None:
        """Why ``module_name`` (found at ``spec``) may not provide callbacks, or None."""
        if self._listed(module_name):
            return None
        origin = spec.origin
        if origin in (None, "built-in", "frozen") or not spec.has_location:
            where = "a built-in module" if origin in ("built-in", "frozen") else "not a file"
        else:
            file = Path(origin).resolve()
            if self._roots is None:
                self._roots = _installed_roots()
            installed = any(file.is_relative_to(root) for root in self._roots)
            if file.is_relative_to(self.project_dir) and not installed:
                return None
            where = "installed code" if installed else f"outside the project ({self.project_dir})"
        return (
            f"module {module_name!r} is {where}; callbacks must come from the project's own "
            f"modules, or from modules listed in SCHEDULER_CALLBACK_MODULES (e.g. "
            f"SCHEDULER_CALLBACK_MODULES={module_name.split('.')[0]})"
        )

    def _checked_spec(self, field: str, path: str) -> tuple[str, str, ModuleSpec]:
        module_name, attribute = split_path(path)
        if not module_name or not attribute:
            raise CallbackError(field, path, "give the module too, as in 'package.module:function'")
        if any(_dunder(part) for part in (*module_name.split("."), *attribute.split("."))):
            # importing a __main__ runs a program (the CLI, a benchmark) inside the scheduler
            raise CallbackError(
                field, path, "names such as __main__ are refused; name the module that defines "
                "the function and the function itself"
            )  # fmt: skip
        try:
            spec = locate(module_name)
        except Exception as exc:  # a finder that fails on a strange name
            raise CallbackError(
                field, path, f"cannot locate module {module_name!r}: {exc}"
            ) from exc
        if spec is None:
            raise CallbackError(field, path, f"cannot import module {module_name!r}: not found")
        refusal = self._refusal(module_name, spec)
        if refusal is not None:
            raise CallbackError(field, path, refusal)
        return module_name, attribute, spec

    def check_remote(self, path: str, *, field: str = "result_callback") -> None:
        """For a callback a remote caller sets (the HTTP API): its module must be listed in
        ``SCHEDULER_CALLBACK_MODULES`` (or it is one of :data:`BUILT_IN_CALLBACKS`).
        Importing a module runs its top-level code, so a request may not pick just any of
        the project's modules (a script, a migration); the usual checks follow.

        Raises:
            CallbackError: The module is not listed.
        """
        parts = split_path(path)
        module_name = parts[0]
        if parts in BUILT_IN_CALLBACKS or self._listed(module_name):
            return
        top = module_name.split(".")[0] or "myapp"
        raise CallbackError(
            field,
            path,
            "a callback set through the HTTP API must come from a module listed in "
            f"SCHEDULER_CALLBACK_MODULES (e.g. SCHEDULER_CALLBACK_MODULES={top})",
        )

    def check_statically(self, path: str, *, field: str = "result_callback") -> None:
        """Check ``path`` against the policy and that its module defines the name, without
        running any code of the module (its source is parsed, not imported).

        Raises:
            CallbackError: Refused by the policy, not found, or not defined there.
        """
        if split_path(path) in BUILT_IN_CALLBACKS:
            return
        module_name, attribute, spec = self._checked_spec(field, path)
        first = attribute.split(".")[0]
        if spec.origin is None or not spec.origin.endswith(".py"):
            return  # compiled or namespace: only importing can tell
        try:
            tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
        except (OSError, SyntaxError, ValueError) as exc:
            raise CallbackError(field, path, f"cannot read module {module_name!r}: {exc}") from exc
        names = _top_level_names(tree)
        if first not in names and "*" not in names and "__getattr__" not in names:
            raise CallbackError(field, path, f"module {module_name!r} has no {first!r}")

    def resolve(self, path: str, *, field: str = "result_callback") -> Callable[..., Any]:
        """Check ``path`` against the policy, then import it and return the callable.

        Raises:
            CallbackError: Refused by the policy, cannot be imported, or not callable.
        """
        cached = self._cache.get(path)
        if cached is not None:
            return cached
        if split_path(path) in BUILT_IN_CALLBACKS:
            module_name, attribute = split_path(path)
            built_in: Callable[..., Any] = getattr(importlib.import_module(module_name), attribute)
            self._cache[path] = built_in
            return built_in
        module_name, attribute, _ = self._checked_spec(field, path)
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise CallbackError(
                field, path, f"cannot import module {module_name!r}: {exc}"
            ) from exc
        except (Exception, SystemExit) as exc:  # its own code failed (or exited) at import
            raise CallbackError(
                field, path, f"importing module {module_name!r} raised {type(exc).__name__}: {exc}"
            ) from exc
        value: Any = module
        try:
            for name in attribute.split("."):
                value = getattr(value, name)
                if isinstance(value, ModuleType):
                    raise CallbackError(
                        field, path, f"{name!r} is a module; name a function defined in it"
                    )
        except AttributeError:
            raise CallbackError(
                field, path, f"module {module_name!r} has no {attribute!r}"
            ) from None
        if not callable(value):
            raise CallbackError(
                field, path, f"{attribute!r} is a {type(value).__name__}, not callable"
            )
        self._check_defined_in_allowed_module(field, path, value)
        callback: Callable[..., Any] = value
        self._cache[path] = callback
        return callback

    def _check_defined_in_allowed_module(self, field: str, path: str, value: Any) -> None:
        """A function re-exported from elsewhere (``from os import system``) counts as
        coming from where it is defined."""
        if not (
            inspect.isfunction(value)
            or inspect.isbuiltin(value)
            or inspect.ismethod(value)
            or inspect.isclass(value)
        ):
            return  # an object the project built (a partial, an instance with __call__)
        defined_in = getattr(value, "__module__", None)
        if not isinstance(defined_in, str):
            raise CallbackError(field, path, "cannot tell which module defines it")
        spec = locate(defined_in)
        refusal = (
            f"module {defined_in!r} cannot be found"
            if spec is None
            else self._refusal(defined_in, spec)
        )
        if refusal is not None:
            raise CallbackError(field, path, f"it is defined in {defined_in!r}: {refusal}")


def _top_level_names(tree: ast.Module) -> set[str]:
    """Names a module binds at its top level (definitions, assignments, imports)."""
    names: set[str] = set()
    for node in _top_level_statements(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names.update(_target_names(target))
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            names.update(_target_names(node.target))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                names.add(alias.asname or alias.name.split(".")[0])
    return names


def _top_level_statements(tree: ast.Module) -> list[ast.stmt]:
    """Top-level statements, including those inside top-level ``if`` / ``try`` blocks."""
    found: list[ast.stmt] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        found.append(node)
        if isinstance(node, ast.If | ast.Try | ast.With):
            pending.extend(getattr(node, "body", []))
            pending.extend(getattr(node, "orelse", []))
            pending.extend(getattr(node, "finalbody", []))
            for handler in getattr(node, "handlers", []):
                pending.extend(handler.body)
    return found


def _target_names(target: ast.expr) -> set[str]:
    if isinstance(target, ast.Name):
        return {target.id}
    if isinstance(target, ast.Tuple | ast.List):
        return {name for element in target.elts for name in _target_names(element)}
    return set()


async def call_callback(callback: Callable[..., Any], *args: Any) -> Any:
    """Call ``callback(*args)``: a coroutine function on the loop, anything else on a daemon
    thread of its own (so a call that blocks never stalls the loop, and a cancelled wait
    leaves no thread that shutdown would wait for). An awaitable result is awaited."""
    if inspect.iscoroutinefunction(callback):
        return await callback(*args)
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any = None, error: BaseException | None = None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def target() -> None:
        try:
            result = callback(*args)
        except BaseException as exc:  # delivered to the awaiting run
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                loop.call_soon_threadsafe(settle, None, exc)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result)

    threading.Thread(target=target, name="scheduler-callback", daemon=True).start()
    value = await future
    if inspect.isawaitable(value):
        value = await value
    return value
