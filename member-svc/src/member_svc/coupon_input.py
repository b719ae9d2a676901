"""Coupon requests checked field by field and turned into domain values (and back to proto).

Every problem of a request is reported at once, each naming its field
(`template.amount_off.amount`, `lines[2].quantity`); nothing is written before this passes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime

from member_svc.convert import (
    CHANNEL_FROM_PROTO,
    CHANNEL_TO_PROTO,
    from_timestamp,
    money,
    optional_timestamp,
    timestamp,
)
from member_svc.coupon_domain import (
    DEFAULT_CURRENCY,
    MAX_PER_MEMBER_LIMIT,
    MAX_VALID_DAYS,
    Coupon,
    CouponKind,
    CouponScope,
    CouponStatus,
    CouponTemplate,
    Evaluation,
    Line,
    LineDiscount,
    TemplateStatus,
)
from member_svc.coupon_errors import permission_denied
from member_svc.domain import Actor, ActorKind, Channel
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2
from retail_kit.errors import FieldViolation, invalid_argument
from retail_kit.validation import MAX_BATCH_SIZE, id_violation

CLAIM_CODE = re.compile(r"^[A-Z0-9]{4,16}$")
MAX_NAME_LENGTH = 100
MAX_LINES = 500
MAX_SCOPE_IDS = MAX_BATCH_SIZE
LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")

KIND_TO_PROTO = {
    CouponKind.FIXED: member_pb2.COUPON_KIND_FIXED,
    CouponKind.PERCENT: member_pb2.COUPON_KIND_PERCENT,
    CouponKind.THRESHOLD: member_pb2.COUPON_KIND_THRESHOLD,
}
KIND_FROM_PROTO = {number: kind for kind, number in KIND_TO_PROTO.items()}
TEMPLATE_STATUS_TO_PROTO = {
    TemplateStatus.ACTIVE: member_pb2.COUPON_TEMPLATE_STATUS_ACTIVE,
    TemplateStatus.PAUSED: member_pb2.COUPON_TEMPLATE_STATUS_PAUSED,
}
TEMPLATE_STATUS_FROM_PROTO = {n: s for s, n in TEMPLATE_STATUS_TO_PROTO.items()}
COUPON_STATUS_TO_PROTO = {
    CouponStatus.ISSUING: member_pb2.COUPON_STATUS_UNSPECIFIED,
    CouponStatus.AVAILABLE: member_pb2.COUPON_STATUS_AVAILABLE,
    CouponStatus.LOCKED: member_pb2.COUPON_STATUS_LOCKED,
    CouponStatus.REDEEMED: member_pb2.COUPON_STATUS_REDEEMED,
    CouponStatus.EXPIRED: member_pb2.COUPON_STATUS_EXPIRED,
}
COUPON_STATUS_FROM_PROTO = {
    n: s for s, n in COUPON_STATUS_TO_PROTO.items() if s is not CouponStatus.ISSUING
}
TEMPLATE_WRITERS = (ActorKind.ADMIN, ActorKind.STORE_MANAGER)


# -- small checks ----------------------------------------------------------------------------


def money_amount(
    field: str, value: common_pb2.Money, violations: list[FieldViolation], *, positive: bool
) -> int:
    """The amount in fen of a CNY Money (empty currency means CNY)."""
    if value.currency and value.currency != DEFAULT_CURRENCY:
        violations.append(
            FieldViolation(
                f"{field}.currency", f"must be {DEFAULT_CURRENCY}, got {value.currency!r}"
            )
        )
    if positive and value.amount <= 0:
        violations.append(FieldViolation(f"{field}.amount", "must be greater than 0"))
    elif value.amount < 0:
        violations.append(FieldViolation(f"{field}.amount", "must not be negative"))
    return int(value.amount)


def ids(field: str, values: Sequence[str], violations: list[FieldViolation]) -> tuple[str, ...]:
    distinct = list(dict.fromkeys(values))
    if len(distinct) > MAX_SCOPE_IDS:
        violations.append(FieldViolation(field, f"at most {MAX_SCOPE_IDS} ids"))
        return ()
    for i, value in enumerate(distinct):
        if violation := id_violation(f"{field}[{i}]", value):
            violations.append(violation)
    return tuple(distinct)


def channel_from_proto(
    field: str, value: int, violations: list[FieldViolation], *, required: bool = False
) -> Channel | None:
    """A known channel; unspecified is None (allowed unless `required`)."""
    if value == common_pb2.CHANNEL_UNSPECIFIED:
        if required:
            violations.append(FieldViolation(field, "is required"))
        return None
    channel: Channel | None = CHANNEL_FROM_PROTO.get(value)  # type: ignore[call-overload]
    if channel is None:
        violations.append(FieldViolation(field, f"{value} is not a known channel"))
    return channel


def claim_code_of(text: str) -> str:
    """Claim codes are typed by people: case and surrounding spaces do not matter."""
    return text.strip().upper()


# -- templates -------------------------------------------------------------------------------


def template_fingerprint(template: member_pb2.CouponTemplate) -> str:
    """What makes two CreateCouponTemplate requests the same (output fields left out)."""
    copy = member_pb2.CouponTemplate()
    copy.CopyFrom(template)
    copy.ClearField("issued_count")
    copy.ClearField("create_time")
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()[:32]


def template_id_for(request_id: str) -> str:
    return "ct_" + hashlib.sha256(request_id.encode()).hexdigest()[:16]


def check_template_writer(actor: Actor) -> None:
    """PERMISSION_DENIED unless an admin or a store manager (of a store) asks."""
    if actor.kind not in TEMPLATE_WRITERS:
        raise permission_denied("only an admin or a store manager manages coupon templates")
    if actor.kind is ActorKind.STORE_MANAGER and not actor.store_id:
        raise permission_denied("a store manager acts for a store", "actor.store_id")


def template_from_request(
    request: member_pb2.CreateCouponTemplateRequest, actor: Actor, now: datetime
) -> CouponTemplate:
    """The template to create, or INVALID_ARGUMENT naming every bad field."""
    check_template_writer(actor)
    t = request.template
    violations: list[FieldViolation] = []
    template_id = t.id
    if template_id:
        if violation := id_violation("template.id", template_id):
            violations.append(violation)
    elif not request.request_id:
        violations.append(FieldViolation("request_id", "is required when template.id is empty"))
    else:
        template_id = template_id_for(request.request_id)
    if request.request_id and len(request.request_id) > 128:
        violations.append(FieldViolation("request_id", "at most 128 characters"))

    name = {k: v.strip() for k, v in t.name.values.items() if v.strip()}
    if not name:
        violations.append(FieldViolation("template.name", "needs a text in at least one language"))
    for language, text in name.items():
        if not LANGUAGE.match(language):
            violations.append(FieldViolation("template.name", f"{language!r} is not a locale"))
        if len(text) > MAX_NAME_LENGTH:
            violations.append(
                FieldViolation(
                    f"template.name[{language}]", f"at most {MAX_NAME_LENGTH} characters"
                )
            )

    kind = KIND_FROM_PROTO.get(t.kind)
    amount_off = percent_off = cap = threshold = 0
    if kind is None:
        violations.append(FieldViolation("template.kind", "must be FIXED, PERCENT or THRESHOLD"))
    elif kind is CouponKind.PERCENT:
        if not 1 <= t.percent_off <= 99:
            violations.append(FieldViolation("template.percent_off", "must be between 1 and 99"))
        percent_off = t.percent_off
        cap = money_amount("template.cap", t.cap, violations, positive=True)
        if t.amount_off.amount:
            violations.append(FieldViolation("template.amount_off", "is for FIXED and THRESHOLD"))
        if t.threshold.amount:
            violations.append(FieldViolation("template.threshold", "is for THRESHOLD"))
    else:
        amount_off = money_amount("template.amount_off", t.amount_off, violations, positive=True)
        if t.percent_off:
            violations.append(FieldViolation("template.percent_off", "is for PERCENT"))
        if t.cap.amount:
            violations.append(FieldViolation("template.cap", "is for PERCENT"))
        if kind is CouponKind.THRESHOLD:
            threshold = money_amount("template.threshold", t.threshold, violations, positive=True)
            if threshold and amount_off > 0 and threshold <= amount_off:
                violations.append(
                    FieldViolation("template.threshold", "must be greater than amount_off")
                )
        elif t.threshold.amount:
            violations.append(FieldViolation("template.threshold", "is for THRESHOLD"))

    valid_from = valid_until = None
    window = t.HasField("valid_from") or t.HasField("valid_until")
    if t.valid_days and window:
        violations.append(
            FieldViolation("template.valid_days", "give either valid_days or a fixed window")
        )
    elif t.valid_days:
        if not 1 <= t.valid_days <= MAX_VALID_DAYS:
            violations.append(
                FieldViolation("template.valid_days", f"must be between 1 and {MAX_VALID_DAYS}")
            )
    elif not window:
        violations.append(
            FieldViolation("template.valid_days", "give valid_days or valid_from and valid_until")
        )
    else:
        if not t.HasField("valid_from"):
            violations.append(FieldViolation("template.valid_from", "is required with valid_until"))
        if not t.HasField("valid_until"):
            violations.append(FieldViolation("template.valid_until", "is required with valid_from"))
        if t.HasField("valid_from") and t.HasField("valid_until"):
            valid_from, valid_until = from_timestamp(t.valid_from), from_timestamp(t.valid_until)
            if valid_from >= valid_until:
                violations.append(
                    FieldViolation("template.valid_until", "must be after valid_from")
                )
            elif valid_until <= now:
                violations.append(FieldViolation("template.valid_until", "is in the past"))

    if t.total_limit < 0:
        violations.append(FieldViolation("template.total_limit", "must not be negative"))
    if not 0 <= t.per_member_limit <= MAX_PER_MEMBER_LIMIT:
        violations.append(
            FieldViolation(
                "template.per_member_limit", f"must be between 0 (= 1) and {MAX_PER_MEMBER_LIMIT}"
            )
        )

    channels: list[Channel] = []
    for i, value in enumerate(t.scope.channels):
        channel = channel_from_proto(
            f"template.scope.channels[{i}]", value, violations, required=True
        )
        if channel is not None and channel not in channels:
            channels.append(channel)
    scope = CouponScope(
        channels=tuple(channels),
        store_ids=ids("template.scope.store_ids", t.scope.store_ids, violations),
        category_ids=ids("template.scope.category_ids", t.scope.category_ids, violations),
        sku_ids=ids("template.scope.sku_ids", t.scope.sku_ids, violations),
    )
    claim_store_ids = ids("template.claim_store_ids", t.claim_store_ids, violations)

    claim_code = claim_code_of(t.claim_code)
    if claim_code and not CLAIM_CODE.match(claim_code):
        violations.append(
            FieldViolation("template.claim_code", "must be 4 to 16 letters A-Z or digits")
        )

    status = TemplateStatus.ACTIVE
    if t.status != member_pb2.COUPON_TEMPLATE_STATUS_UNSPECIFIED:
        found = TEMPLATE_STATUS_FROM_PROTO.get(t.status)
        if found is None:
            violations.append(FieldViolation("template.status", "must be ACTIVE or PAUSED"))
        else:
            status = found

    if actor.kind is ActorKind.STORE_MANAGER and actor.store_id:
        own = (actor.store_id,)
        if scope.store_ids != own:
            violations.append(
                FieldViolation(
                    "template.scope.store_ids",
                    f"a store manager's template applies only in their store {actor.store_id!r}",
                )
            )
        if any(s != actor.store_id for s in claim_store_ids):
            violations.append(
                FieldViolation("template.claim_store_ids", "a store manager's own store only")
            )
    if violations or kind is None:
        raise invalid_argument(*violations)
    return CouponTemplate(
        id=template_id,
        name=name,
        kind=kind,
        scope=scope,
        amount_off=amount_off,
        percent_off=percent_off,
        cap=cap,
        threshold=threshold,
        valid_from=valid_from,
        valid_until=valid_until,
        valid_days=t.valid_days,
        total_limit=t.total_limit,
        per_member_limit=t.per_member_limit,
        combinable_with_points=t.combinable_with_points,
        claim_code=claim_code,
        claim_store_ids=claim_store_ids,
        issue_only=t.issue_only,
        status=status,
        create_time=now,
    )


def template_to_proto(template: CouponTemplate) -> member_pb2.CouponTemplate:
    message = member_pb2.CouponTemplate(
        id=template.id,
        name=common_pb2.LocalizedText(values=dict(template.name)),
        kind=KIND_TO_PROTO[template.kind],
        percent_off=template.percent_off,
        valid_from=optional_timestamp(template.valid_from),
        valid_until=optional_timestamp(template.valid_until),
        valid_days=template.valid_days,
        scope=member_pb2.CouponScope(
            channels=[CHANNEL_TO_PROTO[c] for c in template.scope.channels],
            store_ids=template.scope.store_ids,
            category_ids=template.scope.category_ids,
            sku_ids=template.scope.sku_ids,
        ),
        total_limit=template.total_limit,
        per_member_limit=template.per_member_limit,
        issued_count=template.issued_count,
        combinable_with_points=template.combinable_with_points,
        claim_code=template.claim_code,
        claim_store_ids=template.claim_store_ids,
        issue_only=template.issue_only,
        status=TEMPLATE_STATUS_TO_PROTO[template.status],
        create_time=optional_timestamp(template.create_time),
    )
    if template.amount_off:
        message.amount_off.CopyFrom(money(template.amount_off, template.currency))
    if template.cap:
        message.cap.CopyFrom(money(template.cap, template.currency))
    if template.threshold:
        message.threshold.CopyFrom(money(template.threshold, template.currency))
    return message


# -- coupons ---------------------------------------------------------------------------------


def line_discounts_to_proto(
    discounts: Sequence[LineDiscount],
) -> list[member_pb2.LineDiscount]:
    return [
        member_pb2.LineDiscount(line_index=d.line_index, sku_id=d.sku_id, discount=money(d.amount))
        for d in discounts
    ]


def coupon_to_proto(coupon: Coupon, now: datetime) -> member_pb2.Coupon:
    """The coupon as a reader sees it at `now` (an ended window reads EXPIRED)."""
    seen = coupon.at(now)
    return member_pb2.Coupon(
        id=seen.id,
        template_id=seen.template_id,
        member_id=seen.member_id,
        status=COUPON_STATUS_TO_PROTO[seen.status],
        valid_from=timestamp(seen.valid_from),
        valid_until=timestamp(seen.valid_until),
        code=seen.code,
        order_id=seen.order_id,
        lock_until=optional_timestamp(seen.lock_until),
        issue_time=timestamp(seen.issue_time),
        redeem_time=optional_timestamp(seen.redeem_time),
        source=seen.source,
    )


def evaluation_to_proto(evaluation: Evaluation, now: datetime) -> member_pb2.CouponEvaluation:
    return member_pb2.CouponEvaluation(
        coupon=coupon_to_proto(evaluation.coupon, now),
        template=template_to_proto(evaluation.template),
        usable=evaluation.usable,
        discount=money(evaluation.discount),
        line_discounts=line_discounts_to_proto(evaluation.line_discounts),
        reason=evaluation.reason.value if evaluation.reason else "",
    )


def lines_from_proto(
    lines: Sequence[member_pb2.EvaluationLine],
    violations: list[FieldViolation],
    field: str = "lines",
) -> tuple[Line, ...]:
    if not lines:
        violations.append(FieldViolation(field, "at least one line is required"))
    if len(lines) > MAX_LINES:
        violations.append(FieldViolation(field, f"at most {MAX_LINES} lines"))
        return ()
    out: list[Line] = []
    for i, line in enumerate(lines):
        prefix = f"{field}[{i}]"
        if violation := id_violation(f"{prefix}.sku_id", line.sku_id):
            violations.append(violation)
        categories = ids(f"{prefix}.category_ids", line.category_ids, violations)
        if line.quantity <= 0:
            violations.append(FieldViolation(f"{prefix}.quantity", "must be greater than 0"))
        total = money_amount(f"{prefix}.line_total", line.line_total, violations, positive=False)
        out.append(Line(line.sku_id, categories, int(line.quantity), total))
    return tuple(out)
