"""The CRINGE loss against numbers derived by hand from its definition (Adolphs et al. 2022)."""

import math

import pytest
import torch
from torch.testing import assert_close
from transformers import LlamaConfig, LlamaForCausalLM

from organic.learn.cringe import cringe_loss

# One token's logits over a vocabulary of 4, sorted so the top-k by hand is obvious: ids 0 > 1 > 2 > 3.
X = [2.0, 1.0, 0.5, -1.0]
GOOD, BAD, UNLABELLED = 1, 0, -1


def softplus(z: float) -> float:
    return math.log1p(math.exp(z))


def ce(x: list[float], y: int) -> float:
    return math.log(sum(math.exp(v) for v in x)) - x[y]


def batch(rows: list[list[list[float]]], labels: list[list[int]], example_labels: list[int]):
    logits = torch.tensor(rows, requires_grad=True)
    return logits, torch.tensor(labels), torch.tensor(example_labels)


@pytest.mark.parametrize(
    ("target", "s_pos", "why"),
    [
        (3, X[0], "target outside the top 2: drop the 2nd, keep the top-1"),
        (2, X[0], "target outside the top 2: drop the 2nd, keep the top-1"),
        (1, X[0], "target is the 2nd: drop it, keep the top-1"),
        (0, X[1], "target is the top-1: drop it, the 2nd is the positive"),
    ],
)
def test_k1_closed_form_on_a_bad_token(target, s_pos, why):
    logits, labels, c = batch([[X]], [[target]], [BAD])
    out = cringe_loss(logits, labels, c)
    expected = softplus(X[target] - s_pos)  # softplus(s- - s+)
    assert_close(out.loss, torch.tensor(expected), msg=why)
    assert_close(out.ct, torch.tensor(expected))
    assert_close(out.ce, torch.tensor(0.0))


@pytest.mark.parametrize(
    ("target", "candidates"),
    [
        (3, (0, 1)),  # target outside the top 3: the 3rd (id 2) is dropped
        (1, (0, 2)),  # target inside the top 3: it is dropped, ids 0 and 2 remain
    ],
)
def test_k2_samples_the_positive_from_the_softmax_of_the_remaining_logits(target, candidates):
    torch.manual_seed(0)
    x = [3.0, 2.0, 1.0, 0.0]
    n = 20_000
    logits, labels, c = batch([[x]] * n, [[target]] * n, [BAD] * n)
    a, b = candidates
    p_a = math.exp(x[a]) / (math.exp(x[a]) + math.exp(x[b]))
    # each token's term is f_a or f_b: the mean tells how often `a` was drawn as the positive
    f_a, f_b = softplus(x[target] - x[a]), softplus(x[target] - x[b])
    share_a = (cringe_loss(logits, labels, c, k=2).loss - f_b) / (f_a - f_b)
    assert_close(share_a, torch.tensor(p_a), atol=0.015, rtol=0)  # 5 standard errors of 20k draws


def test_good_and_unlabelled_tokens_get_cross_entropy_only():
    logits, labels, c = batch([[X], [X]], [[2], [3]], [GOOD, UNLABELLED])
    out = cringe_loss(logits, labels, c)
    expected = (ce(X, 2) + ce(X, 3)) / 2
    assert_close(out.loss, torch.tensor(expected))
    assert_close(out.ce, torch.tensor(expected))
    assert_close(out.ct, torch.tensor(0.0))


def test_unlabelled_rows_never_get_the_contrastive_term():
    logits, labels, c = batch([[X]], [[2]], [UNLABELLED])
    out = cringe_loss(logits, labels, c, ct_on_positives=True, ce_on_positives=False)
    assert_close(out.loss, torch.tensor(ce(X, 2)))
    assert_close(out.ct, torch.tensor(0.0))


def test_ignored_tokens_add_nothing_and_get_no_gradient():
    huge = [50.0, -50.0, 9.0, 3.0]
    logits, labels, c = batch([[X, huge]], [[2, -100]], [BAD])
    out = cringe_loss(logits, labels, c)
    assert_close(out.loss, torch.tensor(softplus(X[2] - X[0])))
    out.loss.backward()
    assert_close(logits.grad[0, 1], torch.zeros(4))


def test_reduction_divides_by_tokens_where_either_term_is_active():
    # row 0 good: 2 target tokens; row 1 bad: 1 target token and 1 ignored. 3 active tokens.
    logits, labels, c = batch([[X, X], [X, X]], [[0, 3], [2, -100]], [GOOD, BAD])
    out = cringe_loss(logits, labels, c)
    ce_sum, ct_sum = ce(X, 0) + ce(X, 3), softplus(X[2] - X[0])
    assert_close(out.ce, torch.tensor(ce_sum / 3))
    assert_close(out.ct, torch.tensor(ct_sum / 3))
    assert_close(out.loss, torch.tensor((ce_sum + ct_sum) / 3))


