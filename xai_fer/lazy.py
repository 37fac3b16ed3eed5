"""numpy, imported on first use.

``xai-fer plugins`` and ``--help`` import every plugin module and must answer in under 0.3 s; numpy alone takes
about 80 ms of that. Modules that are imported when plugins register write ``from xai_fer.lazy import np``:
the first attribute looked up on ``np`` imports numpy, later ones go straight to it.
"""

import importlib


class _LazyModule:
    def __init__(self, name: str):
        self.__dict__["_name"] = name
        self.__dict__["_module"] = None

    def __getattr__(self, attribute: str):
        module = self.__dict__["_module"]
        if module is None:
            module = self.__dict__["_module"] = importlib.import_module(self.__dict__["_name"])
        return getattr(module, attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self.__dict__['_name']!r}>"


np = _LazyModule("numpy")
