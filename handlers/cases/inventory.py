"""The data inventory (`systems.toml`): where a requester's data may live and what each right
asks there, turned into a per-case checklist.

`load_inventory(path)` reads and validates a file once at start; `checklist_for(inventory, labels)`
is a pure function from a case's rights to its checklist items.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from core.errors import ConfigError

__all__ = ["ACTIONS", "Inventory", "System", "checklist_for", "load_inventory"]

RIGHTS = ("access", "portability", "rectification", "erasure", "restriction", "objection")
#: What each action asks staff to do, as the checklist says it.
ACTIONS = {
    "export": "export",
    "correct": "correct",
    "erase": "erase",
    "restrict": "restrict (keep, do not use)",
    "stop": "stop the processing",
    "notify": "notify them (art. 19)",
    "refer": "refer the requester to them",
    "nothing": "check: nothing identifiable",
}
#: Order in which several actions for one system are done (export before erasure, say).
_ORDER = ("export", "correct", "restrict", "stop", "erase", "notify", "refer", "nothing")


@dataclass(frozen=True, slots=True)
class System:
    """One system of the inventory."""

    key: str
    name: str
    holds: str
    third_party: bool
    actions: dict[str, str]  # right -> action

    def action_for(self, right: str) -> str:
        """What `right` asks of this system ("nothing" when the inventory says nothing)."""
        return self.actions.get(right, "nothing")


@dataclass(frozen=True, slots=True)
class Inventory:
    """The systems, in the order of the file."""

    systems: tuple[System, ...]


def load_inventory(path: Path | None = None) -> Inventory:
    """Read and validate an inventory file (the packaged iMAL inventory when `path` is None).

    Raises `ConfigError` naming SYSTEMS_FILE and the problem when the file is unusable.
    """
    try:
        if path is None:
            text = (resources.files("handlers.cases") / "data" / "systems.toml").read_text(encoding="utf-8")
        else:
            text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError("SYSTEMS_FILE", f"cannot read the data inventory: {e}") from None
    systems = []
    seen = set()
    for n, entry in enumerate(data.get("system") or [], start=1):
        key, name = str(entry.get("key", "")).strip(), str(entry.get("name", "")).strip()
        if not key or not name or key in seen:
            raise ConfigError("SYSTEMS_FILE", f"system #{n} needs a unique key and a name")
        seen.add(key)
        actions = {}
        for right in RIGHTS:
            action = entry.get(right)
            if action is None:
                continue
            if action not in ACTIONS:
                raise ConfigError("SYSTEMS_FILE", f"system {key}: unknown action {action!r} for {right}")
            actions[right] = str(action)
        systems.append(
            System(
                key=key,
                name=name[:60],
                holds=str(entry.get("holds", ""))[:150],
                third_party=bool(entry.get("third_party", False)),
                actions=actions,
            )
        )
    if not systems:
        raise ConfigError("SYSTEMS_FILE", "the data inventory lists no [[system]]")
    return Inventory(tuple(systems))


def checklist_for(inventory: Inventory, labels: Sequence[str]) -> list[tuple[str, str, str, str]]:
    """The checklist items (system key, system name, action, what to do) for a case asking for `labels`.

    One item per system; when the rights ask several things of one system they are combined in
    the order they are done ("export+erase"). No item at all when no right is asked (complaints
    and other mail have no checklist of their own).
    """
    rights = [r for r in labels if r in RIGHTS]
    if not rights:
        return []
    items = []
    for system in inventory.systems:
        wanted = {system.action_for(r) for r in rights}
        if len(wanted) > 1:
            wanted.discard("nothing")
        action = "+".join(a for a in _ORDER if a in wanted)
        label = ", then ".join(ACTIONS[a] for a in action.split("+"))
        label = label[0].upper() + label[1:]
        items.append((system.key, system.name, action, label))
    return items
