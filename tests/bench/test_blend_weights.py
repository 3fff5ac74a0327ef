"""The blend-weight benchmark decides as the pipeline does and picks by its fixed rule."""

from __future__ import annotations

from bench.blend_weights import Parts, Score, choose, current_weight, decide, score


def parts(expected: str, diet: dict[str, float], linear: dict[str, float], unknown=False):
    return Parts("text", expected, diet, linear, unknown)


def test_the_weight_moves_the_top_intent_between_the_two_models():
    item = parts("a", {"a": 0.9, "b": 0.1}, {"a": 0.2, "b": 0.8})
    assert decide(item, 0.8, 0.4, 0.1).top == "a"
    assert decide(item, 0.2, 0.4, 0.1).top == "b"


def test_the_fallback_asks_again_under_its_threshold_when_close_or_unknown():
    confident = parts("a", {"a": 0.9, "b": 0.1}, {"a": 0.9, "b": 0.1})
    assert not decide(confident, 0.5, 0.4, 0.1).asked_again
    unsure = parts("a", {"a": 0.35, "b": 0.3, "c": 0.35}, {"a": 0.35, "b": 0.3, "c": 0.35})
    assert decide(unsure, 0.5, 0.4, 0.1).asked_again  # under the threshold
    close = parts("a", {"a": 0.5, "b": 0.45}, {"a": 0.5, "b": 0.45})
    assert decide(close, 0.5, 0.4, 0.1).asked_again  # the two best 0.05 apart
    stranger = parts("a", {"a": 0.9}, {"a": 0.9}, unknown=True)
    decision = decide(stranger, 0.5, 0.4, 0.1)
    assert decision.top == "a" and decision.asked_again  # the guard zeroed it


def test_scores_count_right_asked_and_wrong_apart():
    items = [
        parts("a", {"a": 0.9, "b": 0.1}, {"a": 0.9, "b": 0.1}),  # right
        parts("b", {"a": 0.9, "b": 0.1}, {"a": 0.9, "b": 0.1}),  # wrong
        parts("a", {"a": 0.5, "b": 0.45}, {"a": 0.5, "b": 0.45}),  # asked, right before
    ]
    assert score(items, 0.5, 0.4, 0.1) == Score(0.5, 2, 1, 1, 1)


def test_the_rule_prefers_right_then_fewer_wrong_then_the_current_weight():
    scores = [
        Score(0.3, 10, 8, 1, 1),
        Score(0.4, 11, 8, 2, 0),
        Score(0.6, 11, 8, 2, 0),
        Score(0.5, 12, 7, 0, 3),
    ]
    assert choose(scores, 0.5).weight == 0.4  # 8 right, none wrong, nearer than 0.6
    assert choose([*scores, Score(0.2, 9, 9, 0, 0)], 0.5).weight == 0.2


def test_the_current_weight_is_read_from_config():
    assert 0.0 < current_weight() < 1.0
