"""Clinical task templates (medgen-core's `tasks`); run one with `Model.run_task`."""

from ._medgen import task_info as info
from ._medgen import task_names as names
from ._medgen import task_sections as sections

__all__ = ["names", "info", "sections"]
