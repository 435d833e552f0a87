"""The few Pipecat names that moved within 1.x, resolved once for the demo (which needs 1.x:
0.0.x's text aggregation fetches NLTK data from the network)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from pipecat.pipeline.pipeline import Pipeline

try:  # Pipecat 1.3+: workers replace tasks (PipelineTask is a deprecated alias).
    from pipecat.frames.frames import EndWorkerFrame as EndCallFrame
    from pipecat.pipeline.worker import PipelineParams
    from pipecat.pipeline.worker import PipelineWorker as _Task
    from pipecat.workers.runner import WorkerRunner as _Runner

    _WORKERS = True
except ImportError:  # pragma: no cover - Pipecat 1.0-1.3
    from pipecat.frames.frames import EndTaskFrame as EndCallFrame  # type: ignore[assignment]
    from pipecat.pipeline.runner import PipelineRunner as _Runner  # type: ignore[assignment]
    from pipecat.pipeline.task import PipelineParams  # type: ignore[assignment]
    from pipecat.pipeline.task import PipelineTask as _Task  # type: ignore[assignment]

    _WORKERS = False

try:  # Pipecat 1.14 moved the tool schemas.
    from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
    from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
except ImportError:  # pragma: no cover - older Pipecat
    from pipecat.adapters.schemas.function_schema import FunctionSchema  # type: ignore[no-redef]
    from pipecat.adapters.schemas.tools_schema import ToolsSchema  # type: ignore[no-redef]

__all__ = [
    "EndCallFrame",
    "FunctionSchema",
    "PipelineParams",
    "ToolsSchema",
    "fill_unset_settings",
    "new_pipeline_task",
    "run_pipeline_task",
]


def new_pipeline_task(pipeline: Pipeline, **kwargs: Any) -> Any:
    """``PipelineWorker`` where Pipecat has it, ``PipelineTask`` before; same arguments."""
    return _Task(pipeline, **kwargs)


async def run_pipeline_task(task: Any) -> None:
    """Runs the task to its end without taking over the process's signal handlers."""
    runner = _Runner(handle_sigint=False)
    if _WORKERS:
        await runner.add_workers(task)
        await runner.run()
    else:  # pragma: no cover - older Pipecat
        await runner.run(task)


def fill_unset_settings(settings: Any, **values: Any) -> None:
    """Gives every setting a value (``None``: not supported), as Pipecat expects of a service."""
    try:
        from pipecat.utils.types import is_given
    except ImportError:  # pragma: no cover - older Pipecat keeps it beside the settings
        from pipecat.services.settings import is_given  # type: ignore[attr-defined,no-redef]
    for setting in fields(settings):
        if setting.name != "extra" and not is_given(getattr(settings, setting.name)):
            setattr(settings, setting.name, values.get(setting.name))
