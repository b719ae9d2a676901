"""MemberService RPCs for coupon templates and coupons.

Requests are checked here (every bad field named at once, see `coupon_input`); the rules and
every write are in `coupons.CouponBook`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from member_svc.convert import actor_from_proto, from_timestamp, money
from member_svc.coupon_domain import CouponStatus, Line, TemplateStatus
from member_svc.coupon_errors import permission_denied
from member_svc.coupon_input import (
    COUPON_STATUS_FROM_PROTO,
    TEMPLATE_STATUS_FROM_PROTO,
    channel_from_proto,
    check_template_writer,
    claim_code_of,
    coupon_to_proto,
    evaluation_to_proto,
    line_discounts_to_proto,
    lines_from_proto,
    template_fingerprint,
    template_from_request,
    template_to_proto,
)
from member_svc.domain import ActorKind, Channel
from member_svc.rpc_base import MemberRpcBase
from retail.member.v1 import member_pb2
from retail_kit.errors import Context, FieldViolation, invalid_argument
from retail_kit.paging import (
    decode_page_token,
    encode_page_token,
    invalid_page_token,
    page_size,
    query_fingerprint,
)
from retail_kit.validation import batch_ids, id_violation

DEFAULT_LOCK = timedelta(minutes=30)
MAX_LOCK = timedelta(days=30)
MAX_REQUEST_ID = 128
MAX_RELEASE_BATCH = 1_000
DEFAULT_RELEASE_BATCH = 100
# Who may issue a coupon to a member directly (customers claim; staff use campaigns).
ISSUERS = (ActorKind.ADMIN, ActorKind.STORE_MANAGER, ActorKind.PARTNER, ActorKind.SYSTEM)


def _request_id(field: str, value: str, violations: list[FieldViolation]) -> None:
    if not value.strip():
        violations.append(FieldViolation(field, "is required"))
    elif len(value) > MAX_REQUEST_ID:
        violations.append(FieldViolation(field, f"at most {MAX_REQUEST_ID} characters"))


def _id(field: str, value: str, violations: list[FieldViolation]) -> None:
    if violation := id_violation(field, value):
        violations.append(violation)


def _page_key(token: str, fingerprint: str) -> tuple[datetime, str] | None:
    key = decode_page_token(token, fingerprint)
    if key is None:
        return None
    try:
        stamp, last_id = key
        return datetime.fromisoformat(stamp), str(last_id)
    except (TypeError, ValueError):
        raise invalid_page_token() from None


class CouponRpcs(MemberRpcBase):
    # -- templates -------------------------------------------------------------------------

    async def CreateCouponTemplate(
        self, request: member_pb2.CreateCouponTemplateRequest, context: Context
    ) -> member_pb2.CreateCouponTemplateResponse:
        actor = actor_from_proto(request.actor)
        template = template_from_request(request, actor, self.now())
        created = await self.books.coupons.create_template(
            template,
            request_id=request.request_id,
            fingerprint=template_fingerprint(request.template),
            actor=actor,
        )
        return member_pb2.CreateCouponTemplateResponse(template=template_to_proto(created))

    async def SetCouponTemplateStatus(
        self, request: member_pb2.SetCouponTemplateStatusRequest, context: Context
    ) -> member_pb2.SetCouponTemplateStatusResponse:
        violations: list[FieldViolation] = []
        _id("template_id", request.template_id, violations)
        status = TEMPLATE_STATUS_FROM_PROTO.get(request.status)
        if status is None:
            violations.append(FieldViolation("status", "must be ACTIVE or PAUSED"))
        actor = actor_from_proto(request.actor)
        check_template_writer(actor)
        if violations or status is None:
            raise invalid_argument(*violations)
        template = await self.books.coupons.require_template(request.template_id)
        if actor.kind is ActorKind.STORE_MANAGER and template.scope.store_ids != (actor.store_id,):
            raise permission_denied(
                f"coupon template {template.id!r} is not only for store {actor.store_id!r}",
                "actor.store_id",
            )
        if template.status is not status:
            template = await self.books.coupons.set_template_status(
                template.id, TemplateStatus(status), self.now()
            )
        return member_pb2.SetCouponTemplateStatusResponse(template=template_to_proto(template))

    async def BatchGetCouponTemplates(
        self, request: member_pb2.BatchGetCouponTemplatesRequest, context: Context
    ) -> member_pb2.BatchGetCouponTemplatesResponse:
        ids = batch_ids("ids", request.ids)
        found = await self.books.coupons.get_templates(ids)
        return member_pb2.BatchGetCouponTemplatesResponse(
            templates=[template_to_proto(found[i]) for i in ids if i in found],
            missing_ids=[i for i in ids if i not in found],
        )

    async def ListCouponTemplates(
        self, request: member_pb2.ListCouponTemplatesRequest, context: Context
    ) -> member_pb2.ListCouponTemplatesResponse:
        size = page_size(request.page_size)
        fingerprint = query_fingerprint("coupon_templates")
        after = _page_key(request.page_token, fingerprint)
        templates = await self.books.coupons.list_templates(size + 1, after)
        token = ""
        if len(templates) > size:
            templates = templates[:size]
            last = templates[-1]
            assert last.create_time is not None
            token = encode_page_token(fingerprint, [last.create_time.isoformat(), last.id])
        return member_pb2.ListCouponTemplatesResponse(
            templates=[template_to_proto(t) for t in templates], next_page_token=token
        )

    # -- issue and claim -------------------------------------------------------------------

    async def IssueCoupon(
        self, request: member_pb2.IssueCouponRequest, context: Context
    ) -> member_pb2.IssueCouponResponse:
        violations: list[FieldViolation] = []
        _id("template_id", request.template_id, violations)
        _id("member_id", request.member_id, violations)
        _request_id("reference", request.reference, violations)
        actor = actor_from_proto(request.actor)
        if violations:
            raise invalid_argument(*violations)
        if actor.kind not in ISSUERS:
            raise permission_denied("only an admin, a store manager or a service issues coupons")
        coupon = await self.books.coupons.issue(
            request.template_id,
            request.member_id,
            issue_ref=f"issue:{request.reference}",
            source="issue",
            actor=actor,
        )
        return member_pb2.IssueCouponResponse(coupon=coupon_to_proto(coupon, self.now()))

    async def ClaimCoupon(
        self, request: member_pb2.ClaimCouponRequest, context: Context
    ) -> member_pb2.ClaimCouponResponse:
        violations: list[FieldViolation] = []
        _id("member_id", request.member_id, violations)
        code = claim_code_of(request.claim_code)
        if bool(request.template_id) == bool(code):
            violations.append(
                FieldViolation("template_id", "give exactly one of template_id and claim_code")
            )
        elif request.template_id:
            _id("template_id", request.template_id, violations)
        if request.store_id:
            _id("store_id", request.store_id, violations)
        _request_id("request_id", request.request_id, violations)
        if violations:
            raise invalid_argument(*violations)
        coupon = await self.books.coupons.claim(
            request.member_id,
            template_id=request.template_id,
            claim_code=code,
            store_id=request.store_id,
            request_id=request.request_id,
        )
        return member_pb2.ClaimCouponResponse(coupon=coupon_to_proto(coupon, self.now()))

    # -- reads -----------------------------------------------------------------------------

    async def BatchGetCoupons(
        self, request: member_pb2.BatchGetCouponsRequest, context: Context
    ) -> member_pb2.BatchGetCouponsResponse:
        ids = batch_ids("ids", request.ids)
        found = await self.books.coupons.get_coupons(ids)
        now = self.now()
        return member_pb2.BatchGetCouponsResponse(
            coupons=[coupon_to_proto(found[i], now) for i in ids if i in found],
            missing_ids=[i for i in ids if i not in found],
        )

    async def ListMemberCoupons(
        self, request: member_pb2.ListMemberCouponsRequest, context: Context
    ) -> member_pb2.ListMemberCouponsResponse:
        status: CouponStatus | None = None
        if request.status != member_pb2.COUPON_STATUS_UNSPECIFIED:
            status = COUPON_STATUS_FROM_PROTO.get(request.status)
            if status is None:
                raise invalid_argument(FieldViolation("status", "is not a coupon status"))
        size = page_size(request.page_size)
        member = await self.resolve_member(request.member_id)
        fingerprint = query_fingerprint("member_coupons", member.id, request.status)
        after = _page_key(request.page_token, fingerprint)
        now = self.now()
        coupons = await self.books.coupons.list_member_coupons(
            member.id, status, size + 1, after, now
        )
        token = ""
        if len(coupons) > size:
            coupons = coupons[:size]
            last = coupons[-1]
            token = encode_page_token(fingerprint, [last.issue_time.isoformat(), last.id])
        return member_pb2.ListMemberCouponsResponse(
            coupons=[coupon_to_proto(c, now) for c in coupons], next_page_token=token
        )

    async def EvaluateCoupons(
        self, request: member_pb2.EvaluateCouponsRequest, context: Context
    ) -> member_pb2.EvaluateCouponsResponse:
        violations: list[FieldViolation] = []
        _id("member_id", request.member_id, violations)
        lines = lines_from_proto(request.lines, violations)
        channel = channel_from_proto("channel", request.channel, violations)
        if request.store_id:
            _id("store_id", request.store_id, violations)
        if violations:
            raise invalid_argument(*violations)
        member = await self.resolve_member(request.member_id)
        now = self.now()
        evaluations = await self.books.coupons.evaluate(
            member.id, lines, channel, request.store_id or None, now
        )
        return member_pb2.EvaluateCouponsResponse(
            evaluations=[
                evaluation_to_proto(e, now)
                for e in evaluations
                if e.usable or request.include_unusable
            ]
        )

    # -- lock, redeem, release -------------------------------------------------------------

    async def LockCoupon(
        self, request: member_pb2.LockCouponRequest, context: Context
    ) -> member_pb2.LockCouponResponse:
        violations: list[FieldViolation] = []
        _id("coupon_id", request.coupon_id, violations)
        _id("member_id", request.member_id, violations)
        _id("order_id", request.order_id, violations)
        lines = lines_from_proto(request.lines, violations)
        channel = channel_from_proto("channel", request.channel, violations)
        if request.store_id:
            _id("store_id", request.store_id, violations)
        now = self.now()
        lock_until = now + DEFAULT_LOCK
        if request.HasField("lock_until"):
            lock_until = from_timestamp(request.lock_until)
            if lock_until <= now:
                violations.append(FieldViolation("lock_until", "must be in the future"))
            elif lock_until > now + MAX_LOCK:
                violations.append(FieldViolation("lock_until", "at most 30 days ahead"))
        if violations:
            raise invalid_argument(*violations)
        coupon = await self.books.coupons.lock(
            request.coupon_id,
            request.member_id,
            request.order_id,
            lines,
            channel,
            request.store_id or None,
            lock_until,
            request.with_points,
        )
        return member_pb2.LockCouponResponse(
            discount=money(coupon.discount),
            line_discounts=line_discounts_to_proto(coupon.line_discounts),
            coupon=coupon_to_proto(coupon, self.now()),
        )

    async def RedeemCoupon(
        self, request: member_pb2.RedeemCouponRequest, context: Context
    ) -> member_pb2.RedeemCouponResponse:
        violations: list[FieldViolation] = []
        _id("order_id", request.order_id, violations)
        code = request.coupon_code.strip().upper()
        if request.coupon_id:
            _id("coupon_id", request.coupon_id, violations)
        elif not code:
            violations.append(FieldViolation("coupon_id", "give coupon_id or coupon_code"))
        lines: tuple[Line, ...] = ()
        channel: Channel | None = None
        if code:
            # At the till: the member, the lines, the channel and the store decide.
            _id("member_id", request.member_id, violations)
            lines = lines_from_proto(request.lines, violations)
            channel = channel_from_proto("channel", request.channel, violations)
            if request.store_id:
                _id("store_id", request.store_id, violations)
        if violations:
            raise invalid_argument(*violations)
        if code:
            coupon = await self.books.coupons.redeem_at_till(
                code,
                request.member_id,
                request.order_id,
                lines,
                channel,
                request.store_id or None,
                request.coupon_id,
            )
        else:
            coupon = await self.books.coupons.redeem_locked(request.coupon_id, request.order_id)
        return member_pb2.RedeemCouponResponse(
            coupon=coupon_to_proto(coupon, self.now()),
            discount=money(coupon.discount),
            line_discounts=line_discounts_to_proto(coupon.line_discounts),
        )

    async def ReleaseCoupon(
        self, request: member_pb2.ReleaseCouponRequest, context: Context
    ) -> member_pb2.ReleaseCouponResponse:
        violations: list[FieldViolation] = []
        _id("coupon_id", request.coupon_id, violations)
        _id("order_id", request.order_id, violations)
        if violations:
            raise invalid_argument(*violations)
        coupon = await self.books.coupons.release(request.coupon_id, request.order_id)
        return member_pb2.ReleaseCouponResponse(coupon=coupon_to_proto(coupon, self.now()))

    async def ReleaseExpiredCouponLocks(
        self, request: member_pb2.ReleaseExpiredCouponLocksRequest, context: Context
    ) -> member_pb2.ReleaseExpiredCouponLocksResponse:
        limit = request.limit or DEFAULT_RELEASE_BATCH
        if not 1 <= limit <= MAX_RELEASE_BATCH:
            raise invalid_argument(
                FieldViolation("limit", f"must be between 1 and {MAX_RELEASE_BATCH}")
            )
        released, more = await self.books.coupons.release_expired_locks(limit)
        return member_pb2.ReleaseExpiredCouponLocksResponse(released=released, more=more)