def test_ct_weight_scales_only_the_contrastive_part():
    logits, labels, c = batch([[X], [X]], [[0], [2]], [GOOD, BAD])
    out = cringe_loss(logits, labels, c, ct_weight=0.25)
    ce_part, ct_part = ce(X, 0) / 2, softplus(X[2] - X[0]) / 2
    assert_close(out.ce, torch.tensor(ce_part))
    assert_close(out.ct, torch.tensor(ct_part))
    assert_close(out.loss, torch.tensor(ce_part + 0.25 * ct_part))


@pytest.mark.parametrize("detach_positive", [False, True])
def test_detach_positive_stops_the_gradient_through_s_plus(detach_positive):
    logits, labels, c = batch([[X]], [[2]], [BAD])
    cringe_loss(logits, labels, c, detach_positive=detach_positive).loss.backward()
    # d softplus(s- - s+) / d s- = sigmoid(s- - s+), and the negative of that for s+ (id 0 here)
    sig = 1 / (1 + math.exp(-(X[2] - X[0])))
    expected = torch.tensor([0.0 if detach_positive else -sig, 0.0, sig, 0.0])
    assert_close(logits.grad[0, 0], expected)


def test_ct_on_positives_makes_the_target_the_winning_side():
    logits, labels, c = batch([[X]], [[2]], [GOOD])
    out = cringe_loss(logits, labels, c, ct_on_positives=True, ce_on_positives=False)
    assert_close(out.loss, torch.tensor(softplus(X[0] - X[2])))  # softplus(s+ - s-)
    both = cringe_loss(logits, labels, c, ct_on_positives=True)
    assert_close(both.loss, torch.tensor(ce(X, 2) + softplus(X[0] - X[2])))


def test_ce_on_positives_off_leaves_good_tokens_out_of_the_count():
    logits, labels, c = batch([[X], [X]], [[0], [3]], [GOOD, UNLABELLED])
    out = cringe_loss(logits, labels, c, ce_on_positives=False)
    assert_close(out.loss, torch.tensor(ce(X, 3)))  # divided by 1 active token, not 2


def test_all_ignored_batch_gives_zero_with_a_gradient():
    logits, labels, c = batch([[X, X]], [[-100, -100]], [BAD])
    out = cringe_loss(logits, labels, c)
    assert_close(out.loss, torch.tensor(0.0))
    out.loss.backward()
    assert_close(logits.grad, torch.zeros_like(logits))


@pytest.mark.parametrize("ct_on_positives", [False, True])
@pytest.mark.parametrize("ce_on_positives", [False, True])
@pytest.mark.parametrize("detach_positive", [False, True])
def test_matches_the_definition_token_by_token_on_random_logits(ct_on_positives, ce_on_positives, detach_positive):
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 6)
    labels = torch.tensor([[1, 5, -100, 0], [2, 2, 4, -100], [-100, 3, 0, 1]])
    c = [GOOD, BAD, UNLABELLED]
    total, active = 0.0, 0
    for b in range(3):
        for t in range(4):
            y = labels[b, t].item()
            if y == -100:
                continue
            x = logits[b, t].tolist()
            top2 = sorted(range(6), key=lambda i: -x[i])[:2]
            s_pos = x[top2[1] if top2[0] == y else top2[0]]
            use_ce = c[b] == UNLABELLED or (c[b] == GOOD and ce_on_positives)
            use_ct = c[b] == BAD or (c[b] == GOOD and ct_on_positives)
            sign = -1 if c[b] == GOOD else 1
            total += use_ce * ce(x, y) + use_ct * softplus(sign * (x[y] - s_pos))
            active += use_ce or use_ct
    out = cringe_loss(
        logits, labels, torch.tensor(c), ct_on_positives=ct_on_positives, ce_on_positives=ce_on_positives,
        detach_positive=detach_positive,
    )  # fmt: skip
    assert_close(out.loss, torch.tensor(total / active))


def test_k_must_leave_room_for_k_plus_1_candidates():
    logits, labels, c = batch([[X]], [[2]], [BAD])
    with pytest.raises(ValueError, match="k=4"):
        cringe_loss(logits, labels, c, k=4)


def test_training_with_cringe_lowers_the_bad_reply_and_keeps_the_good_one():
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    context = [5, 6, 7, 8]
    input_ids = torch.tensor([context + [10, 11, 12, 13], context + [20, 21, 22, 23]])  # good reply, bad reply
    labels = torch.tensor([[-100] * 4 + [10, 11, 12, 13], [-100] * 4 + [20, 21, 22, 23]])
    c = torch.tensor([GOOD, BAD])

    def reply_logprobs() -> torch.Tensor:
        with torch.no_grad():
            logp = model(input_ids).logits[:, :-1].log_softmax(-1)
        return logp.gather(-1, input_ids[:, 1:, None])[:, 3:, 0].sum(-1)  # tokens 4.. are the reply

    good_before, bad_before = reply_logprobs()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(5):
        logits = model(input_ids).logits
        loss = cringe_loss(logits[:, :-1], labels[:, 1:], c).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    good_after, bad_after = reply_logprobs()
    assert bad_after < bad_before
    assert good_after >= good_before
