"""Where the project's own files live, so library code never depends on the working directory."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent
PROJECT_DIR = PACKAGE_DIR.parent.parent
CONFIG_DIR = PROJECT_DIR / "config"
DEFAULT_CONFIG = CONFIG_DIR / "config.yaml"
INSTRUMENTS_FILE = CONFIG_DIR / "instruments.yaml"
SCHEMA_DIR = PROJECT_DIR / "workflow" / "schemas"
CONFIG_SCHEMA = SCHEMA_DIR / "config.schema.yaml"
DATA_DIR = PROJECT_DIR / "data"
