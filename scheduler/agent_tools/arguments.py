"""What the model sees of the scheduling tools: their names, descriptions and argument
schemas (short, explicit, with examples), and the answer to arguments that do not fit."""

from __future__ import annotations

from pydantic import BaseModel, Field, ValidationError, field_validator

from scheduler.control_characters import OneLine, Prose
from scheduler.exceptions import describe_errors
from scheduler.limits import TEXT_LIMITS

__all__ = ["DESCRIPTIONS", "NoArgs", "ScheduleArgs", "TaskIdArgs", "invalid_arguments"]

# The task's prompt is the model's behind a header ("[Scheduled follow-up ... for 'when']"),
# whose ``when`` is at most 256 characters (each at most 10 in its repr): room kept for it.
PROMPT_CHARS = TEXT_LIMITS["prompt"] - 4_000


class ScheduleArgs(BaseModel):
    when: str = Field(
        description="When, in the user's words; never compute a time yourself. Once: 'in 30 "
        "minutes', 'in 2 hours', 'today at 17:30', 'tomorrow at 9:00', '2026-05-01 09:00'. "
        "Repeating: 'every weekday at 08:00', 'every monday at 9am', 'every 2 hours', or a "
        "cron expression such as '0 9 * * 1-5'."
    )
    prompt: Prose = Field(  # (checked here too: its position is then the model's own)
        max_length=PROMPT_CHARS,
        description="What you will be told when it fires, written to yourself, e.g. 'Check "
        "whether the api v2 deploy succeeded and tell the user.'",
    )
    name: OneLine = Field(default="", description="A short label, e.g. 'deploy check'.")
    new_conversation: bool = Field(
        default=False,
        description="true: each run starts a new conversation instead of coming back here.",
    )
    timezone: str | None = Field(
        default=None,
        description="An IANA zone such as 'Europe/Paris', only when the user names one; "
        "by default times are in the user's zone.",
    )

    @field_validator("prompt")
    @classmethod
    def _check_prompt(cls, value: str) -> str:
        # (checked here: with the header in front, the task's own check never sees it empty)
        if not value.strip():
            raise ValueError("the prompt is empty; write what you will be told when it fires")
        return value


class TaskIdArgs(BaseModel):
    task_id: str = Field(
        description="The task's id, as schedule_task or list_scheduled_tasks gave it."
    )


class NoArgs(BaseModel):
    pass


DESCRIPTIONS = {
    "schedule_task": "Schedule a follow-up for yourself: at the time given, you are sent the "
    "prompt in this conversation and answer it then. Use it for reminders, checks later and "
    "recurring jobs. The answer says when it will run; tell the user those times.",
    "list_scheduled_tasks": "List the follow-ups scheduled from this conversation: id, "
    "schedule, next run, state and the last run's outcome.",
    "cancel_scheduled_task": "Cancel a scheduled follow-up for good.",
    "pause_scheduled_task": "Pause a scheduled follow-up; it does not run until resumed.",
    "resume_scheduled_task": "Resume a paused follow-up.",
}


def invalid_arguments(exc: Exception) -> str:
    detail = describe_errors(exc) if isinstance(exc, ValidationError) else str(exc)
    return f"Nothing was done: invalid arguments: {detail}. Fix them and call the tool again."
