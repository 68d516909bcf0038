"""Pydantic models of the CDS Hooks 2.0 `patient-view` request, and turning pydantic errors into one line."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cds_service.hooks import orders
from cds_service.hooks.patient_view import HOOK, PatientViewCall

# Unknown fields are allowed everywhere: `extension`, 3.0 additions and vendor fields must not break a call.
_OPEN = ConfigDict(extra="allow")


class FhirAuthorization(BaseModel):
    """CDS Hooks 2.0 §Passing the Access Token. The token is transient: never logged, never stored."""

    model_config = _OPEN

    access_token: str = Field(min_length=1, repr=False)
    token_type: str
    expires_in: int
    scope: str
    subject: str
    patient: str | None = None

    @field_validator("token_type")
    @classmethod
    def _bearer(cls, value: str) -> str:
        if value.lower() != "bearer":
            raise ValueError("token_type must be Bearer")
        return value


class PatientViewContext(BaseModel):
    """`patient-view` context. `userId` is required by the hook but not needed here, so it may be missing."""

    model_config = _OPEN

    patientId: str = Field(min_length=1, max_length=256)
    userId: str | None = None
    encounterId: str | None = None

    @field_validator("patientId")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("patientId must not be blank")
        return value


class PatientViewRequest(BaseModel):
    """A `patient-view` call (CDS Hooks 2.0 §Calling a CDS Service)."""

    model_config = _OPEN

    hook: str
    hookInstance: str = Field(min_length=1)
    fhirServer: str | None = Field(default=None, min_length=1)
    fhirAuthorization: FhirAuthorization | None = None
    context: PatientViewContext
    prefetch: dict[str, dict[str, Any] | None] | None = None

    @field_validator("hook")
    @classmethod
    def _patient_view(cls, value: str) -> str:
        if value != HOOK:
            raise ValueError(f"this service answers the {HOOK} hook only")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PatientViewRequest:
        if self.fhirAuthorization is not None:
            if self.fhirServer is None:
                raise ValueError("fhirServer is required with fhirAuthorization")
            granted = self.fhirAuthorization.patient
            if granted is not None and granted != self.context.patientId:
                raise ValueError("fhirAuthorization.patient names another patient than context.patientId")
        return self

    def to_call(self) -> PatientViewCall:
        return PatientViewCall(
            patient_id=self.context.patientId,
            context=self.context.model_dump(exclude_none=True),
            prefetch=self.prefetch,
            fhir_server=self.fhirServer,
            access_token=self.fhirAuthorization.access_token if self.fhirAuthorization else None,
        )


class OrderContext(PatientViewContext):
    """`order-select` / `order-sign` context (CDS Hooks 2.0): `draftOrders` must be a FHIR Bundle; its entries
    that are not ServiceRequests are ignored. `selections` are references into it (order-select)."""

    draftOrders: dict[str, Any]
    selections: list[str] | None = None

    @field_validator("draftOrders")
    @classmethod
    def _bundle(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("resourceType") != "Bundle":
            raise ValueError("draftOrders must be a FHIR Bundle (resourceType Bundle)")
        if not isinstance(value.get("entry", []), list):
            raise ValueError("draftOrders.entry must be a list")
        return value

    def draft_resources(self) -> list[dict[str, Any]]:
        entries = self.draftOrders.get("entry", [])
        return [e["resource"] for e in entries if isinstance(e, dict) and isinstance(e.get("resource"), dict)]


class OrderRequest(PatientViewRequest):
    """An `order-select` or `order-sign` call: patient-view's request with the order context."""

    context: OrderContext

    @field_validator("hook")
    @classmethod
    def _patient_view(cls, value: str) -> str:  # overrides patient-view's hook check
        if value not in (orders.SELECT_HOOK, orders.SIGN_HOOK):
            raise ValueError(f"this service answers the {orders.SELECT_HOOK} or {orders.SIGN_HOOK} hook only")
        return value

    def to_order_call(self, service_id: str) -> orders.OrderCall:
        hook = orders.HOOKS[service_id]
        if self.hook != hook:
            raise ValueError(f"this service answers the {hook} hook only")
        drafts = self.context.draft_resources()
        if hook == orders.SELECT_HOOK:
            if self.context.selections is None:
                raise ValueError("context.selections is required for order-select")
            # "ServiceRequest/<id>" (a bare id is read as a ServiceRequest id)
            concerned = frozenset(s if "/" in s else f"ServiceRequest/{s}" for s in self.context.selections)
        else:
            concerned = frozenset(
                f"ServiceRequest/{r.get('id')}" for r in drafts if r.get("resourceType") == "ServiceRequest"
            )
        record = self.to_call()
        context = {k: v for k, v in record.context.items() if k not in ("draftOrders", "selections")}
        return orders.OrderCall(
            record=PatientViewCall(
                patient_id=record.patient_id,
                context=context,
                prefetch=record.prefetch,
                fhir_server=record.fhir_server,
                access_token=record.access_token,
            ),
            drafts=drafts,
            concerned=concerned,
        )


def describe_errors(error: ValidationError, limit: int = 5) -> str:
    """`context.patientId: Field required; hook: ...` — locations and messages, never the values sent."""
    parts = []
    for item in error.errors(include_url=False, include_input=False, include_context=False)[:limit]:
        location = ".".join(str(part) for part in item["loc"]) or "body"
        parts.append(f"{location}: {item['msg']}")
    more = error.error_count() - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)
