"""The fine-tuning methods: one module per method or family of methods, each declaring what the rest of the lab asks
of a method (ftlab.methods.base.Method), listed by ftlab.methods.registry. Light on import: the config layer reads
the declarations before torch or peft load.

Layer: below the config (which reads the methods' names, flags and defaults); imports only the foundation."""
from ftlab.methods.base import ApplyContext, Method, ParameterCount, count_parameters
from ftlab.methods.lora import skip_adapter_input_casts
from ftlab.methods.registry import (DEFAULT_METHOD, LEFT_OUT, METHODS, STUDY_METHODS, canonical, flag_owners, get,
                                    names, of_adapter)
from ftlab.methods.targets import SWITCHES

__all__ = ["ApplyContext", "DEFAULT_METHOD", "LEFT_OUT", "STUDY_METHODS", "METHODS", "Method", "ParameterCount", "SWITCHES", "canonical",
           "count_parameters", "flag_owners", "get", "names", "of_adapter", "skip_adapter_input_casts"]
