"""fp32 attention inside CPU bf16 autocast: switched on only for bf16 on CPU, the attention really runs in fp32,
the model's outputs stay those of plain SDPA, and saved models do not depend on this project."""
import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

from ftlab.models import attention
from ftlab.models.attention import FP32_SDPA, use_fp32_attention


@pytest.fixture(autouse=True)
def _cpu_only(monkeypatch):
    """These tests are about the CPU path; on a machine with a GPU the switch would (rightly) stay off."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def _tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, attn_implementation="sdpa")
    return BertForSequenceClassification(config).eval()


def _batch():
    ids = torch.randint(5, 64, (3, 12))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0  # padding, so the mask path is exercised
    return ids, mask


@pytest.mark.parametrize("precision, expected", [("bf16", FP32_SDPA), ("fp32", "sdpa")])
def test_switched_on_for_bf16_only(precision, expected):
    model = _tiny_bert()
    described = use_fp32_attention(model, precision)
    assert model.config._attn_implementation == expected
    assert described == ("sdpa, fp32 inside bf16 autocast" if expected == FP32_SDPA else "sdpa")


def test_cuda_keeps_bf16_attention(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    model = _tiny_bert()
    assert use_fp32_attention(model, "bf16") == "sdpa" and model.config._attn_implementation == "sdpa"


def test_eager_attention_is_left_alone():
    model = _tiny_bert()
    model.set_attn_implementation("eager")
    assert use_fp32_attention(model, "bf16") == "eager" and model.config._attn_implementation == "eager"


def test_attention_runs_in_fp32_under_autocast_and_matches_sdpa(monkeypatch):
    ids, mask = _batch()
    model = _tiny_bert()
    with torch.no_grad():
        reference = model(input_ids=ids, attention_mask=mask).logits  # plain SDPA, fp32
        with torch.autocast("cpu", dtype=torch.bfloat16):
            plain_bf16 = model(input_ids=ids, attention_mask=mask).logits
    seen = []
    real = attention.sdpa_attention_forward

    def spy(module, query, key, value, attention_mask, **kwargs):
        seen.append((query.dtype, torch.is_autocast_enabled("cpu"), attention_mask is not None))
        return real(module, query, key, value, attention_mask, **kwargs)

    monkeypatch.setattr(attention, "sdpa_attention_forward", spy)
    use_fp32_attention(model, "bf16")
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        switched = model(input_ids=ids, attention_mask=mask).logits
    # Both layers, fp32 inputs, autocast off inside, and the padding mask passed on.
    assert seen == [(torch.float32, False, True)] * 2
    assert switched.dtype == plain_bf16.dtype
    # Same model: as close to the fp32 reference as the all-bf16 run is (bf16 linears dominate the error).
    assert (switched.float() - reference).abs().max() <= 2 * (plain_bf16.float() - reference).abs().max() + 1e-3
    # Outside autocast the inputs are fp32 already and the function is plain SDPA.
    seen.clear()
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids, attention_mask=mask).logits, reference, atol=1e-6)
    assert seen == [(torch.float32, False, True)] * 2


def test_training_step_gives_gradients_and_saved_model_loads_without_ftlab(tmp_path):
    ids, mask = _batch()
    model = _tiny_bert().train()
    use_fp32_attention(model, "bf16")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 1])).loss
    loss.backward()
    query_grad = model.bert.encoder.layer[0].attention.self.query.weight.grad
    assert query_grad is not None and torch.isfinite(query_grad).all() and query_grad.abs().sum() > 0
    model.save_pretrained(tmp_path)
    assert FP32_SDPA not in (tmp_path / "config.json").read_text()
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert reloaded.config._attn_implementation != FP32_SDPA


def _tiny(arch: str) -> torch.nn.Module:
    from transformers import DistilBertConfig, DistilBertForSequenceClassification, RobertaConfig, \
        RobertaForSequenceClassification

    torch.manual_seed(0)
    if arch == "bert":
        return _tiny_bert()
    if arch == "distilbert":
        return DistilBertForSequenceClassification(DistilBertConfig(
            vocab_size=64, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64,
            attn_implementation="sdpa")).eval()
    return RobertaForSequenceClassification(RobertaConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=70, attn_implementation="sdpa")).eval()


@pytest.mark.parametrize("arch", ["bert", "distilbert", "roberta"])
def test_padding_mask_reaches_the_attention_in_every_architecture(arch):
    """Outside autocast the switched model must compute exactly what SDPA computes, padded rows included (a
    missing padding mask changes the padded example's logits)."""
    ids, mask = _batch()
    model = _tiny(arch)
    with torch.no_grad():
        reference = model(input_ids=ids, attention_mask=mask).logits
        use_fp32_attention(model, "bf16")
        assert torch.equal(model(input_ids=ids, attention_mask=mask).logits, reference)


def test_every_floating_input_is_cast_too_t5_trains_under_bf16():
    """T5 hands SDPA its relative position bias (bf16 under autocast), which transformers adds to the padding mask:
    a float mask, which SDPA refuses beside fp32 queries ('attn_mask ... BFloat16 and query ... float')."""
    from transformers import T5Config, T5ForSequenceClassification

    torch.manual_seed(0)
    model = T5ForSequenceClassification(T5Config(
        vocab_size=64, d_model=32, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=2, d_kv=16,
        decoder_start_token_id=0, eos_token_id=1, pad_token_id=0, attn_implementation="sdpa")).train()
    ids, mask = _batch()
    ids[:, -1] = 1  # the head reads each text's EOS token
    ids[1, 7] = 1
    ids[1, 8:] = 0
    seen = []
    real = attention.sdpa_attention_forward

    def spy(module, query, key, value, attention_mask, **kwargs):
        seen.append((query.dtype, kwargs["position_bias"].dtype))
        return real(module, query, key, value, attention_mask, **kwargs)

    attention.sdpa_attention_forward, saved = spy, attention.sdpa_attention_forward
    try:
        assert use_fp32_attention(model, "bf16") == "sdpa, fp32 inside bf16 autocast"
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 1])).loss
        loss.backward()
    finally:
        attention.sdpa_attention_forward = saved
    # Every attention (the encoder's, the decoder's own and its cross-attention) in fp32, the bias included.
    assert len(seen) == 3 and set(seen) == {(torch.float32, torch.float32)}
    query = model.transformer.encoder.block[0].layer[0].SelfAttention.q
    assert torch.isfinite(loss) and query.weight.grad.abs().sum() > 0
