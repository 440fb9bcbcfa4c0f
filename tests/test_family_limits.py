"""What the families beyond plain encoders and decoders need, on the tiny models of tests/test_families.py:
encoder-decoders (both stacks, EOS pooling), mixtures of experts (LoRA on the expert stacks, routers left alone, the
other methods' one-line refusals), XLNet's attention tensors, DeBERTa v1 in fp32, and a family without a
sequence classifier refused before any data loads."""
from __future__ import annotations

import pytest
import torch

from ftlab import methods
from ftlab.config import MethodArgs
from ftlab.errors import ConfigError
from ftlab.methods import count_parameters
from ftlab.models.tuning import apply_method, check_method_fits
from tests.test_families import FAMILIES, MOE, R, _adapted, _batch, _blocks, _config

from transformers import AutoModelForSequenceClassification


def _model(model_type: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(_config(model_type)).eval()


def _args(method: str = "lora", **flags) -> MethodArgs:
    return MethodArgs(method=method, lora_r=R, **flags)


def _lora_modules(model: torch.nn.Module) -> set[str]:
    """Paths of the modules that hold LoRA adapters (PEFT's or scratch_lora's), relative to the classifier."""
    found = set()
    for name, module in model.named_modules():
        if hasattr(module, "lora_A") and not name.endswith(("lora_A", "lora_B")):
            found.add(name.replace("base_model.model.", "", 1))
    return found


# --- encoder-decoders ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("model_type", ["bart", "t5"])
def test_selective_trains_the_top_blocks_of_the_encoder_and_of_the_decoder(model_type):
    family = FAMILIES[model_type]
    model = apply_method(_model(model_type), _args("selective", unfreeze_layers=1))
    trained_blocks = {name for name, block in _blocks(model, model_type)
                      if all(p.requires_grad for p in block.parameters())}
    assert trained_blocks == {f"{blocks}.1" for blocks in family.blocks}  # the last of each list of two
    with pytest.raises(ConfigError, match=rf"--unfreeze_layers 3: the model has only 2 transformer blocks in "
                                          rf"{family.blocks[0]}"):
        apply_method(_model(model_type), _args("selective", unfreeze_layers=3))


@pytest.mark.parametrize("model_type", ["bart", "mbart", "t5"])
def test_an_encoder_decoder_pools_its_eos_token_and_refuses_the_other_poolings(model_type, tmp_path):
    from ftlab.models.pooling import resolve_pooling

    _config(model_type).save_pretrained(tmp_path)
    assert resolve_pooling("auto", str(tmp_path)).used == "eos"
    assert resolve_pooling("eos", str(tmp_path)).used == "eos"
    for other in ("cls", "mean", "last"):
        with pytest.raises(ConfigError, match=rf"--pooling {other}: .* is an encoder-decoder \({model_type}\), whose "
                                              rf"head reads the decoder's state at the text's EOS token"):
            resolve_pooling(other, str(tmp_path))
    _config("bert").save_pretrained(tmp_path / "bert")
    with pytest.raises(ConfigError, match="--pooling eos: the EOS pooling of encoder-decoders' heads"):
        resolve_pooling("eos", str(tmp_path / "bert"))


def test_prompt_methods_are_refused_on_an_encoder_decoder_in_one_line():
    with pytest.raises(ConfigError, match="PEFT feeds the virtual tokens to the model as input embeddings .* which "
                                          "t5's classifier refuses"):
        check_method_fits(_config("t5"), _args("prompt_tuning"))


# --- mixtures of experts ------------------------------------------------------------------------------------

@pytest.mark.parametrize("model_type", MOE)
def test_scratch_lora_trains_what_peft_trains_once_the_experts_are_left_out(model_type):
    """On expert stacks only PEFT's LoRA applies (scratch_lora refuses them in one line, tests/test_families.py);
    with --lora_mlp false both adapt the same layers: attention, and the shared experts and dense MLP have none."""
    peft = apply_method(_model(model_type), _args(lora_mlp=False))
    scratch = apply_method(_model(model_type), _args("scratch_lora", lora_mlp=False))
    layers, _ = _adapted(_model(model_type), model_type)
    attention = {path for path in layers if ".self_attn." in path}
    assert _lora_modules(peft) == _lora_modules(scratch) == attention
    assert count_parameters(peft).trainable == count_parameters(scratch).trainable


def test_deepseek_keeps_the_adapters_of_its_dense_mlp_and_shared_experts_through_save_and_load(tmp_path):
    """peft rewrites LoRA targets for DeepSeek-V3 (meant for adapters trained under transformers 4) and would move
    gate_proj/up_proj/down_proj onto the expert stacks: the dense MLP of block 0 and the shared experts lost their
    adapters. The lab's LoRA applies and loads its targets as named."""
    model = apply_method(_model("deepseek_v3"), _args())
    adapted = _lora_modules(model)
    assert {"model.layers.0.mlp.gate_proj", "model.layers.0.mlp.down_proj",
            "model.layers.1.mlp.shared_experts.up_proj"} <= adapted
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.2)
        logits = model(**_batch()).logits
    model.save_pretrained(tmp_path)
    loaded = methods.get("lora").load(_model("deepseek_v3"), str(tmp_path)).eval()
    assert _lora_modules(loaded) == adapted
    assert sorted(loaded.base_model.targeted_parameter_names) == sorted(model.base_model.targeted_parameter_names)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**_batch()).logits, logits, atol=1e-6, rtol=0)
        merged = methods.get("lora").merge(loaded)
        torch.testing.assert_close(merged(**_batch()).logits, logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("flags, refused", [
    (dict(lora_dropout=0.1), r"--lora_dropout 0.1: PEFT's LoRA on mixtral's expert stacks \(mlp.experts.down_proj, "
                             r"mlp.experts.gate_up_proj\) takes no dropout; use --lora_dropout 0, or --lora_mlp false"),
    (dict(use_dora=True), "--use_dora: PEFT has no DoRA for mixtral's expert stacks"),
    (dict(lora_init="olora"), r"--lora_init olora: PEFT initialises LoRA on mixtral's expert stacks \(.*\) only "
                              r"randomly; use --lora_init kaiming or gaussian"),
])
def test_lora_settings_peft_cannot_apply_to_expert_stacks_are_refused_in_one_line(flags, refused):
    with pytest.raises(ConfigError, match=refused):
        check_method_fits(_config("mixtral"), _args(**flags))
    check_method_fits(_config("mixtral"), _args(lora_mlp=False, **flags))  # without the experts they apply


def test_other_methods_refuse_expert_stacks_and_adapt_attention_without_them():
    with pytest.raises(ConfigError, match="--method ia3: qwen2_moe's MLP experts mlp.experts.gate_up_proj, "
                                          "mlp.experts.down_proj are 3-D parameters, not layers; only --method lora "
                                          "adapts them .*; switch --lora_mlp false"):
        check_method_fits(_config("qwen2_moe"), _args("ia3"))
    model = apply_method(_model("qwen2_moe"), _args("ia3", lora_mlp=False))
    adapted = {name.replace("base_model.model.", "", 1) for name, module in model.named_modules()
               if hasattr(module, "ia3_l") and not name.endswith("ia3_l")}
    assert adapted == {f"model.layers.{i}.self_attn.{leaf}" for i in range(2) for leaf in ("q_proj", "k_proj",
                                                                                           "v_proj", "o_proj")}


# --- XLNet: attention weights as tensors ----------------------------------------------------------------------

def test_xlnet_attention_is_refused_with_the_reason_and_its_feed_forward_layers_take_lora():
    with pytest.raises(ConfigError, match=r"--method lora: xlnet's weights rel_attn.q, .* are 3-D parameters, not "
                                          r"layers; no method here adapts them"):
        check_method_fits(_config("xlnet"), _args())
    model = apply_method(_model("xlnet"), _args(lora_query=False, lora_key=False, lora_value=False,
                                                lora_projection=False))
    assert _lora_modules(model) == {f"transformer.layer.{i}.ff.layer_{n}" for i in range(2) for n in (1, 2)}


# --- precision ------------------------------------------------------------------------------------------------

def test_deberta_v1_trains_in_fp32_under_auto_and_refuses_half_precision_by_name():
    from ftlab.training.speed import family_precision

    precision, reason = family_precision("bf16", "auto", "deberta")
    assert precision == "fp32" and "fp32 instead of bf16" in reason and "cannot hold" in reason
    assert family_precision("fp16", "auto", "deberta")[0] == "fp32"
    assert family_precision("fp32", "auto", "deberta") == ("fp32", None)
    assert family_precision("bf16", "auto", "deberta-v2") == ("bf16", None)
    for requested in ("bf16", "fp16"):
        with pytest.raises(ConfigError, match=rf"--precision {requested}: deberta \(DeBERTa v1\) fills masked "
                                              rf"attention scores .*; use --precision fp32 or auto"):
            family_precision(requested, requested, "deberta")


def test_deberta_v1_really_fails_under_bf16_autocast():
    """The reason behind the rule above: when transformers fixes it, this fails and the rule can go."""
    model = _model("deberta")
    with pytest.raises(RuntimeError, match="without overflow"), torch.autocast("cpu", dtype=torch.bfloat16):
        model(**_batch())
    assert torch.isfinite(model(**_batch()).logits).all()


# --- one line before any data: a family without a sequence classifier, targets that match nothing -----------

def test_squeezebert_all_linear_matches_nothing_in_one_line():
    with pytest.raises(ConfigError, match=r"--lora_target_modules all-linear: no layer of squeezebert matches "
                                          r"\(--method lora\); its linear layers are named classifier, dense"):
        check_method_fits(_config("squeezebert"), _args(lora_target_modules="all-linear"))


@pytest.mark.e2e
def test_a_family_without_a_sequence_classifier_stops_in_one_line_before_the_data_loads(tmp_path):
    from transformers import AutoConfig

    from tests.conftest import run_main, synthetic_rows, write_csv

    AutoConfig.for_model("granite", vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64).save_pretrained(tmp_path / "granite")
    data = write_csv(tmp_path / "reviews.csv", synthetic_rows(20))
    done = run_main("--model", str(tmp_path / "granite"), "--dataset", str(data), "--text_column", "sentence",
                    "--label_column", "polarity", "--output_dir", str(tmp_path / "run"), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: model type 'granite' has no sequence-classification class in transformers "
        "(AutoModelForSequenceClassification does not know GraniteConfig); the families page of the docs lists "
        "those tried"]
    assert "[ftlab] model:" not in done.stdout  # printed once the data has loaded
    assert not (tmp_path / "run" / "config.yaml").exists()
