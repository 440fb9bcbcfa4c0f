"""PEFT's prompt learning: trained vectors that the frozen model reads before the text's own tokens. Prompt tuning
(Lester et al. 2021) learns the virtual tokens' embeddings; P-tuning (Liu et al. 2021) produces them with a small
prompt encoder; prefix tuning (Li & Liang 2021) learns keys and values for every layer, which PEFT hands to the
model as a key-value cache, so only models that take one (decoder LMs) can have it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ftlab.errors import ConfigError
from ftlab.methods.peft_method import PeftMethod


@dataclass(frozen=True)
class PromptMethod(PeftMethod):
    needs_cache: bool = False

    def check(self, model: Any, args: Any, arch: Any) -> None:
        if arch.encoder_decoder:
            raise ConfigError(f"--method {self.name}: PEFT feeds the virtual tokens to the model as input embeddings "
                              f"(and a prefix as a cache), which {arch.model_type}'s classifier refuses (an "
                              f"encoder-decoder's head finds the EOS token in the input ids); use lora or another "
                              f"method with targets")
        if not self.needs_cache:
            return
        import inspect

        if not arch.decoder:
            raise ConfigError(f"--method {self.name}: PEFT hands the trained prefix to the model as a key-value "
                              f"cache, which {arch.model_type} (an encoder) does not take; use prompt_tuning or "
                              f"p_tuning on encoders")
        if not {"cache", "past_key_values"} & set(inspect.signature(model.forward).parameters):
            raise ConfigError(f"--method {self.name}: PEFT hands the trained prefix to the model as a key-value "
                              f"cache, and {type(model).__name__} takes none; use prompt_tuning or p_tuning")
        if not arch.blocks:
            raise ConfigError(f"--method {self.name}: PEFT hands every layer a prefix of keys and values for its "
                              f"attention; {arch.model_type}: {arch.no_blocks()}, not all of them attention layers; "
                              f"use prompt_tuning or p_tuning")
        self._check_prefix_shape(model, args, arch)

    def _check_prefix_shape(self, model: Any, args: Any, arch: Any) -> None:
        """PEFT shapes each layer's prefix keys and values from the config (key-value heads x head size); the model's
        key and value layers must compute that width (DeepSeek's latent attention does not; Falcon's multi-query
        attention did not before transformers 5.25 named its key-value head count in the config)."""
        from peft.utils.other import _prepare_prompt_learning_config

        config = _prepare_prompt_learning_config(self.peft_config(model, args, arch), model.config.to_dict())
        head = config.token_dim // config.num_attention_heads
        block = dict(model.get_submodule(arch.blocks[0])[0].named_modules())
        for path in dict.fromkeys([*arch.layers["key"], *arch.layers["value"]]):
            if path not in block:
                continue
            served = [switch for switch in ("query", "key", "value") if path in arch.layers[switch]]
            expected = config.token_dim * sum(switch in served for switch in ("key", "value")) \
                + (model.config.num_attention_heads * head if "query" in served else 0)
            weight = block[path].weight
            out = weight.shape[-1] if type(block[path]).__name__ == "Conv1D" else weight.shape[0]
            if out != expected:
                raise ConfigError(f"--method {self.name}: PEFT shapes the prefix's keys and values as "
                                  f"{config.num_attention_heads} heads x {head} (from {arch.model_type}'s config), "
                                  f"but its {path} computes {out} features, so its attention cannot read them; use "
                                  f"prompt_tuning or p_tuning")

    def config_kwargs(self, model: Any, args: Any, arch: Any) -> dict[str, Any]:
        # PEFT reads these from the config's own keys (hidden_size, ...), which some families name otherwise
        # (DistilBERT's dim): taken from the model instead.
        config, written = model.config, model.config.to_dict()
        shape = {"num_layers": ("num_hidden_layers", config.num_hidden_layers),
                 "num_attention_heads": ("num_attention_heads", config.num_attention_heads),
                 "token_dim": ("hidden_size", model.get_input_embeddings().embedding_dim)}
        kwargs = {field: value for field, (key, value) in shape.items() if key not in written}
        if not self.needs_cache:  # the virtual tokens join the word embeddings, narrower than the blocks in ELECTRA
            kwargs["token_dim"] = shape["token_dim"][1]
        return {**kwargs, **super().config_kwargs(model, args, arch)}

    def wrap_base(self, model: Any) -> Any:
        """transformers 5 calls the key-value cache `cache` in the classifiers' forward; peft 0.21 looks for
        `past_key_values` there and refuses prefix tuning without it. The forward gets the old name beside the
        new one, and hands it on."""
        import inspect

        parameters = inspect.signature(model.forward).parameters
        if not self.needs_cache or "past_key_values" in parameters or "cache" not in parameters:
            return model
        original = model.forward

        def forward(*args: Any, past_key_values: Any = None, **kwargs: Any) -> Any:
            return original(*args, cache=past_key_values, **kwargs)

        forward.__signature__ = inspect.signature(original).replace(parameters=[
            *[p for p in parameters.values() if p.kind != p.VAR_KEYWORD],
            inspect.Parameter("past_key_values", inspect.Parameter.KEYWORD_ONLY, default=None),
            *[p for p in parameters.values() if p.kind == p.VAR_KEYWORD]])
        model.forward = forward
        return model

    def continue_from(self, model: Any, adapter_dir: str, args: Any) -> Any:
        """peft refuses to load a prompt adapter as trainable ("Cannot set a prompt learning adapter to trainable"):
        the same prompt model is built afresh from the saved config, and the saved weights are put into it."""
        from peft import PeftConfig, get_peft_model, load_peft_weights, set_peft_model_state_dict

        config = PeftConfig.from_pretrained(adapter_dir)
        config.inference_mode = False
        model = get_peft_model(self.wrap_base(model), config)
        set_peft_model_state_dict(model, load_peft_weights(adapter_dir))
        return model

    def describe(self, args: Mapping[str, Any]) -> str:
        return f"{self.name} {args.get('num_virtual_tokens')} tokens"


_PROMPT = dict(peft_flags={"num_virtual_tokens": "num_virtual_tokens"}, targets=None, task_type="SEQ_CLS",
               flag_defaults={}, search_space={"num_virtual_tokens": "10,20,50"})
METHODS = (
    PromptMethod(name="prompt_tuning", label="prompt tuning", peft_type="PROMPT_TUNING",
                 config=("tuners/prompt_tuning/config.py", "PromptTuningConfig"),
                 trains="the embeddings of --num_virtual_tokens virtual tokens before the text, and the head",
                 default_lr=1e-2, lr_range=(1e-3, 1e-1),
                 lr_source="Lester et al. 2021 (0.3 with Adafactor on T5); with AdamW and a trained head, lower",
                 **_PROMPT),
    PromptMethod(name="p_tuning", label="P-tuning", peft_type="P_TUNING",
                 config=("tuners/p_tuning/config.py", "PromptEncoderConfig"),
                 trains="a prompt encoder (an MLP) producing --num_virtual_tokens virtual tokens, and the head",
                 default_lr=1e-3, lr_range=(1e-4, 1e-2), lr_source="peft's P-tuning classification example (1e-3)",
                 **_PROMPT),
    PromptMethod(name="prefix_tuning", label="prefix tuning", peft_type="PREFIX_TUNING",
                 config=("tuners/prefix_tuning/config.py", "PrefixTuningConfig"), needs_cache=True,
                 trains="keys and values of --num_virtual_tokens prefix positions in every layer (decoder LMs), and "
                 "the head", default_lr=1e-2, lr_range=(1e-3, 1e-1), lr_source="Li & Liang 2021 (5e-5..8e-5 for "
                 "GPT-2 generation with a reparametrisation; without it, peft's examples use 1e-2)", **_PROMPT),
)
