"""What each organization's profile says about formal requests: types, fees, periods.

Pure functions of the five real profiles (and a few made-up ones for the fee rules
that no real profile exercises); no database.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from bot.cases import rules
from bot.cases.drafts import adult_on, is_minor
from bot.cases.rules import (
    clock_waits_for_documents,
    describe_due,
    describe_fee,
    due_at,
    due_on,
    fee_for,
    max_extension_days,
    offered_targets,
    offered_types,
    required_documents,
)
from bot.cases.types import (
    EXPLANATION_REQUIRED,
    GROUND_REQUIRED,
    OPEN_STATUSES,
    OUTCOMES_BY_TYPE,
    TRANSITIONS,
    CaseStatus,
    CaseType,
    DisclosureTarget,
    Fee,
    Method,
    Outcome,
    RequesterRole,
)
from bot.core.japan_time import JST
from bot.policy.profiles.loader import load_all
from bot.policy.profiles.schema import Fees, ProcessingTime, Profile, Requests

PROFILES = load_all()
OSAKA = PROFILES["osaka-city-kyosai"]
GUNMA = PROFILES["gunma-shoko-kyosai"]
KOKUSAI = PROFILES["kokusai-kogyo-kenpo"]
BENESSE = PROFILES["benesse-kenpo"]
COOP = PROFILES["coop-kyosai"]
assert OSAKA.processing_time is not None
# osaka's figures with a clock that starts on receipt of the request.
DATED = OSAKA.copy(
    update={"processing_time": OSAKA.processing_time.copy(update={"starts": "request"})}
)
T = CaseType
D = DisclosureTarget
NO_FEE_TYPES = (T.CORRECTION, T.SUSPENSION, T.THIRD_PARTY_STOP)


def with_fees(profile: Profile, **fees) -> Profile:
    fields = {"summary": "手数料の定め", "source": "第9条", **fees}
    return profile.copy(update={"fees": Fees(**fields)})


def test_the_five_profiles_are_the_ones_tested():
    assert set(PROFILES) == {
        "osaka-city-kyosai",
        "gunma-shoko-kyosai",
        "kokusai-kogyo-kenpo",
        "benesse-kenpo",
        "coop-kyosai",
    }


@pytest.mark.parametrize(
    ("org", "types"),
    [
        ("osaka-city-kyosai", (T.PURPOSE_NOTICE, T.DISCLOSURE, T.CORRECTION, T.SUSPENSION,
                               T.THIRD_PARTY_STOP)),
        ("gunma-shoko-kyosai", (T.DISCLOSURE, T.CORRECTION, T.SUSPENSION, T.THIRD_PARTY_STOP)),
        ("kokusai-kogyo-kenpo", (T.PURPOSE_NOTICE, T.DISCLOSURE, T.CORRECTION, T.SUSPENSION,
                                 T.THIRD_PARTY_STOP)),
        ("benesse-kenpo", (T.DISCLOSURE, T.CORRECTION, T.SUSPENSION, T.MAILING_OPT_OUT)),
        ("coop-kyosai", (T.DISCLOSURE, T.CORRECTION, T.SUSPENSION)),
    ],
)  # fmt: skip
def test_offered_types_come_from_the_profile(org, types):
    assert offered_types(PROFILES[org]) == types


def test_only_benesse_offers_the_household_mailing_opt_out():
    assert [org for org, p in PROFILES.items() if T.MAILING_OPT_OUT in offered_types(p)] == [
        "benesse-kenpo"
    ]


def test_a_profile_without_requests_offers_nothing():
    bare = KOKUSAI.copy(update={"requests": None})
    assert offered_types(bare) == ()
    assert offered_targets(bare) == ()


@pytest.mark.parametrize(
    ("org", "targets"),
    [
        ("kokusai-kogyo-kenpo", (D.RETAINED_DATA,)),
        ("benesse-kenpo", (D.RETAINED_DATA,)),
        ("gunma-shoko-kyosai", (D.RETAINED_DATA,)),
        # 「開示(第三者提供記録の開示を含みます)」 (10.)
        ("coop-kyosai", (D.RETAINED_DATA, D.THIRD_PARTY_RECORDS)),
        # 第23条第5項 (records) and 第23条第6項 (レセプト, 別に定める)
        ("osaka-city-kyosai", (D.RETAINED_DATA, D.THIRD_PARTY_RECORDS, D.RECEIPTS)),
    ],
)
def test_disclosure_offers_only_the_records_the_policy_names(org, targets):
    # No レセプト where the policy does not name them (a 共済 has none at all).
    assert offered_targets(PROFILES[org]) == targets


def test_narrow_disclosure_types_offer_only_their_target():
    def offering(*types: str) -> Profile:
        return KOKUSAI.copy(update={"requests": Requests(types=list(types), source="x")})

    assert offered_targets(offering("receipt_disclosure")) == (D.RECEIPTS,)
    assert offered_targets(offering("third_party_record_disclosure")) == (D.THIRD_PARTY_RECORDS,)
    assert offered_types(offering("receipt_disclosure")) == (T.DISCLOSURE,)
    assert offered_targets(offering("correction")) == ()


# --- fees -----------------------------------------------------------------------------


@pytest.mark.parametrize("target", [D.RETAINED_DATA, D.THIRD_PARTY_RECORDS, D.RECEIPTS, None])
def test_osaka_disclosure_fee_is_fixed_by_its_detailed_rules_without_an_amount(target):
    assert fee_for(OSAKA, T.DISCLOSURE, target) == Fee(
        "detailed_rules", None, "第29条・第21条第4号"
    )


def test_osaka_purpose_notice_fee_is_fixed_by_its_detailed_rules():
    assert fee_for(OSAKA, T.PURPOSE_NOTICE, None).kind == "detailed_rules"


@pytest.mark.parametrize("target", [D.RETAINED_DATA, D.THIRD_PARTY_RECORDS, D.RECEIPTS])
def test_gunma_disclosure_is_free(target):
    assert fee_for(GUNMA, T.DISCLOSURE, target) == Fee(
        "free", None, "個人情報の取扱いについて 6.(2)"
    )


def test_gunma_publishes_no_fee_for_purpose_notices():
    # Its applies_to does not name purpose_notice: no fallback to the disclosure fee.
    assert fee_for(GUNMA, T.PURPOSE_NOTICE, None) == Fee("unpublished", None, None)


@pytest.mark.parametrize("org", ["kokusai-kogyo-kenpo", "benesse-kenpo", "coop-kyosai"])
@pytest.mark.parametrize("kind", [T.PURPOSE_NOTICE, T.DISCLOSURE])
def test_profiles_without_published_fees_say_unpublished(org, kind):
    target = D.RETAINED_DATA if kind is T.DISCLOSURE else None
    assert fee_for(PROFILES[org], kind, target) == Fee("unpublished", None, None)


@pytest.mark.parametrize("org", sorted(PROFILES))
@pytest.mark.parametrize("kind", NO_FEE_TYPES)
def test_corrections_suspensions_and_stops_cost_nothing_by_law(org, kind):
    assert fee_for(PROFILES[org], kind, None) == Fee(
        "none_by_law", None, "個人情報保護法第38条第1項"
    )


def test_the_mailing_opt_out_is_not_a_request_under_the_act_and_has_no_fee_by_law():
    # benesse publishes no fee for it; article 38 says nothing of it either.
    assert fee_for(BENESSE, T.MAILING_OPT_OUT, None) == Fee("unpublished", None, None)
    free = with_fees(BENESSE, policy="free", applies_to=["mailing_opt_out"])
    assert fee_for(free, T.MAILING_OPT_OUT, None).kind == "free"


def test_a_fixed_fee_is_the_profiles_amount():
    profile = with_fees(KOKUSAI, policy="fixed", amount_yen=300, applies_to=["disclosure"])
    assert fee_for(profile, T.DISCLOSURE, D.RETAINED_DATA) == Fee("fixed", 300, "第9条")
    # 第三者提供記録 and レセプト fall back to the disclosure fee...
    assert fee_for(profile, T.DISCLOSURE, D.RECEIPTS) == Fee("fixed", 300, "第9条")
    assert fee_for(profile, T.DISCLOSURE, D.THIRD_PARTY_RECORDS).amount_yen == 300
    # ... but a purpose notice does not.
    assert fee_for(profile, T.PURPOSE_NOTICE, None).kind == "unpublished"
    assert fee_for(profile, T.CORRECTION, None).kind == "none_by_law"


def test_a_fee_published_for_one_target_only_applies_to_that_target():
    profile = with_fees(KOKUSAI, policy="fixed", amount_yen=500, applies_to=["receipt_disclosure"])
    assert fee_for(profile, T.DISCLOSURE, D.RECEIPTS) == Fee("fixed", 500, "第9条")
    assert fee_for(profile, T.DISCLOSURE, D.RETAINED_DATA).kind == "unpublished"


def test_no_fee_is_ever_a_figure_that_is_not_in_the_profile():
    for profile in PROFILES.values():
        published = profile.fees.amount_yen if profile.fees else None
        for kind in CaseType:
            for target in (*DisclosureTarget, None):
                fee = fee_for(profile, kind, target)
                assert fee.amount_yen in (None, published), (profile.id, kind, target)
                assert (fee.kind == "fixed") == (fee.amount_yen is not None)


def test_fee_sentences_never_invent_an_amount():
    for kind in ("none_by_law", "free", "detailed_rules", "unpublished"):
        text = describe_fee(Fee(kind, None, None))
        assert not any(ch.isdigit() for ch in text.replace("第38条第1項", "")), text
    assert "規程細則" in describe_fee(fee_for(OSAKA, T.DISCLOSURE, D.RECEIPTS))
    assert describe_fee(Fee("fixed", 1500, "x")) == "手数料は1件につき1,500円です。"
    assert describe_fee(fee_for(GUNMA, T.DISCLOSURE, D.RETAINED_DATA)) == "手数料は無料です。"


# --- periods ----------------------------------------------------------------------------


def jst(y, m, d, hh=0, mm=0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=JST)


def end_of_day_jst(y, m, d) -> datetime:
    return datetime(y, m, d, 23, 59, 59, 999999, tzinfo=JST)


def test_osaka_counts_its_period_from_the_documents_so_a_request_has_no_due_date_yet():
    # 第28条: 30 days from the day the 開示等請求(申出)書 is submitted.
    assert clock_waits_for_documents(OSAKA)
    assert due_at(OSAKA, jst(2025, 1, 6, 9)) is None
    assert not any(clock_waits_for_documents(p) for p in PROFILES.values() if p is not OSAKA)


def test_30_days_are_counted_from_the_next_day():
    assert due_at(DATED, jst(2025, 1, 6, 9)) == end_of_day_jst(2025, 2, 5)
    assert due_at(DATED, jst(2025, 1, 6, 23, 59)) == end_of_day_jst(2025, 2, 5)
    assert due_at(DATED, jst(2024, 2, 1, 10)) == end_of_day_jst(2024, 3, 2)  # leap year
    assert due_on(jst(2025, 1, 6, 9), 30) == end_of_day_jst(2025, 2, 5)


def test_the_due_date_follows_the_japanese_calendar_day_of_receipt():
    # 16:30 UTC on 6 January is already 7 January in Japan.
    received = datetime(2025, 1, 6, 16, 30, tzinfo=timezone.utc)
    due = due_at(DATED, received)
    assert due == end_of_day_jst(2025, 2, 6)
    assert due is not None and due.tzinfo == timezone.utc  # stored as UTC
    assert due == datetime(2025, 2, 6, 14, 59, 59, 999999, tzinfo=timezone.utc)


@pytest.mark.parametrize("org", [o for o in sorted(PROFILES) if o != "osaka-city-kyosai"])
def test_profiles_without_a_published_period_have_no_due_date_and_no_extension(org):
    assert due_at(PROFILES[org], jst(2025, 1, 6)) is None
    assert max_extension_days(PROFILES[org]) == 0


def test_osaka_may_extend_by_30_days():
    assert max_extension_days(OSAKA) == 30


def test_a_period_without_an_extension_allows_none():
    timing = ProcessingTime(summary="14日以内", days=14, extension_days=None, source="x")
    profile = KOKUSAI.copy(update={"processing_time": timing})
    assert due_at(profile, jst(2025, 1, 6)) == end_of_day_jst(2025, 1, 20)
    assert max_extension_days(profile) == 0


@pytest.mark.parametrize(
    ("kind", "article"),
    [
        (T.PURPOSE_NOTICE, "第32条第2項"),
        (T.DISCLOSURE, "第33条第2項"),
        (T.CORRECTION, "第34条第2項"),
        (T.SUSPENSION, "第35条第2項・第6項"),
        (T.THIRD_PARTY_STOP, "第35条第4項・第6項"),
    ],
)
def test_without_a_period_the_law_says_without_delay_with_its_article(kind, article):
    text = describe_due(kind, None)
    assert text.startswith("決定までの日数は方針に定められていません")
    assert "遅滞なく" in text and f"個人情報保護法{article}" in text


def test_the_mailing_opt_out_is_told_no_period_and_no_law():
    text = describe_due(T.MAILING_OPT_OUT, None)
    assert text == "対応の期限は、方針に定められていません。"


def test_a_due_date_is_a_japanese_date():
    due = due_at(DATED, jst(2025, 1, 6))
    assert describe_due(T.DISCLOSURE, due) == "2025年2月5日までに決定します。"


def test_naive_times_are_refused():
    with pytest.raises(ValueError):
        due_at(DATED, datetime(2025, 1, 6))


# --- documents, minors -------------------------------------------------------------------


def test_documents_are_the_policys_own_words_and_agents_get_the_agent_rules_too():
    own = required_documents(OSAKA, RequesterRole.SELF)
    assert OSAKA.facts.identity_documents is not None
    assert own[0] == OSAKA.facts.identity_documents.summary
    agent = required_documents(OSAKA, RequesterRole.APPOINTED_AGENT)
    assert agent[: len(own)] == own
    assert "未成年者又は成年被後見人の法定代理人" in agent
    assert required_documents(KOKUSAI, RequesterRole.SELF) == ()  # the policy says nothing


def test_coming_of_age_is_the_18th_birthday_and_1_march_for_29_february():
    assert adult_on(date(2012, 6, 15)) == date(2030, 6, 15)
    assert adult_on(date(2008, 2, 29)) == date(2026, 3, 1)
    born = date(2012, 6, 15)
    assert is_minor(born, jst(2030, 6, 14, 23, 59))
    assert not is_minor(born, jst(2030, 6, 15, 0, 0))
    # 14:59 UTC on 14 June is still 14 June in Japan; 15:00 UTC is the birthday.
    assert is_minor(born, datetime(2030, 6, 14, 14, 59, tzinfo=timezone.utc))
    assert not is_minor(born, datetime(2030, 6, 14, 15, 0, tzinfo=timezone.utc))


# --- the lifecycle and outcomes, as specified ---------------------------------------------


def test_the_lifecycle_is_exactly_the_specified_one():
    S = CaseStatus  # noqa: N806 - reads like the table in the issue
    assert dict(TRANSITIONS) == {
        S.RECEIVED: (S.AWAITING_DOCUMENTS, S.UNDER_REVIEW, S.WITHDRAWN),
        S.AWAITING_DOCUMENTS: (S.UNDER_REVIEW, S.WITHDRAWN, S.CLOSED),
        S.UNDER_REVIEW: (S.AWAITING_DOCUMENTS, S.EXTENDED, S.DECIDED, S.WITHDRAWN),
        S.EXTENDED: (S.EXTENDED, S.DECIDED, S.WITHDRAWN),
        S.DECIDED: (S.CLOSED,),
        S.CLOSED: (),
        S.WITHDRAWN: (),
    }
    assert OPEN_STATUSES == (S.RECEIVED, S.AWAITING_DOCUMENTS, S.UNDER_REVIEW, S.EXTENDED)


def test_every_outcome_fits_some_type_and_refusals_need_ground_and_explanation():
    fitted = {outcome for outcomes in OUTCOMES_BY_TYPE.values() for outcome in outcomes}
    assert fitted == set(Outcome)
    assert set(OUTCOMES_BY_TYPE) == set(CaseType)
    for refusal in (
        Outcome.NOT_DISCLOSED,
        Outcome.PARTIALLY_DISCLOSED,
        Outcome.NOT_CORRECTED,
        Outcome.ALTERNATIVE_MEASURE,
        Outcome.NOT_STOPPED,
        Outcome.NOT_NOTIFIED,
    ):
        assert refusal in GROUND_REQUIRED and refusal in EXPLANATION_REQUIRED
    for granted in (
        Outcome.DISCLOSED,
        Outcome.CORRECTED,
        Outcome.SUSPENDED,
        Outcome.STOPPED,
        Outcome.NOTIFIED,
        Outcome.ACCEPTED,
    ):
        assert granted not in EXPLANATION_REQUIRED
    assert Outcome.NOT_HELD in EXPLANATION_REQUIRED and Outcome.NOT_HELD not in GROUND_REQUIRED


def test_every_value_has_a_japanese_label():
    assert set(rules.TYPE_LABELS) == set(CaseType)
    assert set(rules.TARGET_LABELS) == set(DisclosureTarget)
    assert set(rules.STATUS_LABELS) == set(CaseStatus)
    assert set(rules.OUTCOME_LABELS) == set(Outcome)
    assert set(rules.METHOD_LABELS) == set(Method)
    assert rules.TYPE_LABELS[T.CORRECTION] == "訂正・追加・削除"
    assert rules.TARGET_LABELS[D.RECEIPTS] == "レセプト（診療報酬明細書等）"
    # benesse's words: members who do not agree to household mailing tell the window.
    assert rules.TYPE_LABELS[T.MAILING_OPT_OUT] == "世帯単位の送付に同意しない旨の申出"
