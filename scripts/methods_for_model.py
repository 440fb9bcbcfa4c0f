"""Print, one per line, the methods of the registry whose pre-flight accepts a model (its config only; no weights):
    python scripts/methods_for_model.py [MODEL]   (default: the default model)
For suites that run every method on a model (experiments/all_methods.sh)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ftlab import methods  # noqa: E402
from ftlab.config import Config  # noqa: E402
from ftlab.config.rules import settle_method_flags  # noqa: E402
from ftlab.errors import ConfigError  # noqa: E402


def main() -> None:
    from ftlab.hub import enter_offline_mode_if_unreachable
    from ftlab.models.sources import load_config, resolve_model
    from ftlab.models.tuning import check_method_fits

    enter_offline_mode_if_unreachable()
    cfg = Config()
    config = load_config(resolve_model(sys.argv[1] if len(sys.argv) > 1 else cfg.model.model))
    for name in methods.names():
        cfg.method.method = name
        settle_method_flags(cfg, set(), set())
        try:
            check_method_fits(config, cfg.method)
        except ConfigError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
            continue
        print(name)


if __name__ == "__main__":
    main()
