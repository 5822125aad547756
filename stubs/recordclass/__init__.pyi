# Type stub for the part of recordclass this project uses (the package ships none).
# A dataobject subclass declares its fields as annotations; its constructor takes
# them positionally or by keyword, which mypy cannot see, so it accepts anything.
from typing import Any

# recordclass makes each dataobject class with its own metaclass; saying so here also tells
# mypyc (setup.py) to leave these classes as ordinary Python classes: a compiled class
# cannot have a metaclass, and the compact records are what saves the memory.
class datatype(type): ...

class dataobject(metaclass=datatype):
    def __init_subclass__(
        cls,
        *,
        readonly: bool = ...,
        hashable: bool = ...,
        fast_new: bool = ...,
        gc: bool = ...,
        **kwargs: Any,
    ) -> None: ...
    def __init__(self, *args: Any, **kwargs: Any) -> None: ...
