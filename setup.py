"""Build hook: ship the top-level crds/ and templates/ folders inside the wheel.

They live at the top of the checkout (where users read and edit them); the wheel carries
copies under reconcile/data/ so an installed package finds them (reconcile.core.paths).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).parent
SHIPPED = ("crds", "templates")


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        for folder in SHIPPED:
            source = ROOT / folder
            target = Path(self.build_lib) / "reconcile" / "data" / folder
            if source.is_dir():
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(source, target)


setup(cmdclass={"build_py": BuildWithData})
