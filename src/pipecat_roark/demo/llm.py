"""A scripted stand-in for a language model: answers from the scenario's rules.

It is a real Pipecat ``LLMService``: it reads the context the aggregators keep, streams its
answer as LLM text frames, and makes tool calls through ``run_function_calls`` so the
function-call frames, the results in the context and the follow-up inference are
Pipecat's own.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    Frame,
    FunctionCallFromLLM,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.llm_service import FunctionCallParams, LLMService
from pipecat.services.settings import LLMSettings
from pipecat.utils.tracing.service_decorators import traced_llm

from ._compat import EndCallFrame, FunctionSchema, ToolsSchema, fill_unset_settings
from .scenarios import BotRule, Scenario

__all__ = ["IDLE_NOTICE", "ScriptedLLMService", "tools_schema"]

MODEL_NAME = "scripted-rules"
# What the pipeline tells the bot when the caller has gone quiet (see the runner).
IDLE_NOTICE = "The caller has been silent for a while."


@dataclass(frozen=True)
class _Reply:
    text: str = ""
    tool: str | None = None
    arguments: Mapping[str, Any] | None = None
    end_call: bool = False


def tools_schema(scenario: Scenario) -> ToolsSchema:
    """The scenario's tools, declared the way an application declares them for any LLM."""
    return ToolsSchema(
        standard_tools=[
            FunctionSchema(
                name=tool.name,
                description=tool.description,
                properties=dict(tool.properties),
                required=list(tool.required),
            )
            for tool in scenario.tools
        ]
    )


class ScriptedLLMService(LLMService):
    """Answers like the scenario's bot would, by rules over what the caller was heard to say.

    Event handlers (besides ``LLMService``'s):

    - on_tool_result(service, name, arguments, result): a scenario tool returned.
    """

    def __init__(self, *, scenario: Scenario, **kwargs: Any) -> None:
        super().__init__(settings=LLMSettings(model=MODEL_NAME), **kwargs)
        fill_unset_settings(self._settings)
        self._scenario = scenario
        self._fired: set[str] = set()
        self._memory: dict[str, Any] = {}
        for tool in scenario.tools:
            self.register_function(tool.name, self._run_tool)
        self._register_event_handler("on_tool_result")

    def can_generate_metrics(self) -> bool:
        return True

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            await self._process_context(frame.context)
        else:
            await self.push_frame(frame, direction)

    @traced_llm  # an "llm" span per answer when the task has enable_tracing=True
    async def _process_context(self, context: Any) -> None:
        await self.push_frame(LLMFullResponseStartFrame())
        await self.start_processing_metrics()
        await self.start_ttfb_metrics()
        reply = self._decide(context.get_messages())
        try:
            await self.stop_ttfb_metrics()
            if reply.text:
                await self.push_frame(LLMTextFrame(reply.text))
            if reply.tool is not None:
                call = FunctionCallFromLLM(
                    function_name=reply.tool,
                    tool_call_id=f"call_{uuid.uuid4().hex[:12]}",
                    arguments=dict(reply.arguments or {}),
                    context=context,
                )
                await self.run_function_calls([call])
        finally:
            await self.stop_processing_metrics()
            await self.push_frame(LLMFullResponseEndFrame())
        if reply.end_call:
            # Hang up once the goodbye has been spoken: the end frame follows it down.
            await self.push_frame(EndCallFrame(), FrameDirection.UPSTREAM)

    async def _run_tool(self, params: FunctionCallParams) -> None:
        tool = self._scenario.tool(params.function_name)
        result = tool.run(dict(params.arguments))
        self._memory.update(result)
        logger.debug(f"{self}: {tool.name}({dict(params.arguments)}) -> {result}")
        await self._call_event_handler("on_tool_result", tool.name, dict(params.arguments), result)
        await params.result_callback(result)

    def _decide(self, messages: Sequence[Any]) -> _Reply:
        conversation = [
            m
            for m in messages
            if isinstance(m, dict) and (m.get("role") != "system" or _is_idle_notice(m))
        ]
        if not conversation:
            return _Reply(text=self._scenario.agent.greeting)
        last = conversation[-1]
        if _is_idle_notice(last):
            return self._after_silence(conversation)
        if last.get("role") == "tool":
            return self._after_tool(conversation, last)
        if last.get("role") == "user":
            return self._after_caller(_text_of(last))
        return _Reply(text=self._scenario.fallback)

    def _after_caller(self, heard: str) -> _Reply:
        words = set(re.findall(r"[a-z']+", heard.lower()))
        for rule in self._scenario.rules:
            if rule.name not in self._fired and words.intersection(rule.keywords):
                self._fired.add(rule.name)
                return self._follow(rule, heard)
        return _Reply(text=self._scenario.fallback)

    def _follow(self, rule: BotRule, heard: str) -> _Reply:
        if rule.tool is None:
            return _Reply(text=rule.say, end_call=rule.end_call)
        arguments = rule.arguments(heard, self._memory) if rule.arguments else {}
        self._memory.update(arguments)
        return _Reply(text=rule.say, tool=rule.tool, arguments=arguments, end_call=rule.end_call)

    def _after_tool(self, conversation: list[dict[str, Any]], message: dict[str, Any]) -> _Reply:
        name = _tool_name(conversation, str(message.get("tool_call_id", "")))
        try:
            result = json.loads(_text_of(message))
        except ValueError:
            result = {}
        if name is None or not isinstance(result, dict):
            return _Reply(text=self._scenario.fallback)
        return _Reply(text=self._scenario.tool(name).reply({**self._memory, **result}))

    def _after_silence(self, conversation: list[dict[str, Any]]) -> _Reply:
        """The n-th silence gets the n-th prompt; the last prompt also hangs up."""
        prompts = self._scenario.idle_prompts
        if not prompts:
            return _Reply()
        silences = sum(1 for m in conversation if _is_idle_notice(m))
        index = min(silences, len(prompts)) - 1
        return _Reply(text=prompts[index], end_call=index == len(prompts) - 1)


def _is_idle_notice(message: Mapping[str, Any]) -> bool:
    return message.get("role") in ("system", "developer") and _text_of(message) == IDLE_NOTICE


def _text_of(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _tool_name(conversation: list[dict[str, Any]], tool_call_id: str) -> str | None:
    for message in reversed(conversation):
        for call in message.get("tool_calls") or ():
            if call.get("id") == tool_call_id:
                return str(call.get("function", {}).get("name"))
    return None
