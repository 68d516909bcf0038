"""Pydantic models of the CDS Hooks 2.0 feedback body, and `parse_feedback` that turns a body into items."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

MAX_FEEDBACK_ITEMS = 100
# Suggestion ids take part in the store's de-duplication key, so their size is bounded.
MAX_ACCEPTED_SUGGESTIONS = 16
MAX_SUGGESTION_ID_LENGTH = 64
MAX_CODE_LENGTH = 128
MAX_SYSTEM_LENGTH = 512
MAX_ERRORS_REPORTED = 5

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# RFC 3339 §5.6 date-time; an offset is required (the spec asks for UTC, we accept any offset and convert).
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)


class FeedbackError(ValueError):
    """The feedback body is unusable; `message` names the problem and never quotes the body."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _FeedbackPart(BaseModel):
    # Extensions and unknown fields are allowed by CDS Hooks; they are ignored, not kept.
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Coding(_FeedbackPart):
    code: str = Field(min_length=1, max_length=MAX_CODE_LENGTH)
    system: str = Field(min_length=1, max_length=MAX_SYSTEM_LENGTH)
    display: str | None = None


class AcceptedSuggestion(_FeedbackPart):
    id: str = Field(min_length=1, max_length=MAX_SUGGESTION_ID_LENGTH)


class OverrideReason(_FeedbackPart):
    reason: Coding | None = None
    user_comment: str | None = Field(default=None, alias="userComment")

    @model_validator(mode="after")
    def _reason_or_comment(self) -> OverrideReason:
        # cds-fb-3: an override reason carries a coded reason or a comment.
        if self.reason is None and not self.has_user_comment:
            raise PydanticCustomError("cds_fb_3", "overrideReason needs reason or userComment (cds-fb-3)")
        return self

    @property
    def has_user_comment(self) -> bool:
        return self.user_comment is not None and self.user_comment.strip() != ""


class FeedbackItem(_FeedbackPart):
    """One Feedback object; `card` is lower-cased and `outcome_timestamp` is an aware UTC datetime."""

    card: str
    outcome: Literal["accepted", "overridden"]
    accepted_suggestions: tuple[AcceptedSuggestion, ...] | None = Field(
        default=None, alias="acceptedSuggestions", max_length=MAX_ACCEPTED_SUGGESTIONS
    )
    override_reason: OverrideReason | None = Field(default=None, alias="overrideReason")
    outcome_timestamp: datetime = Field(alias="outcomeTimestamp")

    @field_validator("card", mode="before")
    @classmethod
    def _card_is_uuid(cls, value: object) -> str:
        if not isinstance(value, str):
            raise PydanticCustomError("card_type", "must be a string (the card's uuid)")
        if not _UUID.match(value):
            raise PydanticCustomError("card_uuid", "must be a uuid (8-4-4-4-12 hexadecimal digits)")
        return value.lower()

    @field_validator("outcome_timestamp", mode="before")
    @classmethod
    def _timestamp_is_rfc3339(cls, value: object) -> datetime:
        if not isinstance(value, str):
            raise PydanticCustomError("timestamp_type", "must be a string (an RFC 3339 date-time)")
        parsed = parse_rfc3339(value)
        if parsed is None:
            raise PydanticCustomError(
                "timestamp_format", "must be an RFC 3339 date-time with offset, e.g. 2021-12-11T10:05:31Z"
            )
        return parsed

    @model_validator(mode="after")
    def _outcome_rules(self) -> FeedbackItem:
        if self.outcome == "accepted":
            # cds-fb-2: an accepted card names the suggestion(s) accepted.
            if not self.accepted_suggestions:
                raise PydanticCustomError(
                    "cds_fb_2", "outcome accepted needs a non-empty acceptedSuggestions (cds-fb-2)"
                )
            if self.override_reason is not None:
                raise PydanticCustomError(
                    "accepted_with_override", "overrideReason is only allowed with outcome overridden"
                )
        elif self.accepted_suggestions:
            # The spec: "an entire card is either ignored or overridden".
            raise PydanticCustomError(
                "overridden_with_suggestions", "outcome overridden must not carry acceptedSuggestions"
            )
        return self

    @property
    def accepted_suggestion_ids(self) -> tuple[str, ...]:
        """The accepted suggestion ids as a set (sorted, no repeats), so equal feedback compares equal."""
        return tuple(sorted({s.id for s in self.accepted_suggestions or ()}))

    @property
    def has_user_comment(self) -> bool:
        return self.override_reason is not None and self.override_reason.has_user_comment


def parse_rfc3339(text: str) -> datetime | None:
    """An RFC 3339 date-time as an aware UTC datetime (fractions beyond microseconds are cut), else None."""
    match = _RFC3339.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    microsecond = int((fraction or "0")[:6].ljust(6, "0"))
    if second == "60":  # a leap second (RFC 3339 allows it, datetime does not): the instant just before
        second, microsecond = "59", 999_999
    try:
        if zulu:
            tz = UTC
        else:
            if int(off_h) > 23 or int(off_m) > 59:
                return None
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            tz = timezone(offset if sign == "+" else -offset)
        local = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), microsecond, tzinfo=tz
        )
    except ValueError:  # out-of-range fields
        return None
    return local.astimezone(UTC)


def parse_feedback(body: object) -> list[FeedbackItem]:
    """The feedback items of a decoded JSON body; raises FeedbackError naming the first problems found."""
    if not isinstance(body, dict):
        raise FeedbackError("request body must be a JSON object")
    if "feedback" not in body:
        raise FeedbackError("feedback is required")
    raw_items = body["feedback"]
    if not isinstance(raw_items, list):
        raise FeedbackError("feedback must be an array")
    if not raw_items:
        raise FeedbackError("feedback must not be empty")
    if len(raw_items) > MAX_FEEDBACK_ITEMS:
        raise FeedbackError(f"feedback has more than {MAX_FEEDBACK_ITEMS} items")
    items: list[FeedbackItem] = []
    problems: list[str] = []
    for index, raw in enumerate(raw_items):
        where = f"feedback[{index}]"
        if not isinstance(raw, dict):
            problems.append(f"{where}: must be an object")
            continue
        try:
            items.append(FeedbackItem.model_validate(raw))
        except ValidationError as exc:
            problems.extend(
                _describe(where, error) for error in exc.errors(include_input=False, include_url=False)
            )
        if len(problems) >= MAX_ERRORS_REPORTED:
            break
    if problems:
        raise FeedbackError("; ".join(problems[:MAX_ERRORS_REPORTED]))
    return items


def _describe(where: str, error: Any) -> str:
    # Locations are built from field names and list indices only (extra keys are ignored), and messages
    # come from pydantic or from this module without the input, so nothing from the body is quoted.
    path = where
    for part in error["loc"]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    if error["type"] == "missing":
        return f"{path}: is required"
    return f"{path}: {error['msg']}"
