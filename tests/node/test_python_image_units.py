"""The Python image's file plan: a package belongs to the deepest package directory holding it."""

from __future__ import annotations

from pathlib import Path

from tests import python_image


def test_a_venv_inside_the_checkout_is_its_own_site(tmp_path: Path) -> None:
    """CI's clean clone keeps its .venv inside the checkout, which is also on the path: click must
    land at /opt/python/click, not under a copied `.venv` (the pod then failed: no module click)."""
    checkout = tmp_path / "checkout"
    site = checkout / ".venv" / "lib" / "python3.11" / "site-packages"
    (site / "click").mkdir(parents=True)
    module = site / "click" / "core.py"
    module.write_text("")
    for order in ([checkout, site], [site, checkout]):
        assert python_image._top_level(module, order) == (site, site / "click")
    (checkout / "reconcile").mkdir()
    (checkout / "reconcile" / "__init__.py").write_text("")
    assert python_image._top_level(checkout / "reconcile" / "__init__.py", [checkout, site]) == \
        (checkout, checkout / "reconcile")
