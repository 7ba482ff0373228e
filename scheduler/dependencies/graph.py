"""The links between tasks (``after``): checked where tasks are written, and drawn.

Every write of tasks (add, edit, a tasks file applied) checks, in its transaction, that
each upstream a task names exists (or is written in the same change) and that the links
make no cycle; a removal checks that no remaining task runs after a removed one. A
refusal names the tasks (``after: a cycle: fetch -> report -> fetch``) and changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping

from scheduler.exceptions import DependencyError
from scheduler.models import TaskDefinition
from scheduler.storage import Transaction

__all__ = ["check_links", "check_removal", "draw", "links_of"]


def links_of(tasks: Iterable[TaskDefinition]) -> list[tuple[str, str]]:
    """The (downstream, upstream) pairs of ``tasks``."""
    return [(task.id, up) for task in tasks if task.after is not None for up in task.after.tasks]


def check_links(
    tx: Transaction, tasks: Collection[TaskDefinition], *, removing: Collection[str] = ()
) -> list[tuple[str, str]]:
    """Check the links of ``tasks`` (about to be written) against the stored ones; returns
    their links.

    Raises:
        DependencyError: An upstream that is not a task (or is being removed), or a cycle.
    """
    written = {task.id for task in tasks}
    new = links_of(tasks)
    if not new:
        return []  # links only go away: no unknown upstream, no new cycle
    links = [(d, u) for d, u in tx.all_links()]
    stored = set(links)
    kept = [(d, u) for d, u in links if d not in written and d not in removing]
    wanted = {u for _, u in new} - written
    present = set(tx.get_tasks(wanted)) - set(removing)
    for downstream, upstream in new:
        # a link kept from a forced removal (to a task gone) stays: the task's other fields
        # can still be changed; a new one to no task is refused
        dangling = (downstream, upstream) in stored and upstream not in removing
        if upstream not in written and upstream not in present and not dangling:
            raise DependencyError(
                f"after: task {downstream!r} runs after {upstream!r}, which is not a task "
                "(add it first, or in the same change)"
            )
    cycle = _cycle([*kept, *new], start={d for d, _ in new})
    if cycle is not None:
        raise DependencyError(f"after: a cycle: {' -> '.join(cycle)} (tasks run after each other)")
    return new


def check_removal(tx: Transaction, task_ids: Collection[str]) -> None:
    """Refuse to remove tasks that remaining tasks run after.

    Raises:
        DependencyError: Names each removed task and the tasks that run after it.
    """
    needed: dict[str, list[str]] = defaultdict(list)
    for downstream, upstream in tx.links_from(task_ids):
        if downstream not in task_ids:
            needed[upstream].append(downstream)
    if needed:
        parts = [
            f"{up} (needed by {', '.join(sorted(downs))})" for up, downs in sorted(needed.items())
        ]
        raise DependencyError(
            f"other tasks run after {'; '.join(parts)}: remove or change those first, or "
            "force the removal (they then wait for a task that does not exist)"
        )


def _cycle(links: Iterable[tuple[str, str]], *, start: Collection[str]) -> list[str] | None:
    """A cycle through one of ``start``, in run order (``a -> b``: b runs after a)."""
    upstreams: dict[str, list[str]] = defaultdict(list)
    for downstream, upstream in links:
        upstreams[downstream].append(upstream)
    done: set[str] = set()
    for origin in sorted(start):
        path: list[str] = []
        on_path: set[str] = set()
        stack: list[tuple[str, int]] = [(origin, 0)]
        while stack:
            node, index = stack.pop()
            if index == 0:
                if node in on_path:
                    loop = [*path[path.index(node) :], node]
                    return list(reversed(loop))
                if node in done:
                    continue
                path.append(node)
                on_path.add(node)
            children = upstreams.get(node, [])
            if index < len(children):
                stack.append((node, index + 1))
                stack.append((children[index], 0))
            else:
                done.add(node)
                on_path.discard(path.pop())
    return None


def draw(links: Iterable[tuple[str, str]], words: Mapping[str, str]) -> list[str]:
    """The dependency graph as text lines: each task that others run after, with the tasks
    that run after it indented below (``words`` says when each runs)."""
    downstreams: dict[str, list[str]] = defaultdict(list)
    has_upstream: set[str] = set()
    for downstream, upstream in links:
        downstreams[upstream].append(downstream)
        has_upstream.add(downstream)
    roots = sorted(set(downstreams) - has_upstream) or sorted(downstreams)
    lines: list[str] = []
    shown: set[str] = set()

    # depth first, with a stack of its own: a chain of thousands of tasks is no recursion
    stack = [(root, 0) for root in reversed(roots)]
    while stack:
        node, depth = stack.pop()
        if depth == 0:
            label = node if node in words else f"{node}  (not a task: removed with force)"
        else:
            label = f"-> {node}  ({words.get(node, '?')})"
        if node in shown and node in downstreams:
            lines.append("   " * depth + label + "  (see above)")
            continue
        lines.append("   " * depth + label)
        shown.add(node)
        stack.extend(
            (child, depth + 1) for child in sorted(downstreams.get(node, []), reverse=True)
        )
    return lines
