"""Where the classifier's model file is: the one `privacy-desk train` wrote next to the database,
else the one bundled with the package. Standard library only, so the runtime can ask cheaply."""

from __future__ import annotations

from pathlib import Path

__all__ = ["BUNDLED_MODEL_FILE", "model_file", "trained_model_file"]

#: The model shipped with the package (the same file as `handlers.classify.model.BUNDLED_MODEL`).
BUNDLED_MODEL_FILE = Path(__file__).resolve().parent / "data" / "model.json.gz"


def trained_model_file(database_path: Path | str) -> Path:
    """Where `privacy-desk train` installs the model for this database: `<database>.model.json.gz`."""
    path = Path(database_path)
    return path.with_name(f"{path.name}.model.json.gz")


def model_file(database_path: Path | str) -> Path:
    """The newest model for this database: the trained one next to it if present, else the
    bundled one."""
    trained = trained_model_file(database_path)
    return trained if trained.is_file() else BUNDLED_MODEL_FILE
