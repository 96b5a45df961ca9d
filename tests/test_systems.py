"""The data inventory and the checklists it gives each case."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from handlers.cases.inventory import checklist_for, load_inventory


def test_the_shipped_inventory_is_imals() -> None:
    inventory = load_inventory()
    names = [s.name for s in inventory.systems]
    assert names == [
        "Website database",
        "Newsletter (hosting provider)",
        "Registration e-mails",
        "Eventbrite",
        "Workshop leaders",
        "Matomo analytics",
        "Server logs",
    ]
    eventbrite = next(s for s in inventory.systems if s.key == "eventbrite")
    assert eventbrite.third_party and eventbrite.action_for("access") == "refer"
    assert eventbrite.action_for("erasure") == "notify"
    matomo = next(s for s in inventory.systems if s.key == "matomo")
    assert all(matomo.action_for(r) == "nothing" for r in ("access", "erasure", "objection"))


def test_checklist_per_kind() -> None:
    inventory = load_inventory()
    access = {key: action for key, _, action, _ in checklist_for(inventory, ["access"])}
    assert access == {
        "website": "export",
        "newsletter": "export",
        "notifications": "export",
        "eventbrite": "refer",
        "event_partners": "export",
        "matomo": "nothing",
        "server_logs": "export",
    }
    both = {key: action for key, _, action, _ in checklist_for(inventory, ["access", "erasure"])}
    assert both["website"] == "export+erase"  # export first, then erase
    assert both["server_logs"] == "export"  # logs expire by themselves
    objection = {key: action for key, _, action, _ in checklist_for(inventory, ["objection"])}
    assert objection["newsletter"] == "stop" and objection["notifications"] == "nothing"
    assert checklist_for(inventory, ["complaint"]) == [] and checklist_for(inventory, ["other"]) == []
    assert all(len(label) <= 80 for *_, label in checklist_for(inventory, ["access", "erasure"]))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("not toml = = =", "cannot read"),
        ("", "lists no [[system]]"),
        ('[[system]]\nname = "No key"', "unique key and a name"),
        ('[[system]]\nkey = "a"\nname = "A"\n[[system]]\nkey = "a"\nname = "B"', "unique key"),
        ('[[system]]\nkey = "a"\nname = "A"\naccess = "shred"', "unknown action 'shred'"),
    ],
)
def test_a_broken_inventory_names_the_setting(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "systems.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_inventory(path)
    assert e.value.setting == "SYSTEMS_FILE" and problem in str(e.value)


def test_a_missing_inventory_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SYSTEMS_FILE"):
        load_inventory(tmp_path / "nope.toml")
