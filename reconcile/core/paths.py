"""Where the shipped data folders (crds/, templates/) are, in a wheel or in a checkout."""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent


def data_dir(name: str) -> Path:
    """The folder `name` ("crds" or "templates"): the wheel's copy first, else the checkout's."""
    installed = _PACKAGE / "data" / name
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / name
