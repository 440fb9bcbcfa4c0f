"""The run configuration: its schema (ftlab.config.schema), how it is built from flags, files and records
(ftlab.config.parse), the rules its values keep (ftlab.config.rules), a configuration's identity
(ftlab.config.groups), and the flag reference the docs show (ftlab.config.reference). Light: nothing here imports torch, transformers or datasets.

Layer: imports only the foundation modules (ftlab.errors, ...). Callers import from here."""
from ftlab.config.groups import ADAPTER_PROVENANCE, group_id
from ftlab.config.parse import (OPTIONAL_BOOL, POSITIVE_INT, OneLineParser, build_parser, command_line,
                                config_from_record, config_from_values, explicit_options, flags_for_method,
                                flatten_sections, parse_config, read_config_file, resolve_defaults)
from ftlab.config.reference import flag_reference
from ftlab.config.rules import check_task_flags, unused_flags, validate
from ftlab.config.schema import (BEST_METRICS, DEFAULT_MODEL, FIELDS, GROUP_CLASSES, IDENTITY_FIELDS,
                                 LORA_SWITCHES, METHODS, NO_LEGACY, OPTIMIZERS,
                                 POOLINGS, PRECISIONS,
                                 SCHEDULERS, TRUNCATIONS, WANDB_MODES, Config, DataArgs, MethodArgs, ModelArgs,
                                 OptimArgs, RunArgs, SpeedArgs, TaskArgs, TrackingArgs)

__all__ = ["ADAPTER_PROVENANCE", "BEST_METRICS", "DEFAULT_MODEL", "FIELDS", "GROUP_CLASSES",
           "IDENTITY_FIELDS", "LORA_SWITCHES", "METHODS", "NO_LEGACY", "OPTIMIZERS",
           "OPTIONAL_BOOL", "POOLINGS", "POSITIVE_INT", "PRECISIONS", "SCHEDULERS", "TRUNCATIONS", "WANDB_MODES",
           "Config", "DataArgs", "MethodArgs", "ModelArgs", "OneLineParser", "OptimArgs", "RunArgs", "SpeedArgs",
           "TaskArgs", "TrackingArgs", "build_parser", "command_line", "config_from_record", "config_from_values",
           "explicit_options",
           "flags_for_method", "flag_reference", "flatten_sections", "group_id", "parse_config", "read_config_file",
           "resolve_defaults", "unused_flags", "check_task_flags",
           "validate"]
