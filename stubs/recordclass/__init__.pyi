# Type stub for the part of recordclass this project uses (the package ships none).
# A dataobject subclass declares its fields as annotations; its constructor takes
# them positionally or by keyword, which mypy cannot see, so it accepts anything.
from typing import Any

class dataobject:
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
